package engine

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/crashpoint"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/sinks"
)

// Options configure an Engine. Zero fields take the defaults named.
type Options struct {
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Now is the clock a cycle's start is read from; default time.Now.
	Now func() time.Time
	// Store configures the state directory (the workspace's `state`).
	Store diff.Options
	// Warehouse configures the warehouse connection.
	Warehouse executor.Options
	// Sinks configures destinations; Dir defaults to the workspace
	// directory, so relative paths resolve as in the .la files.
	Sinks sinks.OpenOptions
	// Hooks observe delivery (the sinks.Hook* interfaces), the rows a
	// cycle reads (HookRowsRead) and the worker (HookCycleStarted, …):
	// progress bars and metrics. See worker_hooks.go.
	Hooks []sinks.Hook
	// CheckColumns makes Open and Reload check the workspace against the
	// warehouse (check.go): a workspace that does not fit is refused with
	// a *ColumnCheckError.
	CheckColumns bool
	// MemoryLimit is the memory budget in bytes (--memory-limit); 0: the
	// state block's memory_limit, else DefaultMemoryBudget. MemoryPlan
	// says how it is divided; fields set above win over the plan.
	MemoryLimit int64
	// DeliverRetries overrides every destination's retry budget per
	// Deliver call when non-zero (sinks.NoRetries: fail fast and leave
	// the rest for the next cycle, as `linkaud run` does).
	DeliverRetries int
}

// Engine runs compute cycles and deliveries for one workspace. Its methods
// are safe for concurrent use; cycles of different audiences run in
// parallel, and one destination is delivered by one goroutine at a time.
type Engine struct {
	opts   Options
	log    *slog.Logger
	store  *diff.Store
	memory MemoryPlan

	mu sync.Mutex
	ws *dsl.Workspace
	// unfit are the failures of the audiences that do not fit the
	// warehouse (Options.CheckColumns, check.go), by name.
	unfit   map[string]error
	wh      executor.Warehouse
	dests   map[string]*openDest
	limiter map[string]*sinks.RateLimiter
	health  map[string]DestinationHealth
}

type openDest struct {
	mu   sync.Mutex // one Deliver at a time per destination
	def  *dsl.Destination
	dest sinks.Destination
}

// Open opens the workspace's state directory and warehouse.
func Open(ctx context.Context, ws *dsl.Workspace, opts Options) (*Engine, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Store.Logger == nil {
		opts.Store.Logger = opts.Logger
	}
	if opts.Warehouse.Logger == nil {
		opts.Warehouse.Logger = opts.Logger
	}
	if opts.Sinks.Logger == nil {
		opts.Sinks.Logger = opts.Logger
	}
	memory := MemoryPlanFor(ws, opts.MemoryLimit)
	memory.apply(&opts, ws)
	opts.Store.FS = crashpoint.FS(opts.Store.FS)
	store, err := diff.Open(ws.StateDir, opts.Store)
	if err != nil {
		return nil, fmt.Errorf("opening state %s: %w", ws.StateDir, err)
	}
	if err := applyDeclared(ws, store); err != nil {
		store.Close()
		return nil, err
	}
	wh, err := executor.Open(ctx, ws.Warehouse, opts.Warehouse)
	if err != nil {
		store.Close()
		return nil, fmt.Errorf("opening the warehouse: %w", err)
	}
	var unfit map[string]error
	if opts.CheckColumns {
		if unfit, err = unfitAudiences(ctx, ws, wh); err != nil {
			wh.Close()
			store.Close()
			return nil, fmt.Errorf("checking the workspace against the warehouse: %w", err)
		}
	}
	return &Engine{
		unfit:   unfit,
		opts:    opts,
		log:     opts.Logger,
		store:   store,
		memory:  memory,
		ws:      ws,
		wh:      wh,
		dests:   map[string]*openDest{},
		limiter: map[string]*sinks.RateLimiter{},
		health:  map[string]DestinationHealth{},
	}, nil
}

// Memory is how the engine divided its memory budget.
func (e *Engine) Memory() MemoryPlan { return e.memory }

// Store is the engine's state: lifecycle, runs, outbox, dead letters.
func (e *Engine) Store() *diff.Store { return e.store }

// Workspace is the workspace the engine currently runs.
func (e *Engine) Workspace() *dsl.Workspace {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ws
}

