package executor_test

import (
	"context"
	"errors"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/pgtest"
)

// openPG opens a postgres (or redshift-dialect) warehouse on a new test
// database, with the given settings.
func openPG(t *testing.T, kind string, settings map[string]string) (executor.Warehouse, string) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	return openPGAt(t, kind, dsn, settings), dsn
}

func openPGAt(t *testing.T, kind, dsn string, settings map[string]string) executor.Warehouse {
	t.Helper()
	if settings == nil {
		settings = map[string]string{}
	}
	w := &dsl.Warehouse{Type: kind, DSN: dsl.Secret{Env: "PG_DSN"}, Settings: settings}
	wh, err := executor.Open(context.Background(), w, executor.Options{
		MaxConns:  2,
		LookupEnv: func(n string) (string, bool) { return dsn, n == "PG_DSN" },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	return wh
}

// cellRows reads a whole result as canonical text, "NULL" for NULLs.
func cellRows(t *testing.T, wh executor.Warehouse, q string) ([]string, *arrow.Schema) {
	t.Helper()
	rd, err := wh.Query(context.Background(), q, executor.QueryOptions{Tag: "test"})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var out []string
	for rd.Next() {
		rec := rd.RecordBatch()
		for r := 0; r < int(rec.NumRows()); r++ {
			var vals []string
			for i := 0; i < int(rec.NumCols()); i++ {
				c, err := executor.NewCells(rec.Column(i))
				if err != nil {
					t.Fatal(err)
				}
				s, ok := c.Text(r)
				if !ok {
					s = "NULL"
				}
				vals = append(vals, s)
			}
			out = append(out, strings.Join(vals, " | "))
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	return out, rd.Schema()
}

// TestPostgresTypes reads every type the reader decodes, in binary
// (postgres) and in text (the redshift dialect asks for text), and checks
// both give the same canonical text and Arrow types.
func TestPostgresTypes(t *testing.T) {
	const q = `SELECT
	  true AS b, 12::smallint AS i2, -7::integer AS i4, 9007199254740993::bigint AS i8,
	  1.5::real AS f4, 0.1::double precision AS f8, 'NaN'::float8 AS nan,
	  12.50::numeric(10,2) AS dec, 123456789012345678901234567890.12::numeric(40,2) AS big,
	  12.345::numeric AS loose,
	  'it''s'::text AS txt, 'x'::varchar(3) AS vc, 'ab'::char(4) AS ch,
	  DATE '2026-03-15' AS d, TIMESTAMP '2026-03-15 12:34:56.123456' AS ts,
	  TIMESTAMPTZ '2026-03-15 12:34:56+02' AS tstz, TIME '01:02:03.5' AS tm,
	  INTERVAL '1 month 2 days 3 seconds' AS iv, '\x0102ff'::bytea AS by,
	  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS id, '{"a": [1, 2]}'::jsonb AS j,
	  ARRAY[1, 2] AS arr, NULL::int AS nul, 'é日😀'::text AS uni`
	want := []string{"true", "12", "-7", "9007199254740993", "1.5", "0.1", "NaN", "12.50",
		"123456789012345678901234567890.12", "12.345", "it's", "x", "ab  ", "2026-03-15",
		"2026-03-15T12:34:56.123456Z", "2026-03-15T10:34:56Z", "01:02:03.5", "P1M2DT3S", "AQL/",
		"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", `{"a": [1, 2]}`, "{1,2}", "NULL", "é日😀"}
	wh, dsn := openPG(t, "postgres", nil)
	rows, schema := cellRows(t, wh, q)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	if got := strings.Split(rows[0], " | "); strings.Join(got, "\n") != strings.Join(want, "\n") {
		for i := range want {
			if i >= len(got) || got[i] != want[i] {
				t.Errorf("%s: got %q, want %q", schema.Field(i).Name, got[i], want[i])
			}
		}
	}
	types := map[string]string{"i2": "int16", "i4": "int32", "i8": "int64", "f4": "float32", "f8": "float64",
		"dec": "decimal(10, 2)", "big": "decimal256(40, 2)", "loose": "utf8", "d": "date32", "ts": "timestamp[us]",
		"tstz": "timestamp[us, tz=UTC]", "by": "binary", "iv": "month_day_nano_interval"}
	for i, f := range schema.Fields() {
		if w, ok := types[f.Name]; ok && f.Type.String() != w {
			t.Errorf("column %d %s: Arrow type %s, want %s", i, f.Name, f.Type, w)
		}
	}

	// Redshift's text form: the same values, intervals (text) aside.
	rs := openPGAt(t, "redshift", dsn, nil)
	rows, _ = cellRows(t, rs, strings.Replace(q, "INTERVAL '1 month 2 days 3 seconds' AS iv", "NULL AS iv", 1))
	got := strings.Split(rows[0], " | ")
	for i := range want {
		if i == 17 {
			continue
		}
		if got[i] != want[i] {
			t.Errorf("text form, column %d: got %q, want %q", i, got[i], want[i])
		}
	}
}

// TestPostgresSession: sessions run in UTC, with the schema setting first
// on the search path and query_tag as application_name; statements carry
// the tag in a comment the server's activity view shows.
func TestPostgresSession(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := pgtest.Connect(t, dsn)
	ctx := context.Background()
	if _, err := c.Exec(ctx, `CREATE SCHEMA analytics; CREATE TABLE analytics.profiles (id int); INSERT INTO analytics.profiles VALUES (1), (2)`); err != nil {
		t.Fatal(err)
	}
	wh := openPGAt(t, "postgres", dsn, map[string]string{"schema": "ANALYTICS", "query_tag": "nightly */ DROP"})
	rows, _ := cellRows(t, wh, `SELECT current_setting('TimeZone'), current_setting('application_name'), count(*)::text FROM profiles`)
	if want := "UTC | linkaud:nightly */ DROP | 2"; rows[0] != want {
		t.Errorf("session: %q, want %q", rows[0], want)
	}
	rows, _ = cellRows(t, wh, `SELECT query FROM pg_stat_activity WHERE pid = pg_backend_pid()`)
	if !strings.HasPrefix(rows[0], "/* linkaud:nightly * / DROP test */") {
		t.Errorf("statement text %q does not start with the tag comment", rows[0])
	}
}

// TestPostgresErrors: the server's message reaches the caller with its
// SQLSTATE; missing names wrap ErrUndefined (tables: ErrTableNotFound).
func TestPostgresErrors(t *testing.T) {
	wh, _ := openPG(t, "postgres", nil)
	ctx := context.Background()
	_, err := wh.Query(ctx, `SELECT nope FROM pg_class`, executor.QueryOptions{})
	if err == nil || !errors.Is(err, executor.ErrUndefined) || !strings.Contains(err.Error(), `column "nope" does not exist`) || !strings.Contains(err.Error(), "42703") {
		t.Errorf("undefined column: %v", err)
	}
	if _, err := wh.Columns(ctx, dsl.TableName{"NO", "SUCH"}); !errors.Is(err, executor.ErrTableNotFound) {
		t.Errorf("missing table: %v", err)
	}
	// An error in the middle of the stream (division by zero at row 5000).
	rd, err := wh.Query(ctx, `SELECT 10 / (5000 - i) FROM generate_series(1, 10000) i`, executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for rd.Next() {
	}
	if err := rd.Err(); err == nil || !strings.Contains(err.Error(), "division by zero") {
		t.Errorf("mid-stream error: %v", err)
	}
	rd.Release()
	// The pool still works.
	if rows, _ := cellRows(t, wh, "SELECT 1"); len(rows) != 1 {
		t.Fatal(rows)
	}
}

// TestPostgresTimeoutAndCancel: the timeout setting ends a long statement
// on the server with a message naming the setting; a cancelled context
// ends it too, and the connection is not reused mid-protocol.
func TestPostgresTimeoutAndCancel(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	wh := openPGAt(t, "postgres", dsn, map[string]string{"timeout": "300ms"})
	if err := drain(wh, context.Background(), `SELECT pg_sleep(5)`); err == nil || !strings.Contains(err.Error(), "timeout setting (300ms)") {
		t.Errorf("timeout: %v", err)
	}
	wh = openPGAt(t, "postgres", dsn, nil)
	ctx, cancel := context.WithCancel(context.Background())
	go func() { time.Sleep(200 * time.Millisecond); cancel() }()
	start := time.Now()
	if err := drain(wh, ctx, `SELECT pg_sleep(5)`); err == nil || !errors.Is(err, context.Canceled) {
		t.Errorf("cancel: %v", err)
	}
	if d := time.Since(start); d > 4*time.Second {
		t.Errorf("cancel took %s", d)
	}
	if rows, _ := cellRows(t, wh, "SELECT 1"); len(rows) != 1 {
		t.Fatal(rows)
	}
	// Releasing a reader early cancels the rest of its statement.
	rd, err := wh.Query(context.Background(), `SELECT i, j, md5(i::text) FROM generate_series(1, 10000) i, generate_series(1, 10000) j`, executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rd.Next() {
		t.Fatal(rd.Err())
	}
	start = time.Now()
	rd.Release()
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("early release took %s", d)
	}
	if rows, _ := cellRows(t, wh, "SELECT 2"); len(rows) != 1 {
		t.Fatal(rows)
	}
}

// drain runs q to its end and returns the error that ended it.
func drain(wh executor.Warehouse, ctx context.Context, q string) error {
	rd, err := wh.Query(ctx, q, executor.QueryOptions{})
	if err != nil {
		return err
	}
	defer rd.Release()
	for rd.Next() {
	}
	return rd.Err()
}

// TestPostgresColumnTypes: check --warehouse sees names (folded as the
// dialect folds them) and type classes.
func TestPostgresColumnTypes(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	c := pgtest.Connect(t, dsn)
	if _, err := c.Exec(context.Background(), `CREATE SCHEMA bank; CREATE TABLE bank.accounts (id bigint, email text, opened date, vip boolean, "MixedCase" int)`); err != nil {
		t.Fatal(err)
	}
	wh := openPGAt(t, "postgres", dsn, nil)
	typer := wh.(dsl.ColumnTyper)
	cols, err := typer.ColumnTypes(context.Background(), dsl.TableName{"BANK", "ACCOUNTS"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range cols {
		got = append(got, c.Name+":"+c.Class.String())
	}
	if want := "id:number email:text opened:date or timestamp vip:boolean MixedCase:number"; strings.Join(got, " ") != want {
		t.Errorf("got %s, want %s", strings.Join(got, " "), want)
	}
	// Exact names: BANK.ACCOUNTS is another table.
	exact := openPGAt(t, "postgres", dsn, map[string]string{"exact_names": "true"})
	if _, err := exact.Columns(context.Background(), dsl.TableName{"BANK", "ACCOUNTS"}); !errors.Is(err, executor.ErrTableNotFound) {
		t.Errorf("exact names: %v", err)
	}
}

// TestPostgresStreamsFlat streams 5M rows: the Go heap stays bounded by a
// couple of batches, however long the result.
func TestPostgresStreamsFlat(t *testing.T) {
	n := 5_000_000
	if testing.Short() {
		n = 500_000
	}
	wh, _ := openPG(t, "postgres", nil)
	rd, err := wh.Query(context.Background(), `SELECT i::text AS profile_key, i AS key_0, md5(i::text) AS enrich_0 FROM generate_series(1, `+strconv.Itoa(n)+`) i`, executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var ms runtime.MemStats
	var peak uint64
	rows, batches := 0, 0
	for rd.Next() {
		rows += int(rd.RecordBatch().NumRows())
		if batches++; batches%50 == 0 {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := rd.Err(); err != nil {
		t.Fatal(err)
	}
	if rows != n {
		t.Fatalf("%d rows, want %d", rows, n)
	}
	t.Logf("%d rows in %d batches; peak heap in use %d MB", rows, batches, peak>>20)
	// The whole result would take some 300 MB (5M rows of ~60 bytes).
	if peak > 64<<20 {
		t.Errorf("heap grew to %d MB while streaming", peak>>20)
	}
}

// max_connections bounds the pool: with 1, a second statement waits until
// the first one's reader is released.
func TestPostgresMaxConnections(t *testing.T) {
	wh, _ := openPG(t, "postgres", map[string]string{"max_connections": "1"})
	ctx := context.Background()
	first, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if rd, err := wh.Query(waitCtx, "SELECT 2", executor.QueryOptions{}); err == nil {
		rd.Release()
		t.Fatal("a second statement ran beside the first: max_connections 1 was not applied")
	}
	first.Release()
	rd, err := wh.Query(ctx, "SELECT 3", executor.QueryOptions{})
	if err != nil {
		t.Fatalf("after the release: %v", err)
	}
	rd.Release()
}
