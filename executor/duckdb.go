package executor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	bindings "github.com/duckdb/duckdb-go-bindings"

	"github.com/linkaud/linkaud/dsl"
)

// DuckDB is the embedded warehouse.
//
// It talks to DuckDB through the C API bindings that duckdb-go is built on,
// rather than through duckdb-go's Arrow type, for one reason: duckdb-go
// executes every statement into a fully materialised result before the
// first batch can be read, so its memory grows with the result (BenchmarkStreamRange:
// 741 MB peak RSS for 8M short rows, against 83 MB here). Here statements
// run as DuckDB streaming results; a producer goroutine fetches and converts
// chunks at most two batches ahead of the consumer.
// A sort (every audience's ORDER BY) still needs its input in DuckDB's
// buffer pool, bounded by memory_limit and spilled to temp_directory.
type DuckDB struct {
	db    bindings.Database
	loads []*dsl.TableFile
	log   *slog.Logger

	tokens chan struct{} // one per statement allowed to run

	// closing is cancelled by Close with cause ErrClosed; every statement's
	// context follows it, so Close interrupts what is running.
	closing     context.Context
	closeCancel context.CancelCauseFunc

	// path is the database file ("" for :memory:), attached only while a
	// statement runs or a Hold is taken, so that other processes (an ETL
	// job) can write it between cycles; read-only unless loads create
	// views in it.
	path     string
	readOnly bool

	mu       sync.Mutex
	idle     []bindings.Connection
	inUse    int
	holds    int
	closed   bool
	dbOwned  bool // whether the last release still has to close db
	attached bool // path is attached as attachedCatalog now

	refreshMu sync.Mutex
}

var (
	_ Warehouse = (*DuckDB)(nil)
	_ Refresher = (*DuckDB)(nil)
)

// attachedCatalog is the catalog name of a database file.
const attachedCatalog = "linkaud_warehouse"

// settingMaxConns is our own warehouse setting; the rest of a duckdb
// warehouse's settings are DuckDB configuration options.
const settingMaxConns = "max_connections"

// settingAccessMode is DuckDB's access_mode, applied to the database file
// when it is attached (the in-memory database that attaches it is always
// writable). Default: read-only, unless loads create views in the file.
const settingAccessMode = "access_mode"

func openDuckDB(ctx context.Context, w *dsl.Warehouse, opts Options) (*DuckDB, error) {
	maxConns := opts.MaxConns
	var cfg bindings.Config
	if bindings.CreateConfig(&cfg) == bindings.StateError {
		return nil, errors.New("duckdb: cannot create a configuration")
	}
	defer bindings.DestroyConfig(&cfg)
	for name, value := range opts.DuckDB.settings(w.Settings) {
		if name == "temp_directory" {
			// DuckDB creates the spill directory when it first spills,
			// but not its parents: a state directory not made yet (or the
			// bench's query floor, which has none) would fail the first
			// large sort. Best effort: where it cannot be made, DuckDB's
			// own error says so when it spills.
			_ = os.MkdirAll(value, 0o700)
		}
		if bindings.SetConfig(cfg, name, value) == bindings.StateError {
			return nil, fmt.Errorf("duckdb: setting %s = %q (from the memory budget) is not accepted", name, value)
		}
	}
	for name, value := range w.Settings {
		if name == settingAccessMode {
			continue // the database file's, at ATTACH
		}
		if name == settingMaxConns {
			n, err := strconv.Atoi(value)
			if err != nil || n < 1 {
				return nil, fmt.Errorf("duckdb: %s must be a positive integer, not %q", settingMaxConns, value)
			}
			maxConns = n
			continue
		}
		if bindings.SetConfig(cfg, name, value) == bindings.StateError {
			return nil, fmt.Errorf("duckdb: setting %s = %q is not accepted", name, value)
		}
	}
	var db bindings.Database
	var msg string
	var state bindings.State
	// A database file is attached under a fixed catalog name rather than
	// opened directly: DuckDB would name its catalog after the file, and a
	// file bank.duckdb holding schema BANK would make every "BANK"."T"
	// ambiguous between catalog bank and schema BANK.
	state = bindings.OpenExt("", &db, cfg, &msg)
	if state == bindings.StateError {
		bindings.Close(&db)
		return nil, fmt.Errorf("duckdb: open: %s", msg)
	}
	d := &DuckDB{
		db:      db,
		loads:   w.Loads,
		log:     opts.Logger,
		tokens:  make(chan struct{}, maxConns),
		dbOwned: true,
	}
	d.closing, d.closeCancel = context.WithCancelCause(context.Background())
	if w.Path != "" && w.Path != ":memory:" {
		if _, err := os.Stat(w.Path); err != nil {
			d.Close()
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("duckdb: the database file %s does not exist (give the path of an existing file, or \":memory:\")", w.Path)
			}
			return nil, fmt.Errorf("duckdb: the database file %s: %w", w.Path, err)
		}
		d.path = w.Path
		// Loads create their views in the file: it must be writable then.
		// access_mode "read_write" lets a workspace (or the demo) write
		// its tables.
		d.readOnly = len(w.Loads) == 0
		switch mode := strings.ToLower(w.Settings[settingAccessMode]); mode {
		case "", "automatic":
		case "read_only":
			d.readOnly = true
		case "read_write":
			d.readOnly = false
		default:
			d.Close()
			return nil, fmt.Errorf("duckdb: %s must be read_only, read_write or automatic, not %q", settingAccessMode, mode)
		}
		// One attachment to check the file opens (Refresh uses it when
		// there are loads), released at once.
		release, err := d.Hold(ctx)
		if err != nil {
			d.Close()
			return nil, err
		}
		defer release()
	}
	// The planner compares timestamps as UTC (DESIGN.md: a timestamp
	// without a zone is UTC), whatever the machine's zone. TimeZone
	// belongs to the ICU extension, loaded only once the database is open,
	// so it cannot go in the configuration above.
	if _, set := w.Settings["TimeZone"]; !set {
		if err := d.exec(ctx, "SET GLOBAL TimeZone = 'UTC'"); err != nil {
			d.Close()
			return nil, fmt.Errorf("duckdb: setting the session time zone to UTC: %w", err)
		}
	}
	// A load that fails fails the cycles that read it (RefreshFor), not
	// the warehouse.
	var failed LoadErrors
	if err := d.Refresh(ctx); err != nil && !errors.As(err, &failed) {
		d.Close()
		return nil, err
	}
	return d, nil
}

