// Package bench is `linkaud bench`: it measures the whole pipeline on a
// generated bank + household workspace (internal/gen) against its floor and
// against what users pick instead, side by side in one run on the same data.
//
// In order, on one data set:
//
//   - query: the planner's SQL of each audience run on DuckDB with every
//     Arrow batch drained and nothing else done — the floor a cycle cannot
//     beat. One untimed pass warms the page cache first.
//   - first cycle: engine.Compute of each audience on an empty state (query →
//     Arrow → merge → Pebble → outbox, send_current events for everyone),
//     with the process's peak RSS over it.
//   - no-change cycle: the same cycle again on the same data and clock;
//     bytes Pebble wrote (every byte through its file system, flushed and
//     compacted) over the state's size on disk.
//   - mutation cycles: internal/gen rewrites Mutate% of the rows as the next
//     hour's data would, then the EXCEPT baseline and the cycle run on it.
//   - the EXCEPT baseline: the diff done in the warehouse as Hightouch- or
//     Castled-style syncs do it — the result materialized into a table of a
//     database file, EXCEPT against the stored snapshot in both directions
//     (rows drained), then the snapshot replaced. It runs the same SQL
//     without the ORDER BY it does not need.
//   - Kafka: the outbox delivered to a kfake broker (`linkaud devbroker`
//     in a process of its own from the CLI) by the Kafka destination,
//     against a raw franz-go producer sending the same records (read into
//     memory beforehand) to the same broker.
//
// Entry point: Run. Nothing here asserts a duration: the figures are
// reported, and the tests only check that every phase ran and agreed.
package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/gen"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/sinks"
)

// Options configure Run. Zero fields take the defaults named.
type Options struct {
	// Profiles is the data set's size (required).
	Profiles int
	// Dir holds the generated data, reused by later runs of the same size
	// and seed, and the run's workspace; created if missing.
	Dir string
	// Seed selects the data; default 1.
	Seed int64
	// Repeat is how many timed passes the query floor and the mutation
	// cycles get; the figures are medians. Default 1.
	Repeat int
	// Mutate is the percentage of rows a mutation rewrites; default 1.
	Mutate float64
	// Audiences to measure; default the seed's three use cases.
	Audiences []string
	// DuckDB are extra DuckDB settings for the workspace's warehouse (e.g.
	// memory_limit, threads), applied to every DuckDB instance of the run.
	DuckDB map[string]string
	// MemoryLimit is the memory budget (engine.Options.MemoryLimit); 0
	// for the default one.
	MemoryLimit int64
	// Skip leaves out phases: "query", "except", "mutate", "kafka" (a
	// run for the peak RSS at a large size needs only the cycles). The
	// first and no-change cycles always run.
	Skip []string
	// Logger receives one line per phase; default discards.
	Logger *slog.Logger
	// Profile, if set, is a file to write a CPU profile of the phases to
	// (data generation left out).
	Profile string
	// Warehouse is where the audiences run: "duckdb" (the default, over
	// the generated Parquet files) or "postgres", the data set loaded into
	// the database PostgresDSN names (tables bank.*, home.*, analytics.*
	// replaced), and loaded again after each mutation (not timed). The
	// EXCEPT baseline runs on DuckDB only.
	Warehouse   string
	PostgresDSN string
	// NoIndexes leaves PostgreSQL's tables without indexes on their keys
	// and join columns.
	NoIndexes bool
	// BrokerCommand, if set, runs the Kafka phase's broker in a process of
	// its own (see startBroker): `linkaud devbroker` (the command and its
	// first arguments; --addr, --partitions, --topic and --log-level are
	// added). Empty: the broker runs in this process.
	BrokerCommand []string
}

// benchDSNEnv is the variable the PostgreSQL workspace reads its DSN from.
const benchDSNEnv = "LINKAUD_BENCH_PG_DSN"

// DefaultAudiences are the seed's three use cases.
var DefaultAudiences = []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users"}

// Anchor is the date the generated data leads up to; cycles start an hour
// before it, so `within` windows and the results are the same every run.
var Anchor = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)