// Reload replaces the workspace. Audiences whose definition changed get a
// new version, which their next cycle diffs against the old membership. A
// changed warehouse block reopens the warehouse; destinations reopen on
// their next delivery. Cycles already running finish on the old workspace.
func (e *Engine) Reload(ctx context.Context, ws *dsl.Workspace) error {
	e.mu.Lock()
	old := e.ws
	e.mu.Unlock()
	var newWH executor.Warehouse
	if !sameWarehouse(old.Warehouse, ws.Warehouse) {
		wh, err := executor.Open(ctx, ws.Warehouse, e.opts.Warehouse)
		if err != nil {
			return fmt.Errorf("opening the warehouse: %w", err)
		}
		newWH = wh
	}
	if e.opts.CheckColumns {
		wh := newWH
		if wh == nil {
			e.mu.Lock()
			wh = e.wh
			e.mu.Unlock()
		}
		unfit, err := unfitAudiences(ctx, ws, wh)
		if err == nil {
			err = columnCheckError(ws, unfit)
		}
		if err != nil {
			if newWH != nil {
				newWH.Close()
			}
			return err
		}
	}
	if err := applyDeclared(ws, e.store); err != nil {
		if newWH != nil {
			newWH.Close()
		}
		return err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	e.ws = ws
	e.unfit = nil
	if newWH != nil {
		oldWH := e.wh
		e.wh = newWH
		// Readers still streaming on the old warehouse fail their cycle,
		// which then changes nothing.
		go oldWH.Close()
	}
	for name, d := range e.dests {
		if nd := ws.Destination(name); nd == nil || fmt.Sprint(nd.Type, nd.Settings) != fmt.Sprint(d.def.Type, d.def.Settings) {
			d.mu.Lock()
			_ = d.dest.Close()
			d.mu.Unlock()
			delete(e.dests, name)
		}
	}
	return nil
}

func sameWarehouse(a, b *dsl.Warehouse) bool {
	if a.Type != b.Type || a.Path != b.Path || a.DSN != b.DSN || len(a.Loads) != len(b.Loads) || fmt.Sprint(a.Settings) != fmt.Sprint(b.Settings) {
		return false
	}
	for i := range a.Loads {
		if a.Loads[i].Table.String() != b.Loads[i].Table.String() || a.Loads[i].File != b.Loads[i].File {
			return false
		}
	}
	return true
}

// Compute runs one compute cycle of audience a: plan the SQL, run it in the
// warehouse, stream the sorted rows into the differ, which commits the new
// generation and its events atomically. Any failure — a file gone, bad SQL,
// a warehouse error, a cancelled ctx — leaves the previous generation
// current and emits nothing; the audience is then Failed with the error and
// the run is in its history.
func (e *Engine) Compute(ctx context.Context, a *dsl.Audience) (*diff.CycleResult, error) {
	e.mu.Lock()
	ws, wh, unfit := e.ws, e.wh, e.unfit[a.Name]
	e.mu.Unlock()
	start := e.opts.Now().UTC()
	in := diff.CycleInput{
		Audience:    a,
		Layout:      diff.LayoutOf(a),
		Activations: ws.ActivationsOf(a),
		Start:       start,
	}
	began := time.Now()
	// A database file is attached for the cycle only (DuckDB), so that
	// other processes can write it between cycles.
	release, err := executor.Hold(ctx, wh)
	if err == nil && unfit != nil {
		// It did not fit when the workspace was opened: it runs once the
		// warehouse has what it reads.
		if diags := dsl.CheckAudienceColumns(ctx, ws.Graph, a, wh); diags.HasErrors() {
			release()
			err = explained(ws, a, diags, errUnfit)
		} else {
			e.mu.Lock()
			delete(e.unfit, a.Name)
			e.mu.Unlock()
		}
	}
	var rows array.RecordReader
	if err == nil {
		defer release()
		rows, err = e.query(ctx, wh, a, start)
		if err == nil {
			rows = &releasingReader{RecordReader: rows}
			if a.Primary != nil {
				in.Lookup = lookup(wh, ws, a)
			}
		}
	}
	in.QueryTime = time.Since(began)
	if err != nil {
		// The differ records the failure through its one failure path.
		rows = failedRows(in.Layout, e.memory.memoryError(explain(ctx, wh, ws, a, err)))
	} else {
		rows = &explainingReader{RecordReader: crashpoint.Rows(rows), explain: func(err error) error { return e.memory.memoryError(explain(ctx, wh, ws, a, err)) }}
	}
	rows = e.watchRows(a.Name, rows)
	in.Rows = rows
	defer rows.Release()
	res, err := e.store.Cycle(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("audience %s: %w", a.Name, err)
	}
	e.log.Info("audience computed", "audience", a.Name, "run", res.Run, "generation", res.Generation,
		"members", res.Members, "entered", res.Entered, "exited", res.Exited, "added", res.Added,
		"removed", res.Removed, "events", res.Events, "query", res.Query, "diff", res.Diff)
	return res, nil
}

func (e *Engine) query(ctx context.Context, wh executor.Warehouse, a *dsl.Audience, start time.Time) (array.RecordReader, error) {
	ws := e.Workspace()
	if err := executor.RefreshFor(ctx, wh, dsl.TablesRead(ws.Graph, a)); err != nil {
		return nil, err
	}
	d, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		return nil, err
	}
	if d.Name() != wh.Dialect() {
		return nil, fmt.Errorf("engine: the workspace's warehouse is %s, the open one %s", d.Name(), wh.Dialect())
	}
	plan, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: start})
	if err != nil {
		return nil, err
	}
	crashpoint.Hit("cycle.planned")
	return wh.Query(ctx, plan.SQL, executor.QueryOptions{Tag: a.Name})
}

