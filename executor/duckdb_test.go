package executor

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
)

func openDuck(t testing.TB, w *dsl.Warehouse, opts Options) *DuckDB {
	t.Helper()
	if w == nil {
		w = &dsl.Warehouse{Type: "duckdb", Path: ":memory:"}
	}
	wh, err := Open(context.Background(), w, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { wh.Close() })
	return wh.(*DuckDB)
}

const nullText = "∅"

// readAll drains rr into rows of canonical text, NULL as ∅, and releases it.
func readAll(t testing.TB, rr array.RecordReader) [][]string {
	t.Helper()
	defer rr.Release()
	var rows [][]string
	for rr.Next() {
		rec := rr.RecordBatch()
		cols := make([]Cells, rec.NumCols())
		for j := range cols {
			c, err := NewCells(rec.Column(j))
			if err != nil {
				t.Fatal(err)
			}
			cols[j] = c
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, len(cols))
			for j, c := range cols {
				if s, ok := c.Text(i); ok {
					row[j] = s
				} else {
					row[j] = nullText
				}
			}
			rows = append(rows, row)
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	return rows
}

func query(t testing.TB, w Warehouse, sql string) [][]string {
	t.Helper()
	rr, err := w.Query(context.Background(), sql, QueryOptions{})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return readAll(t, rr)
}

// TestDuckDBTypes reads DuckDB's own results for every column type an
// audience can select, through the Arrow batches DuckDB exports.
func TestDuckDBTypes(t *testing.T) {
	d := openDuck(t, nil, Options{})
	rr, err := d.Query(context.Background(), `
		SELECT
			'Zoë 🐈'::VARCHAR                        AS s,
			42::INTEGER                               AS i,
			(-9223372036854775808)::BIGINT            AS big,
			170141183460469231731687303715884105727::HUGEINT AS huge,
			(SELECT SUM(x) FROM (VALUES (9223372036854775807::BIGINT), (10::BIGINT)) v(x)) AS sum_big,
			12.5::DECIMAL(10,2)                       AS dec,
			0.1::DOUBLE                               AS dbl,
			0.1::REAL                                 AS real,
			true                                      AS b,
			DATE '2024-01-31'                         AS d,
			TIMESTAMP '2026-11-28 10:00:00.25'        AS ts,
			TIMESTAMPTZ '2026-11-28 11:00:00+01'      AS tstz,
			TIME '13:05:09'                           AS tm,
			INTERVAL '1 year 2 days 3 seconds'        AS iv,
			'123e4567-e89b-12d3-a456-426614174000'::UUID AS u,
			'dog'::ENUM('cat', 'dog')                 AS e,
			'\x01\xff'::BLOB                          AS bl,
			[1, 2, NULL]                              AS l,
			{'id': 'a_7', 'n': 3}                     AS st,
			MAP {'k': 1.5}                            AS m,
			NULL::VARCHAR                             AS n,
			200::UTINYINT                             AS ut
	`, QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if !rr.Next() {
		t.Fatal(rr.Err())
	}
	rec := rr.RecordBatch()
	want := map[string]struct {
		text  string
		value any
	}{
		"s":       {"Zoë 🐈", "Zoë 🐈"},
		"i":       {"42", int64(42)},
		"big":     {"-9223372036854775808", int64(-9223372036854775808)},
		"huge":    {"170141183460469231731687303715884105727", json.Number("170141183460469231731687303715884105727")},
		"sum_big": {"9223372036854775817", json.Number("9223372036854775817")},
		"dec":     {"12.50", json.Number("12.50")},
		"dbl":     {"0.1", 0.1},
		"real":    {"0.1", 0.1},
		"b":       {"true", true},
		"d":       {"2024-01-31", "2024-01-31"},
		"ts":      {"2026-11-28T10:00:00.25Z", "2026-11-28T10:00:00.25Z"},
		"tstz":    {"2026-11-28T10:00:00Z", "2026-11-28T10:00:00Z"},
		"tm":      {"13:05:09", "13:05:09"},
		"iv":      {"P1Y2DT3S", "P1Y2DT3S"},
		"u":       {"123e4567-e89b-12d3-a456-426614174000", "123e4567-e89b-12d3-a456-426614174000"},
		"e":       {"dog", "dog"},
		"bl":      {"Af8=", "Af8="},
		"l":       {"[1,2,null]", []any{int64(1), int64(2), nil}},
		"st":      {`{"id":"a_7","n":3}`, map[string]any{"id": "a_7", "n": int64(3)}},
		"m":       {`{"k":1.5}`, map[string]any{"k": json.Number("1.5")}},
		"n":       {nullText, nil},
		"ut":      {"200", uint64(200)},
	}
	if int(rec.NumCols()) != len(want) {
		t.Fatalf("%d columns, want %d", rec.NumCols(), len(want))
	}
	for j, f := range rec.Schema().Fields() {
		w, ok := want[f.Name]
		if !ok {
			t.Errorf("unexpected column %s", f.Name)
			continue
		}
		c, err := NewCells(rec.Column(j))
		if err != nil {
			t.Errorf("%s (%s): %v", f.Name, f.Type, err)
			continue
		}
		text, ok := c.Text(0)
		if !ok {
			text = nullText
		}
		if text != w.text {
			t.Errorf("%s (%s): Text = %q, want %q", f.Name, f.Type, text, w.text)
		}
		if v := c.Value(0); !reflect.DeepEqual(v, w.value) {
			t.Errorf("%s (%s): Value = %#v, want %#v", f.Name, f.Type, v, w.value)
		}
	}
	if rr.Next() {
		t.Fatal("more than one row")
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
}

// A result bigger than a batch arrives whole, in order, in batches of at
// most 2048 rows.
func TestDuckDBBatches(t *testing.T) {
	d := openDuck(t, nil, Options{})
	rr, err := d.Query(context.Background(),
		`SELECT i, 'k' || lpad(i::VARCHAR, 6, '0') AS k FROM range(10000) t(i) ORDER BY k`, QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rr.Release()
	if got := rr.Schema().Field(1).Type; got.ID() != arrow.STRING {
		t.Fatalf("k is %s, want utf8", got)
	}
	next, batches := int64(0), 0
	for rr.Next() {
		rec := rr.RecordBatch()
		batches++
		if rec.NumRows() > 2048 || rec.NumRows() == 0 {
			t.Fatalf("batch of %d rows", rec.NumRows())
		}
		ids := rec.Column(0).(*array.Int64)
		for i := 0; i < ids.Len(); i++ {
			if ids.Value(i) != next {
				t.Fatalf("row %d is %d", next, ids.Value(i))
			}
			next++
		}
	}
	if err := rr.Err(); err != nil {
		t.Fatal(err)
	}
	if next != 10000 || batches < 5 {
		t.Fatalf("%d rows in %d batches", next, batches)
	}
}

// The result is streamed, not materialised: the first batch of a result
// far too big to build arrives, and releasing the reader early stops it.
func TestDuckDBStreamsWithoutMaterialising(t *testing.T) {
	d := openDuck(t, nil, Options{MaxConns: 1})
	rr, err := d.Query(context.Background(), `SELECT i, md5(i::VARCHAR) FROM range(1000000000000) t(i)`, QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for k := 0; k < 3; k++ {
		if !rr.Next() {
			t.Fatal(rr.Err())
		}
	}
	rr.Release()
	// The only connection is free again.
	if got := query(t, d, "SELECT 1"); len(got) != 1 {
		t.Fatal(got)
	}
}

func TestDuckDBCancel(t *testing.T) {
	d := openDuck(t, nil, Options{MaxConns: 1})
	heavy := `SELECT count(*) FROM range(1000000000000) a(i), range(10) b(j) WHERE hash(i + j) % 7 = 3`

	t.Run("while executing", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		go func() { time.Sleep(100 * time.Millisecond); cancel() }()
		rr, err := d.Query(ctx, heavy, QueryOptions{})
		if err == nil {
			// The statement may have been set up before the cancel: then
			// the fetch is what gets interrupted.
			for rr.Next() {
			}
			err = rr.Err()
			rr.Release()
		}
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
	})
	t.Run("while streaming", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		rr, err := d.Query(ctx, `SELECT i FROM range(1000000000000) t(i)`, QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if !rr.Next() {
			t.Fatal(rr.Err())
		}
		cancel()
		for rr.Next() {
		}
		if err := rr.Err(); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		rr.Release()
	})
	t.Run("waiting for a connection", func(t *testing.T) {
		busy, err := d.Query(context.Background(), "SELECT 1", QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := d.Query(ctx, "SELECT 1", QueryOptions{}); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		busy.Release()
	})
	// After all that, the single connection still works.
	if got := query(t, d, "SELECT 41 + 1"); got[0][0] != "42" {
		t.Fatal(got)
	}
}

func TestDuckDBErrors(t *testing.T) {
	d := openDuck(t, nil, Options{MaxConns: 1})
	_, err := d.Query(context.Background(), "SELECT * FROM no_such_table", QueryOptions{})
	if err == nil || !strings.Contains(err.Error(), "no_such_table") {
		t.Fatalf("err = %v", err)
	}
	_, err = d.Query(context.Background(), "SELECT 'a\x00b'", QueryOptions{})
	if err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("err = %v", err)
	}
	// A run-time error surfaces from the reader.
	rr, err := d.Query(context.Background(), "SELECT CAST(s AS INTEGER) FROM (VALUES ('1'), ('x')) v(s)", QueryOptions{})
	if err == nil {
		for rr.Next() {
		}
		err = rr.Err()
		rr.Release()
	}
	if err == nil || !strings.Contains(err.Error(), "Conversion Error") {
		t.Fatalf("err = %v", err)
	}
	if got := query(t, d, "SELECT 'still fine'"); got[0][0] != "still fine" {
		t.Fatal(got)
	}
	if _, err := Open(context.Background(), &dsl.Warehouse{Type: "duckdb", Settings: map[string]string{"no_such_option": "1"}}, Options{}); err == nil {
		t.Fatal("unknown DuckDB option accepted")
	}
	if _, err := Open(context.Background(), &dsl.Warehouse{Type: "oracle"}, Options{}); err == nil {
		t.Fatal("unknown warehouse type accepted")
	}
}

func TestDuckDBSettings(t *testing.T) {
	d := openDuck(t, &dsl.Warehouse{Type: "duckdb", Settings: map[string]string{
		"threads": "1", "memory_limit": "256MB", "max_connections": "2"}}, Options{})
	got := query(t, d, "SELECT current_setting('threads')::VARCHAR, current_setting('memory_limit')")
	if got[0][0] != "1" || !strings.Contains(got[0][1], "MiB") {
		t.Fatalf("settings = %v", got)
	}
	if cap(d.tokens) != 2 {
		t.Fatalf("max_connections: %d tokens", cap(d.tokens))
	}
}

// TestDuckDBSpillsUnderAMissingStateDir: a budget's spill directory inside
// a state directory not made yet still takes a sort larger than the
// memory limit, rather than failing it with "Failed to create directory".
func TestDuckDBSpillsUnderAMissingStateDir(t *testing.T) {
	spill := filepath.Join(t.TempDir(), "state", "duckdb-spill")
	d := openDuck(t, &dsl.Warehouse{Type: "duckdb"}, Options{DuckDB: DuckDBLimits{
		MemoryLimit: 48 << 20, Threads: 1, TempDir: spill, NoInsertionOrder: true}})
	got := query(t, d, "SELECT count(*)::VARCHAR, max(s) FROM (SELECT md5(i::VARCHAR) || md5((i+1)::VARCHAR) AS s FROM range(1500000) t(i) ORDER BY s)")
	if got[0][0] != "1500000" {
		t.Fatalf("sorted %v rows", got[0][0])
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// Loads become views over their files: edited rows and columns show in the
// next query. Names and paths that need quoting work.
func TestDuckDBLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "it's a dir")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	csvPath := filepath.Join(dir, "accounts.csv")
	writeFile(t, csvPath, "id,email\na_1,x@example.com\na_2,y@example.com\n")

	// A Parquet file, written by DuckDB itself.
	pq := filepath.Join(dir, "cards.parquet")
	tmp := openDuck(t, nil, Options{})
	query(t, tmp, fmt.Sprintf("COPY (SELECT 'cc_' || i AS id, i %% 2 = 0 AS paid FROM range(3) t(i)) TO %s (FORMAT parquet)", quoteString(pq)))

	w := &dsl.Warehouse{Type: "duckdb", Path: ":memory:", Loads: []*dsl.TableFile{
		{Table: dsl.TableName{"BANK", "ACCOUNTS"}, File: csvPath},
		{Table: dsl.TableName{"order", "select"}, File: pq}, // keywords as names
		{Table: dsl.TableName{"plain"}, File: csvPath},
	}}
	d := openDuck(t, w, Options{})

	if got := query(t, d, `SELECT id, email FROM "BANK"."ACCOUNTS" ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"a_1", "x@example.com"}, {"a_2", "y@example.com"}}) {
		t.Fatalf("accounts = %v", got)
	}
	if got := query(t, d, `SELECT id, paid FROM "order"."select" ORDER BY id`); !reflect.DeepEqual(got, [][]string{{"cc_0", "true"}, {"cc_1", "false"}, {"cc_2", "true"}}) {
		t.Fatalf("cards = %v", got)
	}
	if got := query(t, d, `SELECT count(*) FROM plain`); got[0][0] != "2" {
		t.Fatalf("plain = %v", got)
	}

	// New rows: visible without Refresh.
	writeFile(t, csvPath, "id,email\na_1,x@example.com\na_2,y@example.com\na_3,z@example.com\n")
	if got := query(t, d, `SELECT count(*) FROM "BANK"."ACCOUNTS"`); got[0][0] != "3" {
		t.Fatalf("after adding a row: %v", got)
	}

	// A new column: visible too, and through a refresh.
	writeFile(t, csvPath, "id,email,status\na_1,x@example.com,open\n")
	if got := query(t, d, `SELECT id, status FROM "BANK"."ACCOUNTS"`); !reflect.DeepEqual(got, [][]string{{"a_1", "open"}}) {
		t.Fatalf("after adding a column: %v", got)
	}
	if err := d.Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, `SELECT id, status FROM "BANK"."ACCOUNTS"`); !reflect.DeepEqual(got, [][]string{{"a_1", "open"}}) {
		t.Fatalf("after adding a column: %v", got)
	}
	cols, err := d.Columns(context.Background(), dsl.TableName{"BANK", "ACCOUNTS"})
	if err != nil || !reflect.DeepEqual(cols, []string{"id", "email", "status"}) {
		t.Fatalf("Columns = %v, %v", cols, err)
	}

	// A missing file fails the refresh, naming it; the other views stay.
	if err := os.Remove(pq); err != nil {
		t.Fatal(err)
	}
	err = Refresh(context.Background(), d)
	if err == nil || !strings.Contains(err.Error(), "cards.parquet") {
		t.Fatalf("Refresh with a missing file: %v", err)
	}
	if got := query(t, d, `SELECT count(*) FROM plain`); got[0][0] != "1" {
		t.Fatalf("plain after a failed refresh = %v", got)
	}
}

// TestDuckDBLoadMissingFile: a load whose file is missing fails what reads
// its table, not the warehouse nor the other loads.
func TestDuckDBLoadMissingFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ok.csv"), []byte("id\n1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	at := grammar.Pos{Filename: filepath.Join(dir, "ws.la"), Line: 3, Column: 5}
	w := &dsl.Warehouse{Type: "duckdb", Loads: []*dsl.TableFile{
		{Range: dsl.Range{Start: at}, Table: dsl.TableName{"A", "B"}, File: filepath.Join(dir, "nope.csv")},
		{Table: dsl.TableName{"A", "OK"}, File: filepath.Join(dir, "ok.csv")},
	}}
	ctx := context.Background()
	d, err := Open(ctx, w, Options{})
	if err != nil {
		t.Fatalf("a missing load file failed the warehouse: %v", err)
	}
	defer d.Close()
	var failed LoadErrors
	err = RefreshFor(ctx, d, []dsl.TableName{{"A", "OK"}, {"a", "b"}})
	if !errors.As(err, &failed) || len(failed) != 1 || err.Error() != `ws.la:3:5: load "A.B": the file `+filepath.Join(dir, "nope.csv")+` does not exist` {
		t.Fatalf("RefreshFor of the missing file's table: %v", err)
	}
	if err := RefreshFor(ctx, d, []dsl.TableName{{"A", "OK"}}); err != nil {
		t.Fatalf("RefreshFor of another table: %v", err)
	}
	if got := query(t, d, `SELECT count(*) FROM "A"."OK"`); len(got) != 1 {
		t.Fatalf("the other load: %v", got)
	}
}

func TestDuckDBColumns(t *testing.T) {
	d := openDuck(t, nil, Options{})
	query(t, d, `CREATE SCHEMA "HOME"`)
	query(t, d, `CREATE TABLE "HOME"."PETS" (id VARCHAR, "type" VARCHAR, "order" INTEGER)`)
	cols, err := d.Columns(context.Background(), dsl.TableName{"HOME", "PETS"})
	if err != nil || !reflect.DeepEqual(cols, []string{"id", "type", "order"}) {
		t.Fatalf("Columns = %v, %v", cols, err)
	}
	// DuckDB resolves names case-insensitively.
	if _, err := d.Columns(context.Background(), dsl.TableName{"home", "pets"}); err != nil {
		t.Fatal(err)
	}
	for _, tn := range []dsl.TableName{{"HOME", "CATS"}, {"NOPE", "PETS"}, {"memory", "HOME", "NOPE"}} {
		if _, err := d.Columns(context.Background(), tn); !errors.Is(err, ErrTableNotFound) {
			t.Errorf("%s: err = %v, want ErrTableNotFound", tn, err)
		}
	}
	if cols, err := d.Columns(context.Background(), dsl.TableName{"memory", "HOME", "PETS"}); err != nil || len(cols) != 3 {
		t.Errorf("three-part name: %v, %v", cols, err)
	}
}

// Audiences of one cycle query in parallel; MaxConns bounds them.
func TestDuckDBConcurrent(t *testing.T) {
	d := openDuck(t, nil, Options{MaxConns: 2})
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rr, err := d.Query(context.Background(), fmt.Sprintf("SELECT sum(i)::BIGINT FROM range(%d) t(i)", 100000+g), QueryOptions{Tag: "a"})
			if err != nil {
				errs <- err
				return
			}
			defer rr.Release()
			n := int64(100000 + g)
			if !rr.Next() {
				errs <- rr.Err()
				return
			}
			if got, want := rr.RecordBatch().Column(0).(*array.Int64).Value(0), n*(n-1)/2; got != want {
				errs <- fmt.Errorf("sum = %d, want %d", got, want)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestDuckDBClose(t *testing.T) {
	d := openDuck(t, nil, Options{})
	rr, err := d.Query(context.Background(), `SELECT i FROM range(1000000000000) t(i)`, QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !rr.Next() {
		t.Fatal(rr.Err())
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	for rr.Next() {
	}
	if err := rr.Err(); !errors.Is(err, ErrClosed) {
		t.Fatalf("reader after Close: %v", err)
	}
	rr.Release()
	if _, err := d.Query(context.Background(), "SELECT 1", QueryOptions{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("Query after Close: %v", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
}

// A database file keeps its tables across Open and Close.
func TestDuckDBFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.duckdb")
	if err := CreateDuckDBFile(path); err != nil {
		t.Fatal(err)
	}
	w := &dsl.Warehouse{Type: "duckdb", Path: path, Settings: map[string]string{"access_mode": "read_write"}}
	d, err := Open(context.Background(), w, Options{})
	if err != nil {
		t.Fatal(err)
	}
	query(t, d, "CREATE TABLE t AS SELECT 7 AS x")
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	d2 := openDuck(t, w, Options{})
	if got := query(t, d2, "SELECT x FROM t"); got[0][0] != "7" {
		t.Fatal(got)
	}
}

// A file named after a schema it holds (bank.duckdb with schema BANK) must
// not make "BANK"."T" ambiguous, on any pooled connection.
func TestDuckDBFileNamedLikeSchema(t *testing.T) {
	dir := t.TempDir()
	csv := filepath.Join(dir, "accounts.csv")
	if err := os.WriteFile(csv, []byte("id,type\na1,checking\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := CreateDuckDBFile(filepath.Join(dir, "bank.duckdb")); err != nil {
		t.Fatal(err)
	}
	w := &dsl.Warehouse{Type: "duckdb", Path: filepath.Join(dir, "bank.duckdb"),
		Loads: []*dsl.TableFile{{Table: dsl.TableName{"BANK", "ACCOUNTS"}, File: csv}}}
	d := openDuck(t, w, Options{MaxConns: 3})
	query(t, d, `CREATE TABLE "BANK"."CARDS" AS SELECT 'c1' AS id`)
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := query(t, d, `SELECT a.id, c.id FROM "BANK"."ACCOUNTS" a, "BANK"."CARDS" c`); len(got) != 1 || got[0][0] != "a1" {
				t.Errorf("got %v", got)
			}
		}()
	}
	wg.Wait()
	if cols, err := d.Columns(context.Background(), dsl.TableName{"BANK", "CARDS"}); err != nil || len(cols) != 1 {
		t.Fatalf("Columns = %v, %v", cols, err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{`plain`: `"plain"`, `a"b`: `"a""b"`, `order`: `"order"`} {
		if got := quoteIdent(in); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", in, got, want)
		}
	}
	for in, want := range map[string]string{`it's`: `'it''s'`, `C:\x`: `'C:\x'`} {
		if got := quoteString(in); got != want {
			t.Errorf("quoteString(%q) = %s, want %s", in, got, want)
		}
	}
}

// Sessions run in UTC, so timestamps with a zone compare as the planner
// expects whatever the machine's zone.
func TestDuckDBSessionIsUTC(t *testing.T) {
	d := openDuck(t, &dsl.Warehouse{Type: "duckdb", Path: ":memory:"}, Options{})
	got := query(t, d, "SELECT CAST(TIMESTAMPTZ '2026-01-01 00:30:00+02' AS TIMESTAMP), CAST(TIMESTAMP '2026-01-01 00:30:00' AS TIMESTAMPTZ) < TIMESTAMPTZ '2026-01-01 00:31:00+00'")
	if got[0][0] != "2025-12-31T22:30:00Z" || got[0][1] != "true" {
		t.Fatalf("got %v, want UTC conversions", got)
	}
}

// A statement DuckDB rejects reports DuckDB's error alone, not a
// cancellation.
func TestDuckDBBadSQLIsNotCancellation(t *testing.T) {
	d := openDuck(t, &dsl.Warehouse{Type: "duckdb", Path: ":memory:"}, Options{})
	_, err := d.Query(context.Background(), "SELECT nope FROM range(3)", QueryOptions{})
	if err == nil || errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "nope") {
		t.Fatalf("err = %v", err)
	}
}