// Result is one benchmark run. The JSON keys are the contract of
// `linkaud bench --json`.
type Result struct {
	Profiles  int      `json:"profiles"`
	Audiences []string `json:"audiences"`
	Machine   Machine  `json:"machine"`
	Warehouse string   `json:"warehouse"` // duckdb or postgres
	Memory    string   `json:"memory"`    // the memory budget and its division (engine.MemoryPlan)
	GenS      float64  `json:"gen_s"`     // 0 when the data was reused
	LoadS     float64  `json:"load_s"`    // loading into PostgreSQL, untimed otherwise
	Rows      int64    `json:"rows"`      // result rows of the first cycle
	Members   int64    `json:"members"`   // members after the first cycle
	Events    int64    `json:"events"`    // events the first cycle wrote
	StateMB   float64  `json:"state_mb"`  // state size once its events are delivered

	QueryS         float64 `json:"query_s"`
	CycleS         float64 `json:"cycle_s"`
	CycleOverQuery float64 `json:"cycle_over_query"`
	// CycleBytesWritten is what the first cycle wrote to the state's disk
	// (WAL, sstables, compactions until settled).
	CycleBytesWritten int64   `json:"cycle_bytes_written"`
	PeakRSSMB         float64 `json:"peak_rss_mb"`
	// GoHeapPeakMB is the largest Go heap (live and not yet collected
	// objects) seen during the first cycle, sampled every 20ms: linkaud's
	// own share of the RSS, apart from DuckDB and Pebble's manually
	// managed cache and memtables.
	GoHeapPeakMB float64 `json:"go_heap_peak_mb"`

	NochangeCycleS            float64 `json:"nochange_cycle_s"`
	NochangeOverQuery         float64 `json:"nochange_over_query"`
	NochangeBytesWritten      int64   `json:"nochange_bytes_written"`
	NochangeBytesWrittenRatio float64 `json:"nochange_bytes_written_ratio"`

	MutatePercent float64 `json:"mutate_percent"`
	MutateCycleS  float64 `json:"mutate_cycle_s"`
	// MutateQueryS is the bare query over the mutated data, timed after
	// the cycle on it: gen.Mutate rewrites the tables, and the query over
	// the rewritten files need not cost what query_s does.
	MutateQueryS            float64 `json:"mutate_query_s"`
	MutateOverQuery         float64 `json:"mutate_over_query"`
	MutateBytesWritten      int64   `json:"mutate_bytes_written"`
	MutateBytesWrittenRatio float64 `json:"mutate_bytes_written_ratio"`
	MutateRowsChanged       int64   `json:"mutate_rows_changed"` // rows added, removed or changed
	MutateEvents            int64   `json:"mutate_events"`

	// The EXCEPT baseline on the mutation hour (the like-for-like case:
	// an hourly sync on slightly changed data), and its first run, which
	// only materializes the snapshot.
	ExceptBaselineS float64 `json:"except_baseline_s"`
	CycleOverExcept float64 `json:"cycle_over_except"`
	ExceptFirstS    float64 `json:"except_first_s"`
	ExceptRows      int64   `json:"except_rows_changed"`

	// Rows merged per second of the differ's own time (the cycle's time
	// minus the time it waited for the warehouse), over the first, the
	// no-change and the mutation cycles.
	DiffRowsPerS         float64 `json:"diff_rows_per_s"`
	DiffRowsPerSFirst    float64 `json:"diff_rows_per_s_first"`
	DiffRowsPerSNochange float64 `json:"diff_rows_per_s_nochange"`
	DiffRowsPerSMutate   float64 `json:"diff_rows_per_s_mutate"`

	KafkaEvents        int64   `json:"kafka_events"`
	KafkaEventsPerS    float64 `json:"kafka_events_per_s"`
	KafkaRawEventsPerS float64 `json:"kafka_raw_events_per_s"`
	KafkaOverRaw       float64 `json:"kafka_over_raw"`

	PerAudience []AudienceResult `json:"per_audience"`
}

// AudienceResult are one audience's figures (medians where repeated).
type AudienceResult struct {
	Name           string  `json:"name"`
	Rows           int64   `json:"rows"`
	Members        int64   `json:"members"`
	QueryS         float64 `json:"query_s"`
	CycleS         float64 `json:"cycle_s"`
	NochangeCycleS float64 `json:"nochange_cycle_s"`
	MutateCycleS   float64 `json:"mutate_cycle_s"`
	ExceptS        float64 `json:"except_baseline_s"`
}

// kafkaDest and kafkaTopic are the benchmark workspace's Kafka destination.
const (
	kafkaDest     = "bench_kafka"
	kafkaTopic    = "linkaud-bench"
	kafkaRawTopic = "linkaud-bench-raw"
)