// failedRows is a result stream that fails at once with err: it carries a
// failure from before the warehouse streamed anything into the differ.
func failedRows(l diff.Layout, err error) array.RecordReader {
	fields := []arrow.Field{{Name: "profile_key", Type: arrow.BinaryTypes.String}}
	for i := range l.Steps {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("key_%d", i), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	for i := range l.Enrich {
		fields = append(fields, arrow.Field{Name: fmt.Sprintf("enrich_%d", i), Type: arrow.BinaryTypes.String, Nullable: true})
	}
	return &errReader{schema: arrow.NewSchema(fields, nil), err: err}
}

type errReader struct {
	schema *arrow.Schema
	err    error
}

func (r *errReader) Retain()                        {}
func (r *errReader) Release()                       {}
func (r *errReader) Schema() *arrow.Schema          { return r.schema }
func (r *errReader) Next() bool                     { return false }
func (r *errReader) Record() arrow.RecordBatch      { return nil }
func (r *errReader) RecordBatch() arrow.RecordBatch { return nil }
func (r *errReader) Err() error                     { return r.err }

var _ array.RecordReader = (*errReader)(nil)

// Deliver sends the outbox of destination name until it is empty, the
// retry budget runs out (the rest stays for later), or ctx ends. Calls for
// the same destination wait for each other.
func (e *Engine) Deliver(ctx context.Context, name string) (sinks.Stats, error) {
	return e.deliver(ctx, name, nil)
}

// deliver is Deliver with hooks for this call only (Run counts deliveries
// per audience).
func (e *Engine) deliver(ctx context.Context, name string, hooks []sinks.Hook) (sinks.Stats, error) {
	od, err := e.destination(name)
	if err != nil {
		return sinks.Stats{}, err
	}
	od.mu.Lock()
	defer od.mu.Unlock()
	opts, err := sinks.DeliverOptionsFor(od.def)
	if err != nil {
		return sinks.Stats{}, err
	}
	opts.Logger = e.log
	opts.Hooks = append(opts.Hooks, e.opts.Hooks...)
	opts.Hooks = append(opts.Hooks, hooks...)
	if e.opts.DeliverRetries != 0 {
		opts.MaxRetries = e.opts.DeliverRetries
	}
	e.mu.Lock()
	if e.limiter[name] == nil {
		rate := opts.RateLimit
		if rate == 0 {
			rate = sinks.DefaultRateLimit
		}
		e.limiter[name] = sinks.NewRateLimiter(rate)
	}
	opts.Limiter = e.limiter[name]
	e.mu.Unlock()
	st, err := sinks.Deliver(ctx, crashpoint.Outbox(e.store), name, crashpoint.Destination(od.dest), opts)
	e.recordHealth(name, err)
	return st, err
}

// DeliverAll delivers every destination of the workspace, one goroutine
// each, and returns their stats and the errors joined.
func (e *Engine) DeliverAll(ctx context.Context) (map[string]sinks.Stats, error) {
	ws := e.Workspace()
	var mu sync.Mutex
	var wg sync.WaitGroup
	stats := map[string]sinks.Stats{}
	var errs []error
	for _, d := range ws.Destinations {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := e.Deliver(ctx, d.Name)
			mu.Lock()
			defer mu.Unlock()
			stats[d.Name] = st
			if err != nil {
				errs = append(errs, fmt.Errorf("destination %s: %w", d.Name, err))
			}
		}()
	}
	wg.Wait()
	return stats, errors.Join(errs...)
}

func (e *Engine) destination(name string) (*openDest, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if od, ok := e.dests[name]; ok {
		return od, nil
	}
	def := e.ws.Destination(name)
	if def == nil {
		return nil, fmt.Errorf("no destination %q in the workspace", name)
	}
	so := e.opts.Sinks
	if so.Dir == "" {
		so.Dir = e.ws.Dir
	}
	d, err := sinks.Open(def, so)
	if err != nil {
		return nil, err
	}
	od := &openDest{def: def, dest: d}
	e.dests[name] = od
	return od, nil
}

// Close closes destinations, the warehouse and the state, in that order.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	var errs []error
	for _, od := range e.dests {
		od.mu.Lock()
		errs = append(errs, od.dest.Close())
		od.mu.Unlock()
	}
	e.dests = map[string]*openDest{}
	errs = append(errs, e.wh.Close(), e.store.Close())
	return errors.Join(errs...)
}
