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

	"github.com/apache/arrow-go/v18/arrow/array"
	"google.golang.org/api/option"

	"github.com/linkaud/linkaud/dsl"
)

// Warehouse runs SQL and streams the results as Arrow record batches.
//
// All methods are safe for concurrent use: audiences of one cycle query in
// parallel, each on its own connection, up to Options.MaxConns at a time
// (further queries wait for a free connection or their context).
//
// The caller owns every RecordReader it gets and must Release it, also on
// error paths; the reader holds its connection until then. A reader itself is
// for one goroutine. Batches are valid until the next call to Next or until
// the reader is released; Retain one to keep it longer. Memory does not grow
// with the result: a reader holds the current batch and fetches a couple
// ahead (DuckDB: batches of at most 2048 rows, two ahead; Snowflake: result
// chunks, one ahead).
//
// Warehouses whose tables are backed by files (DuckDB loads) also implement
// Refresher; call Refresh before each compute cycle.
type Warehouse interface {
	// Query runs one SQL statement. A cancelled ctx interrupts the running
	// statement and makes the reader's Err return the context's error.
	Query(ctx context.Context, sql string, opts QueryOptions) (array.RecordReader, error)
	// Columns lists the columns of a table or view, in order, as the
	// warehouse names them (Snowflake: upper case for unquoted names). A
	// missing table is an error wrapping ErrTableNotFound.
	Columns(ctx context.Context, table dsl.TableName) ([]string, error)
	// Dialect is the planner's dialect name: "duckdb", "snowflake",
	// "postgres", "redshift", "bigquery" or "databricks".
	Dialect() string
	// Close releases the warehouse. Queries still streaming are interrupted;
	// their readers report an error, and must still be released.
	Close() error
}

// Refresher is a Warehouse whose tables are views over files.
type Refresher interface {
	// Refresh re-creates the file-backed views and checks that every file
	// still reads, so that a cycle fails up front, naming the file, rather
	// than in the middle of a query. Each load is refreshed on its own:
	// when some fail, the others are refreshed and the error is a
	// LoadErrors listing the failed ones (their previous definitions
	// stay); any other error is the warehouse's.
	Refresh(ctx context.Context) error
}

// Refresh calls w's Refresh if it has one.
func Refresh(ctx context.Context, w Warehouse) error {
	if r, ok := w.(Refresher); ok {
		return r.Refresh(ctx)
	}
	return nil
}

// RefreshFor refreshes w's loads before a statement that reads tables
// (dsl.TablesRead): it fails with the loads of those tables that failed,
// and only with them, so that one broken file fails only the audiences
// that read it. The engine calls it at the start of every compute cycle.
func RefreshFor(ctx context.Context, w Warehouse, tables []dsl.TableName) error {
	err := Refresh(ctx, w)
	var failed LoadErrors
	if !errors.As(err, &failed) {
		return err
	}
	return failed.For(tables)
}

// LoadError is a load whose file is missing or does not read: the
// workspace's to fix (a user error), not the warehouse's.
type LoadError struct {
	Load *dsl.TableFile
	Err  error
}