// Run generates (or reuses) the data set and runs every phase.
func Run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Profiles <= 0 {
		return nil, fmt.Errorf("bench: profiles must be positive, not %d", opts.Profiles)
	}
	if opts.Dir == "" {
		return nil, errors.New("bench: Options.Dir is required")
	}
	opts.Seed = cmp.Or(opts.Seed, 1)
	opts.Repeat = max(opts.Repeat, 1)
	opts.Mutate = cmp.Or(opts.Mutate, 1)
	if len(opts.Audiences) == 0 {
		opts.Audiences = DefaultAudiences
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch opts.Warehouse {
	case "", "duckdb":
		opts.Warehouse = "duckdb"
	case "postgres":
		if opts.PostgresDSN == "" {
			return nil, errors.New("bench: a PostgreSQL run needs Options.PostgresDSN")
		}
		opts.Skip = append(opts.Skip, "except")
	default:
		return nil, fmt.Errorf("bench: unknown warehouse %q: duckdb or postgres", opts.Warehouse)
	}
	b := &run{opts: opts, log: opts.Logger, res: &Result{Profiles: opts.Profiles, Audiences: opts.Audiences, Machine: thisMachine()}}
	defer b.close()
	if err := b.prepare(ctx); err != nil {
		return nil, err
	}
	stopProfile, err := startProfile(opts.Profile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"query", b.queryFloor},
		{"except-first", b.exceptFirst},
		{"cycle", b.firstCycle},
		{"kafka", b.kafka},
		{"nochange", b.nochangeCycle},
		{"mutate", b.mutationCycles},
	}
	for _, s := range steps {
		if b.skipped(s.name) {
			continue
		}
		began := time.Now()
		if err := s.fn(ctx); err != nil {
			return nil, fmt.Errorf("bench %s: %w", s.name, err)
		}
		b.log.Info("bench phase done", "phase", s.name, "elapsed", time.Since(began).Round(time.Millisecond))
	}
	b.finish()
	return b.res, nil
}

// run is the state of one Run.
type run struct {
	opts   Options
	log    *slog.Logger
	res    *Result
	runDir string
	ws     *dsl.Workspace
	auds   []*dsl.Audience
	broker broker
	fs     *countingFS
	eng    *engine.Engine
	wh     executor.Warehouse // the floor's and the baseline's own DuckDB
	now    time.Time
	per    map[string]*AudienceResult
	diffs  [3]rate // first, no-change, mutation
	events int64   // written by every cycle so far
}

type rate struct {
	rows int64
	diff time.Duration
}

func (r rate) perSecond() float64 {
	if r.diff <= 0 {
		return 0
	}
	return float64(r.rows) / r.diff.Seconds()
}

func (b *run) skipped(phase string) bool {
	switch phase {
	case "except-first":
		phase = "except"
	case "cycle", "nochange":
		return false
	}
	return slices.Contains(b.opts.Skip, phase)
}

func (b *run) close() {
	if b.eng != nil {
		b.eng.Close()
	}
	if b.wh != nil {
		b.wh.Close()
	}
	if b.broker != nil {
		b.broker.Close()
	}
}