// CreateDuckDBFile creates an empty DuckDB database file at path, if there
// is none: a warehouse path must name an existing file (a typo must not
// silently become an empty warehouse), so whoever builds one — the demo,
// `linkaud gen`, a test — creates it first.
func CreateDuckDBFile(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	var db bindings.Database
	var msg string
	var cfg bindings.Config
	if bindings.CreateConfig(&cfg) == bindings.StateError {
		return errors.New("duckdb: cannot create a configuration")
	}
	defer bindings.DestroyConfig(&cfg)
	if bindings.OpenExt(path, &db, cfg, &msg) == bindings.StateError {
		bindings.Close(&db)
		return fmt.Errorf("duckdb: creating %s: %s", path, msg)
	}
	bindings.Close(&db)
	return nil
}

// Hold attaches the database file, if it is not yet, and keeps it attached
// until release is called: the engine holds it for a compute cycle, so
// that the cycle's statements share one attachment and the file is free
// again once the cycle is over.
func (d *DuckDB) Hold(ctx context.Context) (release func(), err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	if err := d.attachLocked(); err != nil {
		return nil, err
	}
	d.holds++
	var once sync.Once
	return func() {
		once.Do(func() {
			d.mu.Lock()
			d.holds--
			d.maybeDetachLocked()
			d.mu.Unlock()
		})
	}, nil
}

// Holder is a Warehouse that opens its database only while in use; Hold
// keeps it open across several statements.
type Holder interface {
	Hold(ctx context.Context) (release func(), err error)
}

var _ Holder = (*DuckDB)(nil)

// Hold calls w's Hold if it has one (a no-op release otherwise).
func Hold(ctx context.Context, w Warehouse) (release func(), err error) {
	if h, ok := w.(Holder); ok {
		return h.Hold(ctx)
	}
	return func() {}, nil
}

// attachLocked attaches the database file when it is not; d.mu is held.
func (d *DuckDB) attachLocked() error {
	if d.path == "" || d.attached {
		return nil
	}
	stmt := "ATTACH " + quoteString(d.path) + " AS " + quoteIdent(attachedCatalog)
	if d.readOnly {
		stmt += " (READ_ONLY)"
	}
	if err := d.rawExec(stmt); err != nil {
		if strings.Contains(err.Error(), "lock") {
			return fmt.Errorf("duckdb: open %s: another process holds it (an ETL job writing it?): %w", d.path, err)
		}
		return fmt.Errorf("duckdb: open %s: %w", d.path, err)
	}
	d.attached = true
	return nil
}

