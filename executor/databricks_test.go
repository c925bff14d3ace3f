package executor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/dbxfake"
)

// openDatabricks opens a databricks warehouse on srv with extra settings.
func openDatabricks(t testing.TB, srv *dbxfake.Server, settings map[string]string) (executor.Warehouse, error) {
	t.Helper()
	w := &dsl.Warehouse{Type: "databricks", Settings: map[string]string{
		"host": srv.URL, "warehouse_id": srv.WarehouseID, "token": "env:DBX_TOKEN",
		"catalog": "main", "schema": "analytics",
	}}
	for k, v := range settings {
		w.Settings[k] = v
	}
	wh, err := executor.Open(context.Background(), w, executor.Options{
		MaxConns:  2,
		LookupEnv: func(n string) (string, bool) { return srv.Token, n == "DBX_TOKEN" },
	})
	if err == nil {
		t.Cleanup(func() { wh.Close() })
	}
	return wh, err
}

// audienceRows is a result like a plan's: profile_key, key_0 and an
// enrichment column, row i holding p<i>, k<i> and i.
func audienceRows(rows int64) dbxfake.Result {
	schema := arrow.NewSchema([]arrow.Field{
		{Name: "profile_key", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "key_0", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "enrich_0", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, nil)
	return dbxfake.Result{Schema: schema, Rows: rows, Slice: func(off, n int64) arrow.RecordBatch {
		b := array.NewRecordBuilder(memory.DefaultAllocator, schema)
		defer b.Release()
		for i := off; i < off+n; i++ {
			b.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("p%09d", i))
			if i%7 == 0 {
				b.Field(1).AppendNull()
			} else {
				b.Field(1).(*array.StringBuilder).Append("k" + strconv.FormatInt(i, 10))
			}
			b.Field(2).(*array.Int64Builder).Append(i)
		}
		return b.NewRecordBatch()
	}}
}

// readAll reads a reader's rows as "profile_key key_0 enrich_0" lines.
func readAll(t testing.TB, rd array.RecordReader) ([]string, error) {
	t.Helper()
	defer rd.Release()
	var out []string
	for rd.Next() {
		rec := rd.RecordBatch()
		cells := make([]executor.Cells, rec.NumCols())
		for j := range cells {
			var err error
			if cells[j], err = executor.NewCells(rec.Column(j)); err != nil {
				t.Fatal(err)
			}
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			var parts []string
			for _, c := range cells {
				s, ok := c.Text(i)
				if !ok {
					s = "NULL"
				}
				parts = append(parts, s)
			}
			out = append(out, strings.Join(parts, " "))
		}
	}
	return out, rd.Err()
}

// TestDatabricksStatementExecution runs a statement of three chunks through
// the fake: the rows arrive in order and complete, and every request is the
// one the API documents (the fake refuses others): the submit's body, the
// polls, the chunk links fetched in order without the token, through 429s
// and 503s, and an expired link fetched again.
func TestDatabricksStatementExecution(t *testing.T) {
	srv := dbxfake.New(t)
	srv.ChunkRows, srv.BatchRows = 1000, 300
	srv.Answer = func(string) dbxfake.Result { return audienceRows(2500) }
	wh, err := openDatabricks(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	if wh.Dialect() != "databricks" {
		t.Errorf("dialect %s", wh.Dialect())
	}
	srv.Throttle, srv.Unavailable, srv.ExpireFirst = 2, 1, true
	rd, err := wh.Query(context.Background(), "SELECT 1", executor.QueryOptions{Tag: "outstanding"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2500 || got[0] != "p000000000 NULL 0" || got[1] != "p000000001 k1 1" || got[2498] != "p000002498 k2498 2498" {
		t.Fatalf("%d rows: %q … %q", len(got), got[:2], got[len(got)-1])
	}
	for i, row := range got {
		if !strings.HasPrefix(row, fmt.Sprintf("p%09d ", i)) {
			t.Fatalf("row %d is %q: out of order", i, row)
		}
	}

	var submits, chunkLinks, downloads []dbxfake.Request
	for _, r := range srv.Requests() {
		switch {
		case r.Method == "POST" && r.Path == "/api/2.0/sql/statements":
			submits = append(submits, r)
		case strings.Contains(r.Path, "/result/chunks/"):
			chunkLinks = append(chunkLinks, r)
		case strings.HasPrefix(r.Path, "/storage/"):
			downloads = append(downloads, r)
		}
		if strings.HasPrefix(r.Path, "/api/") && r.Header.Get("Authorization") != "Bearer "+srv.Token {
			t.Errorf("%s %s without the bearer token", r.Method, r.Path)
		}
	}
	// The time-zone probe of Open, then the statement (after two 429s and
	// a 503, each retried).
	last := submits[len(submits)-1].Body
	want := map[string]any{
		"statement": "/* linkaud outstanding */\nSELECT 1", "warehouse_id": srv.WarehouseID,
		"catalog": "main", "schema": "analytics", "format": "ARROW_STREAM", "disposition": "EXTERNAL_LINKS",
		"wait_timeout": "0s", "on_wait_timeout": "CONTINUE",
	}
	if fmt.Sprint(last) != fmt.Sprint(want) {
		t.Errorf("submitted %v\nwant      %v", last, want)
	}
	if len(submits) != 1+3+1 {
		t.Errorf("%d submits, want the probe, two attempts answered 429 and one 503, and the statement", len(submits))
	}
	// Chunk 0's link came with the statement, expired: fetched again, as
	// were chunks 1 and 2's, in order.
	var order []string
	for _, r := range chunkLinks {
		order = append(order, r.Path[strings.LastIndex(r.Path, "/")+1:])
	}
	if strings.Join(order, ",") != "0,1,2" {
		t.Errorf("chunk links fetched %v, want 0,1,2", order)
	}
	if len(downloads) < 4 { // the probe's chunk, then three
		t.Errorf("%d downloads", len(downloads))
	}

	// Columns and types from a LIMIT 0 statement's manifest.
	srv.Answer = func(q string) dbxfake.Result {
		if !strings.Contains(q, "SELECT * FROM `BANK`.`ACCOUNTS` LIMIT 0") {
			t.Errorf("columns asked with %q", q)
		}
		r := audienceRows(0)
		r.Schema = arrow.NewSchema([]arrow.Field{
			{Name: "id", Type: arrow.BinaryTypes.String}, {Name: "opened_at", Type: &arrow.TimestampType{Unit: arrow.Microsecond, TimeZone: "Etc/UTC"}},
			{Name: "limit", Type: &arrow.Decimal128Type{Precision: 12, Scale: 2}}, {Name: "open", Type: arrow.FixedWidthTypes.Boolean},
		}, nil)
		return r
	}
	cols, err := wh.Columns(context.Background(), dsl.TableName{"BANK", "ACCOUNTS"})
	if err != nil || strings.Join(cols, ",") != "id,opened_at,limit,open" {
		t.Errorf("columns %v, %v", cols, err)
	}
	types, err := wh.(dsl.ColumnTyper).ColumnTypes(context.Background(), dsl.TableName{"BANK", "ACCOUNTS"})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(types); s != "[{id text STRING} {opened_at date or timestamp TIMESTAMP} {limit number DECIMAL(12,2)} {open boolean BOOLEAN}]" {
		t.Errorf("types %s", s)
	}
	// An empty result has the manifest's schema.
	srv.Answer = func(string) dbxfake.Result { return audienceRows(0) }
	rd, err = wh.Query(context.Background(), "SELECT 1", executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if n := rd.Schema().NumFields(); n != 3 {
		t.Errorf("empty result has %d columns", n)
	}
	if rows, err := readAll(t, rd); len(rows) != 0 || err != nil {
		t.Errorf("empty result: %v %v", rows, err)
	}
}

// TestDatabricksErrors: each way a statement fails reaches the caller with
// the warehouse's own words, the token never among them.
func TestDatabricksErrors(t *testing.T) {
	ctx := context.Background()
	t.Run("bad token", func(t *testing.T) {
		srv := dbxfake.New(t)
		token := srv.Token
		srv.Token = "another-token"
		w := &dsl.Warehouse{Type: "databricks", Settings: map[string]string{"host": srv.URL, "warehouse_id": srv.WarehouseID, "token": "env:DBX_TOKEN"}}
		_, err := executor.Open(ctx, w, executor.Options{LookupEnv: func(string) (string, bool) { return token, true }})
		if err == nil || !strings.Contains(err.Error(), "refused the token in env(DBX_TOKEN)") || !strings.Contains(err.Error(), "Invalid access token") || strings.Contains(err.Error(), token) {
			t.Errorf("bad token: %v", err)
		}
	})
	t.Run("time zone", func(t *testing.T) {
		srv := dbxfake.New(t)
		srv.TimeZone = "America/Los_Angeles"
		if _, err := openDatabricks(t, srv, nil); err == nil || !strings.Contains(err.Error(), "America/Los_Angeles") || !strings.Contains(err.Error(), "TIMEZONE") {
			t.Errorf("time zone: %v", err)
		}
	})
	t.Run("plain http", func(t *testing.T) {
		w := &dsl.Warehouse{Type: "databricks", Settings: map[string]string{"host": "http://dbc-1.cloud.databricks.com", "warehouse_id": "w", "token": "env:T"}}
		if _, err := executor.Open(ctx, w, executor.Options{LookupEnv: func(string) (string, bool) { return "tok-123456", true }}); err == nil || !strings.Contains(err.Error(), "only sent over https") {
			t.Errorf("http host: %v", err)
		}
	})
	srv := dbxfake.New(t)
	srv.ChunkRows, srv.BatchRows = 1000, 250
	wh, err := openDatabricks(t, srv, map[string]string{"timeout": "1s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("failed", func(t *testing.T) {
		srv.Answer = func(string) dbxfake.Result {
			return dbxfake.Result{Error: &dbxfake.Error{Code: "BAD_REQUEST", Message: "[TABLE_OR_VIEW_NOT_FOUND] The table or view `main`.`analytics`.`nope` cannot be found. SQLSTATE: 42P01"}}
		}
		_, err := wh.Query(ctx, "SELECT * FROM nope", executor.QueryOptions{})
		if err == nil || !errors.Is(err, executor.ErrUndefined) || !strings.Contains(err.Error(), "ended FAILED: [TABLE_OR_VIEW_NOT_FOUND]") {
			t.Errorf("failed: %v", err)
		}
		if _, err := wh.Columns(ctx, dsl.TableName{"nope"}); !errors.Is(err, executor.ErrTableNotFound) {
			t.Errorf("columns of a missing table: %v", err)
		}
	})
	t.Run("chunk cut mid-stream", func(t *testing.T) {
		srv.Answer = func(string) dbxfake.Result { return audienceRows(3000) }
		srv.BreakChunk, srv.BreakAfter, srv.BreakAlways = 1, 5000, true
		defer func() { srv.BreakChunk, srv.BreakAlways = -1, false }()
		rd, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := readAll(t, rd)
		if err == nil || !strings.Contains(err.Error(), "chunk 1") || strings.Contains(err.Error(), "X-Amz-Signature") {
			t.Errorf("after %d rows: %v", len(rows), err)
		}
	})
	t.Run("chunk cut once", func(t *testing.T) {
		// A download that broke before its first batch is fetched again.
		srv.BreakChunk, srv.BreakAfter = 2, 10
		defer func() { srv.BreakChunk = -1 }()
		rd, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if rows, err := readAll(t, rd); err != nil || len(rows) != 3000 {
			t.Errorf("%d rows: %v", len(rows), err)
		}
	})
	t.Run("short chunk", func(t *testing.T) {
		srv.BreakChunk, srv.BreakAfter, srv.TruncateRows, srv.BreakAlways = 0, 1<<30, true, true
		defer func() { srv.BreakChunk, srv.TruncateRows, srv.BreakAlways = -1, false, false }()
		rd, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := readAll(t, rd); err == nil || !strings.Contains(err.Error(), "chunk 0 ended after 250 of its 1000 rows") {
			t.Errorf("short chunk: %v", err)
		}
	})
	t.Run("timeout cancels", func(t *testing.T) {
		srv.Answer = func(string) dbxfake.Result { return dbxfake.Result{Hang: true} }
		_, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err == nil || !strings.Contains(err.Error(), "longer than the timeout setting (1s)") {
			t.Errorf("timeout: %v", err)
		}
		waitCancelled(t, srv, 1)
	})
	t.Run("context cancels", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		time.AfterFunc(300*time.Millisecond, cancel)
		_, err := wh.Query(cctx, "SELECT 1", executor.QueryOptions{})
		if !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled: %v", err)
		}
		waitCancelled(t, srv, 2)
	})
	t.Run("throttled for good", func(t *testing.T) {
		srv.Throttle = 100
		defer func() { srv.Throttle = 0 }()
		_, err := wh.Query(context.Background(), "SELECT 1", executor.QueryOptions{})
		if err == nil || !strings.Contains(err.Error(), "HTTP 429") {
			t.Errorf("throttled: %v", err)
		}
	})
}

func waitCancelled(t *testing.T, srv *dbxfake.Server, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if len(srv.Cancelled()) >= n {
			return
		}
	}
	t.Errorf("%d statements cancelled, want %d", len(srv.Cancelled()), n)
}

// TestDatabricksStreamsFlat streams 1.2M rows in 12 chunks: the heap stays
// bounded by a few batches (and the fake's one being written).
func TestDatabricksStreamsFlat(t *testing.T) {
	n := int64(1_200_000)
	srv := dbxfake.New(t)
	srv.ChunkRows, srv.BatchRows = 100_000, 8192
	srv.Answer = func(string) dbxfake.Result { return audienceRows(n) }
	wh, err := openDatabricks(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := wh.Query(context.Background(), "SELECT 1", executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Release()
	var ms runtime.MemStats
	var peak uint64
	var rows int64
	batches := 0
	for rd.Next() {
		rows += rd.RecordBatch().NumRows()
		if batches++; batches%10 == 0 {
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
	// The whole result is some 60 MB of Arrow buffers.
	if peak > 48<<20 {
		t.Errorf("heap grew to %d MB while streaming", peak>>20)
	}
}