// prepare generates or reuses the data, lays out a fresh workspace over
// it, starts the broker and opens the engine and the floor's warehouse.
func (b *run) prepare(ctx context.Context) error {
	base, err := b.data(ctx)
	if err != nil {
		return err
	}
	b.runDir = filepath.Join(b.opts.Dir, "run")
	if err := os.RemoveAll(b.runDir); err != nil {
		return err
	}
	if err := linkTree(base, b.runDir); err != nil {
		return fmt.Errorf("laying out the workspace: %w", err)
	}
	b.broker, err = startBroker(ctx, b.opts, []string{kafkaTopic, kafkaRawTopic})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(b.runDir, "bench.la"), []byte(benchLA(b.broker.Addr(), b.opts.Audiences)), 0o644); err != nil {
		return err
	}
	if b.opts.Warehouse == "postgres" {
		if err := b.loadPostgres(ctx, nil); err != nil {
			return err
		}
	}
	ws, diags := dsl.Load(b.runDir, dsl.Options{})
	if diags.HasErrors() {
		return fmt.Errorf("the generated workspace does not check:\n%s", diags.Error())
	}
	if ws.Warehouse.Settings == nil {
		ws.Warehouse.Settings = map[string]string{}
	}
	for k, v := range b.opts.DuckDB {
		ws.Warehouse.Settings[k] = v
	}
	b.ws = ws
	b.per = map[string]*AudienceResult{}
	for _, name := range b.opts.Audiences {
		a := ws.Audience(name)
		if a == nil {
			return fmt.Errorf("no audience %q in the generated workspace", name)
		}
		b.auds = append(b.auds, a)
		b.per[name] = &AudienceResult{Name: name}
	}
	b.now = Anchor.Add(-time.Hour)
	b.fs = newCountingFS(vfs.Default)
	b.eng, err = engine.Open(ctx, ws, engine.Options{
		Logger:      slog.New(warnOnly{b.log.Handler()}),
		Now:         func() time.Time { return b.now },
		Store:       diff.Options{FS: b.fs},
		MemoryLimit: b.opts.MemoryLimit,
	})
	if err != nil {
		return err
	}
	for _, a := range b.auds {
		if err := b.eng.Store().Enable(a.Name); err != nil {
			return err
		}
	}
	// The floor's DuckDB runs under the same limits as the engine's, so
	// that the ratios compare the pipeline, not two memory budgets.
	b.res.Memory = b.eng.Memory().String()
	b.eng.Memory().ApplyGoLimit() // as linkaud run and worker do
	b.wh, err = executor.Open(ctx, ws.Warehouse, executor.Options{Logger: b.log,
		DuckDB: b.eng.Memory().DuckDBLimits(filepath.Join(b.runDir, "floor"))})
	if err != nil {
		return err
	}
	if b.opts.Warehouse == "postgres" {
		b.res.Machine.Postgres = b.duckdbVersion(ctx) // version(): "PostgreSQL 15.…"
	} else {
		b.res.Machine.DuckDB = b.duckdbVersion(ctx)
	}
	b.res.Warehouse = b.opts.Warehouse
	if d, ok := b.wh.(*executor.DuckDB); ok {
		// The baseline's snapshot lives in a database file, as a warehouse
		// table would: its writes are on disk like Pebble's.
		if err := d.Exec(ctx, "ATTACH "+planner.DuckDB.String(filepath.Join(b.runDir, "except.duckdb"))+" AS except_snapshots"); err != nil {
			return err
		}
	}
	return nil
}

// duckdbVersion is the warehouse's version(), DuckDB's or PostgreSQL's.
func (b *run) duckdbVersion(ctx context.Context) string {
	r, err := b.wh.Query(ctx, "SELECT version()", executor.QueryOptions{})
	if err != nil {
		return "unknown"
	}
	defer r.Release()
	if r.Next() && r.RecordBatch().NumRows() == 1 {
		if col, ok := r.RecordBatch().Column(0).(*array.String); ok {
			return strings.Clone(col.Value(0)) // Value aliases the batch's memory
		}
	}
	return "unknown"
}

// dataMarker records a complete generated data set, so that an interrupted
// generation is not reused.
const dataMarker = "bench-data.json"

func (b *run) data(ctx context.Context) (string, error) {
	base, genS, err := dataSet(ctx, b.opts.Dir, b.opts.Profiles, b.opts.Seed, 0, b.log)
	b.res.GenS = genS
	return base, err
}

// dataSet generates, or reuses from an earlier run, the data set of that
// size and seed with audiences generated audiences under dir; genS is the
// time generating took, 0 when reused.
func dataSet(ctx context.Context, dir string, profiles int, seed int64, audiences int, log *slog.Logger) (base string, genS float64, err error) {
	name := fmt.Sprintf("data-%d-seed%d", profiles, seed)
	if audiences > 0 {
		name += fmt.Sprintf("-audiences%d", audiences)
	}
	base = filepath.Join(dir, name)
	if _, err := os.Stat(filepath.Join(base, dataMarker)); err == nil {
		log.Info("reusing generated data", "dir", base)
		return base, 0, nil
	}
	if err := os.RemoveAll(base); err != nil {
		return "", 0, err
	}
	began := time.Now()
	res, err := gen.Generate(ctx, gen.Options{Profiles: profiles, Out: base, Seed: seed, Anchor: Anchor, Logger: log, Audiences: audiences})
	if err != nil {
		return "", 0, err
	}
	genS = time.Since(began).Seconds()
	marker, _ := json.Marshal(res)
	return base, genS, os.WriteFile(filepath.Join(base, dataMarker), marker, 0o644)
}