// maybeDetachLocked detaches the database file once no statement runs and
// no Hold is taken; connections set to it are closed. d.mu is held.
func (d *DuckDB) maybeDetachLocked() {
	if !d.attached || d.inUse > 0 || d.holds > 0 || d.closed {
		return
	}
	for _, c := range d.idle {
		bindings.Disconnect(&c)
	}
	d.idle = nil
	if err := d.rawExec("DETACH " + quoteIdent(attachedCatalog)); err != nil {
		d.log.Warn("duckdb: detaching the database file failed; it stays open", "path", d.path, "error", err)
		return
	}
	d.attached = false
}

// rawExec runs one statement on a connection of its own.
func (d *DuckDB) rawExec(stmt string) error {
	var conn bindings.Connection
	if bindings.Connect(d.db, &conn) == bindings.StateError {
		return errors.New("duckdb: cannot connect")
	}
	defer bindings.Disconnect(&conn)
	return execOn(conn, stmt)
}

// Dialect implements Warehouse.
func (d *DuckDB) Dialect() string { return "duckdb" }

// acquire takes a token and a connection.
func (d *DuckDB) acquire(ctx context.Context) (bindings.Connection, error) {
	select {
	case d.tokens <- struct{}{}:
	case <-ctx.Done():
		return bindings.Connection{}, ctx.Err()
	}
	d.mu.Lock()
	if d.closed {
		d.mu.Unlock()
		<-d.tokens
		return bindings.Connection{}, ErrClosed
	}
	d.inUse++
	if err := d.attachLocked(); err != nil {
		d.inUse--
		d.mu.Unlock()
		<-d.tokens
		return bindings.Connection{}, err
	}
	if n := len(d.idle); n > 0 {
		conn := d.idle[n-1]
		d.idle = d.idle[:n-1]
		d.mu.Unlock()
		return conn, nil
	}
	d.mu.Unlock()
	var conn bindings.Connection
	if bindings.Connect(d.db, &conn) == bindings.StateError {
		d.release(conn, false)
		return bindings.Connection{}, errors.New("duckdb: cannot connect")
	}
	if d.path != "" {
		// The default catalog is per connection.
		if err := execOn(conn, "USE "+quoteIdent(attachedCatalog)); err != nil {
			d.release(conn, false)
			return bindings.Connection{}, err
		}
	}
	return conn, nil
}

// statement derives the context of one statement: done when ctx is, or
// when the warehouse closes (with cause ErrClosed). end must be called.
func (d *DuckDB) statement(ctx context.Context) (sctx context.Context, end func()) {
	sctx, cancel := context.WithCancelCause(ctx)
	if d.closing.Err() != nil {
		cancel(ErrClosed)
	}
	stop := context.AfterFunc(d.closing, func() { cancel(ErrClosed) })
	return sctx, func() { stop(); cancel(nil) }
}

// ctxError is the error of a statement whose context is done, joined with
// what DuckDB said about it (usually "Interrupted!").
func ctxError(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		return err
	}
	return errors.Join(context.Cause(ctx), err)
}

// release gives the connection back; a connection whose statement failed
// or was interrupted is not reused, so no interrupt or transaction state
// leaks into the next statement.
func (d *DuckDB) release(conn bindings.Connection, reuse bool) {
	d.mu.Lock()
	if reuse && !d.closed {
		d.idle = append(d.idle, conn)
	} else if conn.Ptr != nil {
		bindings.Disconnect(&conn)
	}
	d.inUse--
	d.maybeDetachLocked()
	d.maybeCloseDB()
	d.mu.Unlock()
	<-d.tokens
}

// exec runs statements that return no rows, on one connection.
func (d *DuckDB) exec(ctx context.Context, stmts ...string) error {
	ctx, end := d.statement(ctx)
	defer end()
	conn, err := d.acquire(ctx)
	if err != nil {
		return acquireError(ctx, err)
	}
	stop := interruptOnDone(ctx, conn)
	for _, s := range stmts {
		if err = execOn(conn, s); err != nil {
			break
		}
	}
	interrupted := stop()
	if err != nil {
		err = ctxError(ctx, err)
	}
	d.release(conn, err == nil && !interrupted)
	return err
}