func (e *LoadError) Error() string {
	p := e.Load.Start
	return fmt.Sprintf("%s:%d:%d: load %q: %v", filepath.Base(p.Filename), p.Line, p.Column, e.Load.Table.String(), e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// IsReason says the message is for people as it is (diff.Reason).
func (e *LoadError) IsReason() {}

// LoadErrors are the loads a Refresh could not refresh.
type LoadErrors []*LoadError

func (e LoadErrors) Error() string {
	msgs := make([]string, len(e))
	for i, le := range e {
		msgs[i] = le.Error()
	}
	return strings.Join(msgs, "\n")
}

// IsReason says the message is for people as it is (diff.Reason).
func (e LoadErrors) IsReason() {}

// Unwrap lets errors.As find each *LoadError.
func (e LoadErrors) Unwrap() []error {
	out := make([]error, len(e))
	for i, le := range e {
		out[i] = le
	}
	return out
}

// For returns the failed loads of tables (names compared as the checks
// compare them, case-insensitively), nil when none of them failed.
func (e LoadErrors) For(tables []dsl.TableName) error {
	read := map[string]bool{}
	for _, t := range tables {
		read[strings.ToUpper(t.String())] = true
	}
	var out LoadErrors
	for _, le := range e {
		if read[strings.ToUpper(le.Load.Table.String())] {
			out = append(out, le)
		}
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// QueryOptions are per-statement options.
type QueryOptions struct {
	// Tag names the work, e.g. the audience. Snowflake records it as the
	// statement's QUERY_TAG (after the query_tag setting, if any), so
	// warehouse admins can attribute cost; DuckDB ignores it.
	Tag string
	// Selective says the statement reads few rows of each table (`linkaud
	// why`: everything restricted to one profile). PostgreSQL allows
	// nested loops for it, which the session otherwise turns off for the
	// whole-table joins of a cycle.
	Selective bool
}

// Options configure Open. The zero value is ready to use.
type Options struct {
	// MaxConns bounds the statements running at once; each reader holds
	// its connection until it is released. Default 4, or the warehouse's
	// max_connections setting.
	MaxConns int
	// Logger receives connection-level events; never SQL text with
	// literals, never a secret. Default slog.Default().
	Logger *slog.Logger
	// LookupEnv reads the environment variables named by env("…")
	// settings. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// GoogleAPI adds options to the clients of a BigQuery warehouse:
	// tests point them at fakes of BigQuery's REST API and of the Storage
	// Read API (endpoints, TLS roots). Production leaves it empty.
	GoogleAPI GoogleAPI
	// DuckDB bounds an embedded DuckDB, for the settings its warehouse
	// block does not name itself: the engine fills it from the memory
	// budget (engine.PlanMemory). Zero fields leave DuckDB's defaults.
	DuckDB DuckDBLimits
}

// DuckDBLimits are the DuckDB settings a memory budget decides.
type DuckDBLimits struct {
	// MemoryLimit is DuckDB's memory_limit in bytes: its buffer pool,
	// which joins, aggregates and the ORDER BY live in.
	MemoryLimit int64
	// Threads is DuckDB's threads; each needs working memory of its own.
	Threads int
	// TempDir is DuckDB's temp_directory, where it spills what does not
	// fit in MemoryLimit. An in-memory database has none by default, so
	// without it a large sort fails instead of spilling.
	TempDir string
	// NoInsertionOrder sets preserve_insertion_order = false: plans order
	// their results themselves, and keeping insertion order costs memory.
	// Set only under an explicit budget.
	NoInsertionOrder bool
	// FlushAllocator sets allocator_flush_threshold and
	// allocator_bulk_deallocation_flush_threshold to 0: DuckDB's allocator
	// (jemalloc, and its block allocator's per-thread caches) hands freed
	// memory back to the system after every task. By default it keeps up
	// to 128 MiB per thread, and the goroutines that fetch a result run on
	// many OS threads, so a process whose buffer pool was capped at 320 MB
	// kept 500–700 MB resident (BENCHMARKS.md, 10M profiles: memory).
	FlushAllocator bool
}

// settings returns the DuckDB options l decides, leaving out those named
// in the warehouse block (the user's word wins).
func (l DuckDBLimits) settings(set map[string]string) map[string]string {
	out := map[string]string{}
	add := func(name, value string) {
		if _, ok := set[name]; !ok && value != "" {
			out[name] = value
		}
	}
	if l.MemoryLimit > 0 {
		add("memory_limit", strconv.FormatInt(l.MemoryLimit>>20, 10)+"MiB")
	}
	if l.Threads > 0 {
		add("threads", strconv.Itoa(l.Threads))
	}
	add("temp_directory", l.TempDir)
	if l.NoInsertionOrder {
		add("preserve_insertion_order", "false")
	}
	if l.FlushAllocator {
		add("allocator_flush_threshold", "0MiB")
		add("allocator_bulk_deallocation_flush_threshold", "0MiB")
	}
	return out
}

// ErrOutOfMemory is wrapped by a statement that failed for want of memory
// under the warehouse's memory limit.
var ErrOutOfMemory = errors.New("warehouse: out of memory")

// GoogleAPI holds client options for Google's APIs.
type GoogleAPI struct {
	REST    []option.ClientOption // BigQuery's REST API (jobs, datasets)
	Storage []option.ClientOption // the BigQuery Storage Read API (gRPC)
}

// DefaultMaxConns is Options.MaxConns when unset.
const DefaultMaxConns = 4

// EnsureDefaults fills the unset fields of o.
func (o *Options) EnsureDefaults() *Options {
	if o.MaxConns <= 0 {
		o.MaxConns = DefaultMaxConns
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.LookupEnv == nil {
		o.LookupEnv = os.LookupEnv
	}
	return o
}

var (
	// ErrTableNotFound is wrapped by Columns' error for a missing table.
	ErrTableNotFound = errors.New("executor: table not found")
	// ErrUndefined is wrapped by a statement's error when the warehouse
	// does not know a table, column or function it names: the workspace
	// and the warehouse disagree, which the column checks can place.
	ErrUndefined = errors.New("executor: a name the statement uses is not defined in the warehouse")
	// ErrClosed is returned by a closed Warehouse.
	ErrClosed = errors.New("executor: warehouse closed")
)

// Open connects to the warehouse w describes: embedded DuckDB (type duckdb,
// the default), Snowflake, PostgreSQL, Redshift, BigQuery or Databricks.
// For DuckDB it also creates the views of w's loads, so a missing file is
// reported here; the others run a first statement, so that bad credentials
// fail here rather than in a cycle.
func Open(ctx context.Context, w *dsl.Warehouse, opts Options) (Warehouse, error) {
	opts.EnsureDefaults()
	switch w.Type {
	case "", "duckdb":
		return openDuckDB(ctx, w, opts)
	case "snowflake":
		return openSnowflake(ctx, w, opts)
	case "postgres", "redshift":
		return openPostgres(ctx, w, opts)
	case "databricks":
		return openDatabricks(ctx, w, opts)
	case "bigquery":
		return openBigQuery(ctx, w, opts)
	}
	return nil, fmt.Errorf("executor: unknown warehouse type %q", w.Type)
}