// linkTree makes dst a copy of the generated workspace src, hard-linking
// the data files: gen.Mutate replaces files by rename, never in place, so
// the generated data stays pristine for the next run.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == dataMarker || strings.HasPrefix(rel, ".linkaud") {
			return nil
		}
		to := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(to, 0o755)
		}
		if err := os.Link(p, to); err == nil {
			return nil
		}
		in, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(to, in, 0o644)
	})
}

// benchLA adds a Kafka destination and activations that make the first
// cycle send an event for every current member and entity (send_current),
// and later cycles one for every change.
func benchLA(broker string, audiences []string) string {
	var s strings.Builder
	fmt.Fprintf(&s, "destination %s { type kafka brokers %q topic %q }\n", kafkaDest, broker, kafkaTopic)
	for _, a := range audiences {
		fmt.Fprintf(&s, "activation bench_%s_in { audience %s destination %s event audience_entered send_current true }\n", a, a, kafkaDest)
		fmt.Fprintf(&s, "activation bench_%s_out { audience %s destination %s event audience_exited }\n", a, a, kafkaDest)
	}
	if slices.Contains(audiences, "outstanding_balance") {
		fmt.Fprintf(&s, "activation bench_cards_added { audience outstanding_balance destination %s event entity_added credit_card send_current true }\n", kafkaDest)
		fmt.Fprintf(&s, "activation bench_cards_removed { audience outstanding_balance destination %s event entity_removed credit_card }\n", kafkaDest)
	}
	return s.String()
}

// loadPostgres loads the run's data into PostgreSQL (the tables named, or
// all), its workspace reading it there.
func (b *run) loadPostgres(ctx context.Context, tables []string) error {
	ws := filepath.Join(b.runDir, gen.WorkspaceFile)
	if tables == nil {
		// The workspace file is a hard link to the generated one, which
		// must stay as it is: replace the link by a copy first.
		text, err := os.ReadFile(ws)
		if err != nil {
			return err
		}
		if err := os.Remove(ws); err != nil {
			return err
		}
		if err := os.WriteFile(ws, text, 0o644); err != nil {
			return err
		}
	}
	began := time.Now()
	if _, err := gen.LoadPostgres(ctx, gen.PostgresOptions{Dir: b.runDir, DSN: b.opts.PostgresDSN, DSNEnv: benchDSNEnv, Tables: tables, NoIndexes: b.opts.NoIndexes, Logger: b.log}); err != nil {
		return err
	}
	b.res.LoadS += time.Since(began).Seconds()
	return os.Setenv(benchDSNEnv, b.opts.PostgresDSN)
}

func (b *run) plan(a *dsl.Audience, unordered bool) (string, error) {
	d, err := planner.ForWarehouse(b.ws.Warehouse)
	if err != nil {
		return "", err
	}
	p, err := planner.Compile(a, b.ws.Graph, d, planner.Options{Now: b.now, Unordered: unordered})
	if err != nil {
		return "", err
	}
	return p.SQL, nil
}

// drain runs sql and reads every batch, returning the row count.
func (b *run) drain(ctx context.Context, sql, tag string) (int64, error) {
	r, err := b.wh.Query(ctx, sql, executor.QueryOptions{Tag: tag})
	if err != nil {
		return 0, err
	}
	defer r.Release()
	var n int64
	for r.Next() {
		n += r.RecordBatch().NumRows()
	}
	return n, r.Err()
}

// queryFloor times the bare queries: one warm-up pass, then Repeat passes.
func (b *run) queryFloor(ctx context.Context) error {
	times := map[string][]float64{}
	for pass := 0; pass <= b.opts.Repeat; pass++ {
		for _, a := range b.auds {
			n, took, err := b.query(ctx, a)
			if err != nil {
				return err
			}
			if pass > 0 {
				times[a.Name] = append(times[a.Name], took)
			}
			b.per[a.Name].Rows = n
		}
	}
	for _, a := range b.auds {
		b.per[a.Name].QueryS = median(times[a.Name])
		b.res.QueryS += b.per[a.Name].QueryS
	}
	return nil
}

// query runs the bare query of a, draining every batch: its rows and
// seconds.
func (b *run) query(ctx context.Context, a *dsl.Audience) (int64, float64, error) {
	sql, err := b.plan(a, false)
	if err != nil {
		return 0, 0, err
	}
	began := time.Now()
	n, err := b.drain(ctx, sql, a.Name)
	if err != nil {
		return 0, 0, fmt.Errorf("%s: %w", a.Name, err)
	}
	return n, time.Since(began).Seconds(), nil
}