func execOn(conn bindings.Connection, sql string) error {
	if err := checkSQL(sql); err != nil {
		return err
	}
	var res bindings.Result
	defer bindings.DestroyResult(&res)
	if bindings.Query(conn, sql, &res) == bindings.StateError {
		return duckError(bindings.ResultError(&res))
	}
	return nil
}

// checkSQL rejects text the C API would silently cut short.
func checkSQL(sql string) error {
	if strings.IndexByte(sql, 0) >= 0 {
		return errors.New("duckdb: statement contains a NUL byte")
	}
	return nil
}

func duckError(msg string) error {
	err := errors.New("duckdb: " + msg)
	if strings.HasPrefix(msg, "Binder Error") || strings.HasPrefix(msg, "Catalog Error") {
		// A name the statement uses: the column checks can place it.
		return &undefinedError{err}
	}
	if strings.HasPrefix(msg, "Out of Memory Error") {
		return fmt.Errorf("%w: %w", ErrOutOfMemory, err)
	}
	return err
}

// undefinedError is a warehouse error that wraps ErrUndefined.
type undefinedError struct{ err error }

func (e *undefinedError) Error() string   { return e.err.Error() }
func (e *undefinedError) Unwrap() []error { return []error{e.err, ErrUndefined} }

// Refresh implements Refresher: every load becomes
//
//	CREATE SCHEMA IF NOT EXISTS "S";
//	CREATE OR REPLACE VIEW "S"."T" AS SELECT * FROM read_parquet('…');
//
// each on its own, so that one file gone missing leaves the other views
// as they are. DuckDB rebinds a view on every query, so a view already
// follows its file's rows and columns; refreshing at the start of a cycle
// re-creates views dropped by hand in a database file and, above all,
// fails the cycles that read a file that has gone missing or no longer
// reads up front, naming the load (LoadErrors).
func (d *DuckDB) Refresh(ctx context.Context) error {
	if len(d.loads) == 0 {
		return nil
	}
	// An attachment that fails (a file another process holds) is the
	// warehouse's failure, not one of a load.
	release, err := d.Hold(ctx)
	if err != nil {
		return fmt.Errorf("refreshing loads: %w", err)
	}
	defer release()
	d.refreshMu.Lock()
	defer d.refreshMu.Unlock()
	var failed LoadErrors
	for _, l := range d.loads {
		stmts, err := loadStatements(l)
		if err == nil {
			err = d.exec(ctx, stmts...)
			if err != nil && (ctx.Err() != nil || errors.Is(err, ErrClosed)) {
				return fmt.Errorf("refreshing loads: %w", err)
			}
		}
		if err != nil {
			failed = append(failed, &LoadError{Load: l, Err: err})
		}
	}
	if len(failed) > 0 {
		return failed
	}
	return nil
}

func loadStatements(l *dsl.TableFile) ([]string, error) {
	var stmts []string
	if len(l.Table) < 1 || len(l.Table) > 3 {
		return nil, errors.New("a table name has one to three parts")
	}
	if len(l.Table) > 1 {
		stmts = append(stmts, "CREATE SCHEMA IF NOT EXISTS "+quoteIdents(l.Table[:len(l.Table)-1]))
	}
	reader, err := fileReader(l.File)
	if err != nil {
		return nil, err
	}
	if !strings.ContainsAny(l.File, "*?[") {
		// DuckDB's message for a missing file is about glob patterns.
		if _, err := os.Stat(l.File); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("the file %s does not exist", l.File)
			}
			return nil, err
		}
	}
	stmts = append(stmts, fmt.Sprintf("CREATE OR REPLACE VIEW %s AS SELECT * FROM %s(%s)",
		quoteIdents(l.Table), reader, quoteString(l.File)))
	return stmts, nil
}

// fileReader picks DuckDB's table function by extension; a compression
// suffix (.gz, .zst) is looked through. The path may be a glob.
func fileReader(path string) (string, error) {
	p := strings.ToLower(path)
	for _, z := range []string{".gz", ".zst"} {
		p = strings.TrimSuffix(p, z)
	}
	switch filepath.Ext(p) {
	case ".csv", ".tsv", ".txt":
		return "read_csv", nil
	case ".parquet":
		return "read_parquet", nil
	case ".json", ".jsonl", ".ndjson":
		return "read_json", nil
	}
	return "", fmt.Errorf("cannot read %q: not .csv, .tsv, .parquet or .json", filepath.Base(path))
}

// quoteIdent quotes a DuckDB identifier: any text, keywords included, is
// one name.
func quoteIdent(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, `""`) + `"`
}

func quoteIdents(parts []string) string {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = quoteIdent(p)
	}
	return strings.Join(q, ".")
}

// quoteString is a DuckDB string literal; backslashes are ordinary there.
func quoteString(s string) string {
	return `'` + strings.ReplaceAll(s, `'`, `''`) + `'`
}

// Columns implements Warehouse.
func (d *DuckDB) Columns(ctx context.Context, table dsl.TableName) ([]string, error) {
	if len(table) < 1 || len(table) > 3 {
		return nil, fmt.Errorf("duckdb: table name %q has one to three parts", table)
	}
	ctx, end := d.statement(ctx)
	defer end()
	conn, err := d.acquire(ctx)
	if err != nil {
		return nil, acquireError(ctx, err)
	}
	stop := interruptOnDone(ctx, conn)
	cols, err := columnsOn(conn, table)
	interrupted := stop()
	if err != nil {
		err = ctxError(ctx, err)
	}
	d.release(conn, err == nil && !interrupted)
	return cols, err
}

func acquireError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return err
}

func columnsOn(conn bindings.Connection, table dsl.TableName) ([]string, error) {
	var res bindings.Result
	defer bindings.DestroyResult(&res)
	if bindings.Query(conn, "SELECT * FROM "+quoteIdents(table)+" LIMIT 0", &res) == bindings.StateError {
		msg := bindings.ResultError(&res)
		if bindings.ResultErrorType(&res) == bindings.ErrorTypeCatalog {
			return nil, fmt.Errorf("%w: %s (%s)", ErrTableNotFound, table, msg)
		}
		return nil, duckError(msg)
	}
	n := bindings.ColumnCount(&res)
	cols := make([]string, n)
	for i := range n {
		cols[i] = bindings.ColumnName(&res, i)
	}
	return cols, nil
}

// Query implements Warehouse.
func (d *DuckDB) Query(ctx context.Context, sql string, opts QueryOptions) (array.RecordReader, error) {
	if err := checkSQL(sql); err != nil {
		return nil, err
	}
	ctx, end := d.statement(ctx)
	conn, err := d.acquire(ctx)
	if err != nil {
		err = acquireError(ctx, err)
		end()
		return nil, err
	}
	r := &duckReader{d: d, conn: conn, ctx: ctx, end: end}
	r.refs.Store(1)
	r.stop = interruptOnDone(ctx, conn)
	if err := r.start(sql); err != nil {
		// Before finish, which ends the statement's context: the error
		// must not read as a cancellation.
		err = ctxError(ctx, err)
		r.finish(false)
		return nil, err
	}
	return r, nil
}

// interruptOnDone interrupts conn's statement once ctx is done, and again
// every 50ms until stop is called: an interrupt that lands between two
// phases of a statement can be cleared when the next phase begins. stop reports whether ctx
// fired; after it returns no interrupt is in flight, so the connection can
// be reused.
func interruptOnDone(ctx context.Context, conn bindings.Connection) (stop func() bool) {
	done := make(chan struct{})
	exited := make(chan bool, 1)
	go func() {
		select {
		case <-done:
			exited <- false
			return
		case <-ctx.Done():
		}
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			bindings.Interrupt(conn)
			select {
			case <-done:
				exited <- true
				return
			case <-t.C:
			}
		}
	}()
	return func() bool {
		close(done)
		return <-exited
	}
}

// duckReader streams a DuckDB streaming result as Arrow record batches.
type duckReader struct {
	d    *DuckDB
	conn bindings.Connection
	ctx  context.Context // the statement's: see DuckDB.statement
	end  func()
	stop func() bool

	res     bindings.Result
	hasRes  bool
	opts    bindings.ArrowOptions
	hasOpts bool
	schema  *arrow.Schema

	// A producer goroutine fetches and converts chunks ahead of the
	// consumer, so DuckDB works while the differ reads; it owns the result
	// until it closes out.
	out     chan fetched
	quit    chan struct{}
	started bool

	readerState
}

// prefetch is how many converted batches may wait for the consumer.
const prefetch = 2

type fetched struct {
	rec arrow.RecordBatch
	err error
}

var _ array.RecordReader = (*duckReader)(nil)