// queries times one bare query of every audience, in seconds.
func (b *run) queries(ctx context.Context) (float64, error) {
	total := 0.0
	for _, a := range b.auds {
		_, took, err := b.query(ctx, a)
		if err != nil {
			return 0, err
		}
		total += took
	}
	return total, nil
}

// snapshot names the baseline's tables of audience i.
func snapshot(i int, which string) string {
	return fmt.Sprintf("except_snapshots.aud%d_%s", i, which)
}

// exceptFirst is the baseline's first sync: materialize the snapshot.
func (b *run) exceptFirst(ctx context.Context) error {
	d, ok := b.wh.(*executor.DuckDB)
	if !ok {
		return errors.New("the EXCEPT baseline needs the embedded DuckDB")
	}
	began := time.Now()
	for i, a := range b.auds {
		sql, err := b.plan(a, true)
		if err != nil {
			return err
		}
		if err := d.Exec(ctx, "CREATE OR REPLACE TABLE "+snapshot(i, "previous")+" AS "+sql); err != nil {
			return fmt.Errorf("%s: %w", a.Name, err)
		}
	}
	b.res.ExceptFirstS = time.Since(began).Seconds()
	return nil
}

// exceptSync is one sync of the baseline after the data changed: the new
// result as a table, EXCEPT both ways (drained: those rows are what it
// would send), the snapshot replaced. It returns the rows found changed.
func (b *run) exceptSync(ctx context.Context, i int, a *dsl.Audience) (int64, error) {
	d := b.wh.(*executor.DuckDB)
	sql, err := b.plan(a, true)
	if err != nil {
		return 0, err
	}
	cur, prev := snapshot(i, "current"), snapshot(i, "previous")
	if err := d.Exec(ctx, "CREATE OR REPLACE TABLE "+cur+" AS "+sql); err != nil {
		return 0, err
	}
	added, err := b.drain(ctx, "SELECT * FROM "+cur+" EXCEPT SELECT * FROM "+prev, a.Name)
	if err != nil {
		return 0, err
	}
	removed, err := b.drain(ctx, "SELECT * FROM "+prev+" EXCEPT SELECT * FROM "+cur, a.Name)
	if err != nil {
		return 0, err
	}
	if err := d.Exec(ctx, "DROP TABLE "+prev, "ALTER TABLE "+cur+" RENAME TO "+strings.TrimPrefix(prev, "except_snapshots.")); err != nil {
		return 0, err
	}
	return added + removed, nil
}

// cycle computes every audience once and returns the time taken.
func (b *run) cycle(ctx context.Context, r *rate, per func(*AudienceResult, float64, *diff.CycleResult)) (time.Duration, error) {
	var total time.Duration
	for _, a := range b.auds {
		began := time.Now()
		res, err := b.eng.Compute(ctx, a)
		if err != nil {
			return 0, err
		}
		took := time.Since(began)
		total += took
		r.rows += res.RowsRead
		r.diff += res.Diff
		per(b.per[a.Name], took.Seconds(), res)
	}
	return total, nil
}

func (b *run) firstCycle(ctx context.Context) error {
	// The floor's DuckDB is idle now; its cache is not the cycle's.
	runtime.GC()
	before := b.fs.Written()
	pk := startPeaks(b.log)
	took, err := b.cycle(ctx, &b.diffs[0], func(p *AudienceResult, s float64, res *diff.CycleResult) {
		p.CycleS = s
		p.Members = res.Members
		if p.QueryS == 0 {
			p.Rows = res.RowsRead
		}
		if p.QueryS > 0 && p.Rows != res.RowsRead {
			// Both ran the same SQL on the same data.
			b.log.Warn("the cycle read another row count than the query", "audience", p.Name, "query", p.Rows, "cycle", res.RowsRead)
		}
		b.res.Rows += res.RowsRead
		b.res.Members += res.Members
		b.res.Events += res.Events
		b.events += res.Events
	})
	if err != nil {
		return err
	}
	b.res.PeakRSSMB, b.res.GoHeapPeakMB = pk.stop()
	b.res.CycleS = took.Seconds()
	b.res.CycleBytesWritten, _, err = b.settle(ctx, before)
	return err
}

// settle makes what the cycle just measured wrote durable in sstables
// (its memtable flushed, as Pebble would do once the memtable fills) and
// returns the bytes written since before. Then, uncounted, it compacts the
// whole state, so that the next measured cycle starts owing nothing: a
// compaction triggered by earlier cycles' files is not billed to it. It
// returns the size of the state: its live sstables.
func (b *run) settle(ctx context.Context, before int64) (written, size int64, err error) {
	s := b.eng.Store()
	if err := s.Flush(); err != nil {
		return 0, 0, err
	}
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline) && s.Metrics().Compact.NumInProgress > 0; {
		time.Sleep(10 * time.Millisecond)
	}
	written = b.fs.Written() - before
	if err := s.Compact(ctx); err != nil {
		return 0, 0, err
	}
	// The state is its sstables: the WAL is already in them, and Pebble
	// keeps old WAL files around only to recycle them.
	total := s.Metrics().Total()
	return written, total.TablesSize, nil
}

func (b *run) nochangeCycle(ctx context.Context) error {
	before := b.fs.Written()
	took, err := b.cycle(ctx, &b.diffs[1], func(p *AudienceResult, s float64, res *diff.CycleResult) {
		p.NochangeCycleS = s
		b.events += res.Events
		if res.Entered+res.Exited+res.Added+res.Removed+res.Changed+res.Events != 0 {
			b.log.Warn("a no-change cycle found changes", "audience", p.Name, "entered", res.Entered, "exited", res.Exited, "added", res.Added, "removed", res.Removed, "changed", res.Changed)
		}
	})
	if err != nil {
		return err
	}
	written, size, err := b.settle(ctx, before)
	if err != nil {
		return err
	}
	b.res.NochangeCycleS = took.Seconds()
	b.res.StateMB = float64(size) / (1 << 20)
	b.res.NochangeBytesWritten = written
	b.res.NochangeBytesWrittenRatio = float64(written) / float64(size)
	return nil
}

// mutationCycles runs Repeat hours: mutate the data, sync the baseline,
// compute the cycle.
func (b *run) mutationCycles(ctx context.Context) error {
	withExcept := !b.skipped("except")
	var cycles, queries, excepts, ratios []float64
	perCycle, perExcept := map[string][]float64{}, map[string][]float64{}
	for hour := 1; hour <= b.opts.Repeat; hour++ {
		mres, err := gen.Mutate(ctx, gen.MutateOptions{Dir: b.runDir, Percent: b.opts.Mutate, Seed: b.opts.Seed*1000 + int64(hour), Logger: b.log})
		if err != nil {
			return err
		}
		if b.opts.Warehouse == "postgres" {
			var names []string
			for _, t := range mres.Tables {
				if t.Changed+t.Added+t.Removed > 0 {
					names = append(names, t.Name)
				}
			}
			if err := b.loadPostgres(ctx, names); err != nil {
				return err
			}
		}
		b.now = b.now.Add(time.Hour)
		var exceptRows int64
		if withExcept {
			began := time.Now()
			for i, a := range b.auds {
				t := time.Now()
				n, err := b.exceptSync(ctx, i, a)
				if err != nil {
					return fmt.Errorf("%s: EXCEPT baseline: %w", a.Name, err)
				}
				exceptRows += n
				perExcept[a.Name] = append(perExcept[a.Name], time.Since(t).Seconds())
			}
			excepts = append(excepts, time.Since(began).Seconds())
		}
		before := b.fs.Written()
		var changed, events int64
		took, err := b.cycle(ctx, &b.diffs[2], func(p *AudienceResult, s float64, res *diff.CycleResult) {
			perCycle[p.Name] = append(perCycle[p.Name], s)
			changed += res.Added + res.Removed + res.Changed
			events += res.Events
			b.events += res.Events
		})
		if err != nil {
			return err
		}
		written, size, err := b.settle(ctx, before)
		if err != nil {
			return err
		}
		cycles = append(cycles, took.Seconds())
		ratios = append(ratios, float64(written)/float64(size))
		q, err := b.queries(ctx)
		if err != nil {
			return err
		}
		queries = append(queries, q)
		b.res.MutateBytesWritten, b.res.MutateRowsChanged, b.res.MutateEvents, b.res.ExceptRows = written, changed, events, exceptRows
		b.log.Info("mutation hour", "hour", hour, "cycle_s", took.Seconds(), "rows_changed", changed, "events", events, "bytes_written", written, "except_rows", exceptRows)
	}
	b.res.MutatePercent = b.opts.Mutate
	b.res.MutateCycleS = median(cycles)
	b.res.MutateQueryS = median(queries)
	b.res.MutateBytesWrittenRatio = median(ratios)
	if withExcept {
		b.res.ExceptBaselineS = median(excepts)
	}
	for _, a := range b.auds {
		b.per[a.Name].MutateCycleS = median(perCycle[a.Name])
		b.per[a.Name].ExceptS = median(perExcept[a.Name])
	}
	return nil
}