func (r *duckReader) start(sql string) error {
	var stmt bindings.PreparedStatement
	defer bindings.DestroyPrepare(&stmt)
	if bindings.Prepare(r.conn, sql, &stmt) == bindings.StateError {
		return duckError(bindings.PrepareError(stmt))
	}
	var pending bindings.PendingResult
	defer bindings.DestroyPending(&pending)
	// Deprecated in DuckDB's C API but, as of 1.5, still the only way to
	// ask for a streaming result; without it the result is materialised.
	if bindings.PendingPreparedStreaming(stmt, &pending) == bindings.StateError {
		return duckError(bindings.PendingError(pending))
	}
	r.hasRes = true
	if bindings.ExecutePending(pending, &r.res) == bindings.StateError {
		return duckError(bindings.ResultError(&r.res))
	}
	r.opts = bindings.ResultGetArrowOptions(&r.res)
	r.hasOpts = true
	n := bindings.ColumnCount(&r.res)
	names := make([]string, n)
	types := make([]bindings.LogicalType, n)
	for i := range n {
		names[i] = bindings.ColumnName(&r.res, i)
		types[i] = bindings.ColumnLogicalType(&r.res, i)
	}
	defer func() {
		for i := range types {
			bindings.DestroyLogicalType(&types[i])
		}
	}()
	schema, ed := newArrowSchema(r.opts, types, names)
	defer bindings.DestroyErrorData(&ed)
	if bindings.ErrorDataHasError(ed) {
		return duckError("arrow schema: " + bindings.ErrorDataMessage(ed))
	}
	r.schema = schema
	return nil
}

func (r *duckReader) Schema() *arrow.Schema { return r.schema }

func (r *duckReader) Next() bool {
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	if r.done {
		return false
	}
	if r.ctx.Err() != nil {
		return r.fail(context.Cause(r.ctx))
	}
	if !r.started {
		r.started = true
		r.out, r.quit = make(chan fetched, prefetch), make(chan struct{})
		go r.produce()
	}
	f, ok := <-r.out
	if !ok {
		r.done = true
		return false
	}
	if f.err != nil {
		return r.fail(f.err)
	}
	r.current = f.rec
	return true
}

// produce fetches chunks until the result ends, fails, or quit closes.
func (r *duckReader) produce() {
	defer close(r.out)
	for {
		rec, err := r.fetch()
		if rec == nil && err == nil {
			return
		}
		select {
		case r.out <- fetched{rec, err}:
		case <-r.quit:
			if rec != nil {
				rec.Release()
			}
			return
		}
		if err != nil {
			return
		}
	}
}

// fetch reads and converts one chunk; nil, nil at the end.
func (r *duckReader) fetch() (arrow.RecordBatch, error) {
	chunk := bindings.FetchChunk(r.res)
	if chunk.Ptr == nil {
		if msg := bindings.ResultError(&r.res); msg != "" {
			return nil, ctxError(r.ctx, duckError(msg))
		}
		return nil, nil
	}
	defer bindings.DestroyDataChunk(&chunk)
	rec, ed := chunkToArrow(r.opts, r.schema, chunk)
	defer bindings.DestroyErrorData(&ed)
	if bindings.ErrorDataHasError(ed) {
		return nil, duckError("arrow conversion: " + bindings.ErrorDataMessage(ed))
	}
	return rec, nil
}

func (r *duckReader) Release() {
	if r.refs.Add(-1) != 0 {
		return
	}
	if r.current != nil {
		r.current.Release()
		r.current = nil
	}
	r.finish(r.err == nil && r.done)
}

// finish stops the producer, frees the result and returns the connection;
// reuse only after a result read to its end without error.
func (r *duckReader) finish(reuse bool) {
	if r.started {
		if !r.done {
			// The producer may be inside a fetch: interrupt it.
			r.end()
		}
		close(r.quit)
		for f := range r.out {
			if f.rec != nil {
				f.rec.Release()
			}
		}
	}
	interrupted := r.stop()
	if r.hasOpts {
		bindings.DestroyArrowOptions(&r.opts)
	}
	if r.hasRes {
		bindings.DestroyResult(&r.res)
	}
	r.d.release(r.conn, reuse && !interrupted)
	r.end()
}

// Close implements Warehouse.
func (d *DuckDB) Close() error {
	d.closeCancel(ErrClosed)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	for _, c := range d.idle {
		bindings.Disconnect(&c)
	}
	d.idle = nil
	d.maybeCloseDB()
	return nil
}

// maybeCloseDB closes the database once the warehouse is closed and the
// last connection is back; d.mu is held.
func (d *DuckDB) maybeCloseDB() {
	if d.closed && d.dbOwned && d.inUse == 0 {
		bindings.Close(&d.db)
		d.dbOwned = false
	}
}