// kafka sends the same records twice to the same broker: first with a raw
// franz-go producer (records already in memory, produced asynchronously
// with its defaults and acks=all, then one wait for every ack), then
// through the Kafka destination from the outbox. rawSample caps the
// records held in memory for the raw run.
func (b *run) kafka(ctx context.Context) error {
	const rawSample = 1_000_000
	var msgs []diff.Message
	var after uint64
	for len(msgs) < rawSample {
		page, err := b.eng.Store().Pending(kafkaDest, after, min(10_000, rawSample-len(msgs)))
		if err != nil {
			return err
		}
		if len(page) == 0 {
			break
		}
		msgs = append(msgs, page...)
		after = page[len(page)-1].Seq
	}
	if len(msgs) == 0 {
		return errors.New("the outbox is empty: nothing to deliver")
	}
	raw, err := kgo.NewClient(kgo.SeedBrokers(b.broker.Addr()), kgo.RequiredAcks(kgo.AllISRAcks()))
	if err != nil {
		return err
	}
	defer raw.Close()
	began := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var perr error
	wg.Add(len(msgs))
	for _, m := range msgs {
		raw.Produce(ctx, sinks.Record(kafkaRawTopic, m), func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
			wg.Done()
		})
	}
	wg.Wait()
	rawTook := time.Since(began)
	if perr != nil {
		return fmt.Errorf("raw producer: %w", perr)
	}
	rawEvents := len(msgs)
	msgs = nil

	began = time.Now()
	st, err := b.eng.Deliver(ctx, kafkaDest)
	took := time.Since(began)
	if err != nil {
		return err
	}
	backlog, err := b.eng.Store().Backlog(kafkaDest)
	if err != nil {
		return err
	}
	if backlog != 0 || int64(st.Delivered) != b.events {
		return fmt.Errorf("the cycles wrote %d events, delivery sent %d and left %d in the outbox", b.events, st.Delivered, backlog)
	}
	b.res.KafkaEvents = int64(st.Delivered)
	b.res.KafkaEventsPerS = float64(st.Delivered) / took.Seconds()
	b.res.KafkaRawEventsPerS = float64(rawEvents) / rawTook.Seconds()
	b.res.KafkaOverRaw = b.res.KafkaEventsPerS / b.res.KafkaRawEventsPerS
	// The acknowledgements' writes are delivery's, not the next cycle's.
	_, _, err = b.settle(ctx, 0)
	return err
}

func (b *run) finish() {
	r := b.res
	r.CycleOverQuery = ratio(r.CycleS, r.QueryS)
	r.NochangeOverQuery = ratio(r.NochangeCycleS, r.QueryS)
	r.MutateOverQuery = ratio(r.MutateCycleS, r.MutateQueryS)
	r.CycleOverExcept = ratio(r.MutateCycleS, r.ExceptBaselineS)
	r.DiffRowsPerSFirst = b.diffs[0].perSecond()
	r.DiffRowsPerSNochange = b.diffs[1].perSecond()
	r.DiffRowsPerSMutate = b.diffs[2].perSecond()
	var all rate
	for _, d := range b.diffs {
		all.rows += d.rows
		all.diff += d.diff
	}
	r.DiffRowsPerS = all.perSecond()
	for _, a := range b.auds {
		r.PerAudience = append(r.PerAudience, *b.per[a.Name])
	}
}

// startProfile starts a CPU profile into the file path (none when path
// is empty); stop ends it.
func startProfile(path string) (stop func(), err error) {
	if path == "" {
		return func() {}, nil
	}
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
	}, nil
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// warnOnly passes on warnings and errors, and the rest only at debug
// level: the engine logs a line per cycle at info, which would drown the
// benchmark's own lines unless asked for.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return (l >= slog.LevelWarn || h.Handler.Enabled(ctx, slog.LevelDebug)) && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }
func (h warnOnly) WithGroup(g string) slog.Handler       { return warnOnly{h.Handler.WithGroup(g)} }
