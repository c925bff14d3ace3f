package executor_test

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/bqfake"
	"github.com/linkaud/linkaud/internal/dbxfake"
)

const bqProject = "linkaud-test-123"

// openBigQuery opens a bigquery warehouse on the fake, authenticating with
// a service-account key file the fake issued.
func openBigQuery(t testing.TB, fake *bqfake.Server, settings map[string]string) (executor.Warehouse, error) {
	t.Helper()
	rest, storage := fake.ClientOptions()
	w := &dsl.Warehouse{Type: "bigquery", Settings: map[string]string{
		"project": bqProject, "dataset": "analytics", "location": "EU",
		"credentials_file": fake.CredentialsFile(t.TempDir()),
		"labels":           "team=growth,env=test",
	}}
	for k, v := range settings {
		if v == "" {
			delete(w.Settings, k)
		} else {
			w.Settings[k] = v
		}
	}
	wh, err := executor.Open(context.Background(), w, executor.Options{MaxConns: 2, GoogleAPI: executor.GoogleAPI{REST: rest, Storage: storage}})
	if err == nil {
		t.Cleanup(func() { wh.Close() })
	}
	return wh, err
}

func newBQFake(t testing.TB) *bqfake.Server {
	fake := bqfake.New(t, bqProject)
	fake.Datasets["analytics"] = true
	return fake
}

// bqRows is audienceRows for BigQuery's Arrow types (STRING, STRING, INT64).
func bqRows(rows int64) bqfake.Result {
	r := audienceRows(rows)
	return bqfake.Result{Schema: r.Schema, Rows: r.Rows, Slice: r.Slice}
}

// TestBigQueryQueryJob runs a query through the fake: a jobs.insert of a
// GoogleSQL query job with the warehouse's settings, getQueryResults until
// it completes, jobs.get for its result table, and one read stream of the
// Storage Read API (the result is ordered) decoded batch by batch, in
// order and complete, every call carrying the service account's token.
func TestBigQueryQueryJob(t *testing.T) {
	fake := newBQFake(t)
	fake.BatchRows = 1000
	wh, err := openBigQuery(t, fake, map[string]string{"maximum_bytes_billed": "10000000000", "timeout": "10m"})
	if err != nil {
		t.Fatal(err)
	}
	if wh.Dialect() != "bigquery" {
		t.Errorf("dialect %s", wh.Dialect())
	}
	const sql = "WITH `la_members1` AS (SELECT 1) SELECT `profile_key` FROM `la_result3` AS r ORDER BY CAST(`profile_key` AS BYTES)"
	fake.Answer = func(q string) bqfake.Result {
		if q != sql {
			t.Errorf("query %q", q)
		}
		return bqRows(25_000)
	}
	rd, err := wh.Query(context.Background(), sql, executor.QueryOptions{Tag: "Outstanding_Balance"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := readAll(t, rd)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 25_000 || got[1] != "p000000001 k1 1" || got[24_999] != "p000024999 k24999 24999" {
		t.Fatalf("%d rows: %q … %q", len(got), got[:2], got[len(got)-1])
	}
	for i, row := range got {
		if !strings.HasPrefix(row, fmt.Sprintf("p%09d ", i)) {
			t.Fatalf("row %d is %q: out of order", i, row)
		}
	}
	var insert *bqfake.Request
	waits := 0
	for _, r := range fake.Requests() {
		if r.Header.Get("Authorization") == "" {
			t.Errorf("%s %s without credentials", r.Method, r.Path)
		}
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.Path, "/projects/"+bqProject+"/jobs"):
			r := r
			insert = &r
		case strings.Contains(r.Path, "/queries/"):
			waits++
			if r.Query["maxResults"][0] != "0" || r.Query["location"][0] != "EU" {
				t.Errorf("getQueryResults %v", r.Query)
			}
		}
	}
	if insert == nil || waits == 0 {
		t.Fatalf("no jobs.insert (%v) or getQueryResults (%d)", insert, waits)
	}
	ref := insert.Body["jobReference"].(map[string]any)
	cfg := insert.Body["configuration"].(map[string]any)
	q := cfg["query"].(map[string]any)
	if id := ref["jobId"].(string); !strings.HasPrefix(id, "linkaud_outstanding_balance_") || ref["location"] != "EU" || ref["projectId"] != bqProject {
		t.Errorf("jobReference %v", ref)
	}
	if q["query"] != sql || q["useLegacySql"] != false || q["maximumBytesBilled"] != "10000000000" ||
		fmt.Sprint(q["defaultDataset"]) != "map[datasetId:analytics projectId:"+bqProject+"]" {
		t.Errorf("configuration.query %v", q)
	}
	if fmt.Sprint(cfg["labels"]) != "map[env:test linkaud_audience:outstanding_balance team:growth]" || cfg["jobTimeoutMs"] != "600000" {
		t.Errorf("labels %v, jobTimeoutMs %v", cfg["labels"], cfg["jobTimeoutMs"])
	}

	// A ReadRows stream the server breaks (INTERNAL) is resumed at its
	// offset by the client: no row lost or repeated.
	fake.ReadRowsFail, fake.ReadRowsFailAfter = status.New(codes.Internal, "stream reset"), 12_000
	rd, err = wh.Query(context.Background(), sql, executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := readAll(t, rd); err != nil || len(rows) != 25_000 || rows[12_000] != "p000012000 k12000 12000" {
		t.Errorf("after a reset stream: %d rows, %v", len(rows), err)
	}
	fake.ReadRowsFail = nil

	// check --warehouse: INFORMATION_SCHEMA.COLUMNS of the table's dataset.
	fake.Answer = func(q string) bqfake.Result {
		want := "SELECT column_name, data_type FROM `" + bqProject + "`.`bank`.INFORMATION_SCHEMA.COLUMNS WHERE table_name = 'accounts' ORDER BY ordinal_position"
		if q != want {
			t.Errorf("columns asked with\n%s\nwant\n%s", q, want)
		}
		return strings2("column_name", "data_type", [][2]string{{"id", "STRING"}, {"opened_at", "TIMESTAMP"}, {"limit", "NUMERIC(12, 2)"}, {"tags", "ARRAY<STRING>"}, {"open", "BOOL"}})
	}
	types, err := wh.(dsl.ColumnTyper).ColumnTypes(context.Background(), dsl.TableName{"bank", "accounts"})
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(types); s != "[{id text STRING} {opened_at date or timestamp TIMESTAMP} {limit number NUMERIC(12, 2)} {tags other ARRAY<STRING>} {open boolean BOOL}]" {
		t.Errorf("types %s", s)
	}
	fake.Answer = func(string) bqfake.Result { return strings2("column_name", "data_type", nil) }
	if _, err := wh.Columns(context.Background(), dsl.TableName{"nope"}); !errors.Is(err, executor.ErrTableNotFound) {
		t.Errorf("a missing table: %v", err)
	}
	// DDL: no result table, no rows.
	fake.Answer = func(string) bqfake.Result { return bqfake.Result{NoTable: true} }
	rd, err = wh.Query(context.Background(), "CREATE SCHEMA x", executor.QueryOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if rows, err := readAll(t, rd); len(rows) != 0 || err != nil {
		t.Errorf("DDL: %v %v", rows, err)
	}
}

// strings2 is a two-column STRING result.
func strings2(a, b string, rows [][2]string) bqfake.Result {
	sc := arrow.NewSchema([]arrow.Field{{Name: a, Type: arrow.BinaryTypes.String, Nullable: true}, {Name: b, Type: arrow.BinaryTypes.String, Nullable: true}}, nil)
	return bqfake.Result{Schema: sc, Rows: int64(len(rows)), Slice: func(off, n int64) arrow.RecordBatch {
		bld := array.NewRecordBuilder(memory.DefaultAllocator, sc)
		defer bld.Release()
		for _, r := range rows[off : off+n] {
			bld.Field(0).(*array.StringBuilder).Append(r[0])
			bld.Field(1).(*array.StringBuilder).Append(r[1])
		}
		return bld.NewRecordBatch()
	}}
}

// TestBigQueryErrors: each way a query fails reaches the caller in
// BigQuery's words, with what to change.
func TestBigQueryErrors(t *testing.T) {
	t.Run("expired credentials", func(t *testing.T) {
		fake := newBQFake(t)
		fake.RejectTokens = true
		_, err := openBigQuery(t, fake, nil)
		if err == nil || !strings.Contains(err.Error(), "BigQuery refused the credentials in") || !strings.Contains(err.Error(), "invalid authentication credentials") {
			t.Errorf("rejected token: %v", err)
		}
	})
	t.Run("revoked key", func(t *testing.T) {
		fake := newBQFake(t)
		fake.InvalidGrant = true
		_, err := openBigQuery(t, fake, nil)
		if err == nil || !strings.Contains(err.Error(), "could not authenticate with the credentials in") || !strings.Contains(err.Error(), "invalid_grant") || strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("revoked key: %v", err)
		}
	})
	t.Run("missing dataset", func(t *testing.T) {
		fake := newBQFake(t)
		_, err := openBigQuery(t, fake, map[string]string{"dataset": "nope"})
		if err == nil || !strings.Contains(err.Error(), "Not found: Dataset "+bqProject+":nope") {
			t.Errorf("missing dataset: %v", err)
		}
	})
	t.Run("no key file", func(t *testing.T) {
		fake := newBQFake(t)
		_, err := openBigQuery(t, fake, map[string]string{"credentials_file": "/nonexistent/key.json"})
		if err == nil || !strings.Contains(err.Error(), "credentials_file: open /nonexistent/key.json") {
			t.Errorf("no key file: %v", err)
		}
	})
	fake := newBQFake(t)
	wh, err := openBigQuery(t, fake, map[string]string{"maximum_bytes_billed": "1000000", "timeout": "2s"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		res   bqfake.Result
		want  string
		undef bool
	}{
		{"bytes billed", bqfake.Result{Schema: bqRows(1).Schema, BytesBilled: 50 << 30},
			"Query exceeded limit for bytes billed: 1000000. 53687091200 or higher required. (bytesBilledLimitExceeded): the query would bill more than maximum_bytes_billed (1000000 bytes)", false},
		{"quota", bqfake.Result{Error: &bqfake.Error{Code: 403, Reason: "quotaExceeded", Message: "Quota exceeded: Your project exceeded quota for free query bytes scanned."}},
			"Quota exceeded: Your project exceeded quota for free query bytes scanned. (quotaExceeded)", false},
		{"unknown column", bqfake.Result{Error: &bqfake.Error{Code: 400, Reason: "invalidQuery", Message: "Unrecognized name: balance at [12:5]"}},
			"Unrecognized name: balance at [12:5] (invalidQuery)", true},
		{"missing table", bqfake.Result{Error: &bqfake.Error{Code: 404, Reason: "notFound", Message: "Not found: Table linkaud-test-123:bank.cards was not found in location EU"}},
			"Not found: Table linkaud-test-123:bank.cards was not found in location EU (notFound)", true},
	} {
		fake.Answer = func(string) bqfake.Result { return tc.res }
		_, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, executor.ErrUndefined) != tc.undef {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	t.Run("read fails half-way", func(t *testing.T) {
		fake.BatchRows = 500
		fake.Answer = func(string) bqfake.Result { return bqRows(5000) }
		fake.ReadRowsFail, fake.ReadRowsFailAfter, fake.ReadRowsFailAlways = status.New(codes.PermissionDenied, "The user does not have bigquery.readsessions.getData permission"), 2000, true
		defer func() { fake.ReadRowsFail = nil }()
		rd, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rows, err := readAll(t, rd)
		if err == nil || !strings.Contains(err.Error(), "bigquery.readsessions.getData") || len(rows) != 2000 {
			t.Errorf("after %d rows: %v", len(rows), err)
		}
	})
	t.Run("timeout cancels the job", func(t *testing.T) {
		fake.Answer = func(string) bqfake.Result { return bqfake.Result{Schema: bqRows(1).Schema, Hang: true} }
		_, err := wh.Query(ctx, "SELECT 1", executor.QueryOptions{})
		if err == nil || !strings.Contains(err.Error(), "longer than the timeout setting (2s)") {
			t.Errorf("timeout: %v", err)
		}
		for deadline := time.Now().Add(5 * time.Second); len(fake.Cancelled()) == 0 && time.Now().Before(deadline); {
			time.Sleep(20 * time.Millisecond)
		}
		if len(fake.Cancelled()) != 1 {
			t.Errorf("jobs cancelled: %v", fake.Cancelled())
		}
	})
}

// TestBigQueryStreamsFlat reads 1.2M rows through the Storage Read API: the
// heap stays bounded by the client's few buffered batches.
func TestBigQueryStreamsFlat(t *testing.T) {
	n := int64(1_200_000)
	fake := newBQFake(t)
	fake.BatchRows = 8192
	fake.Answer = func(string) bqfake.Result { return bqRows(n) }
	wh, err := openBigQuery(t, fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	rd, err := wh.Query(context.Background(), "SELECT 1 ORDER BY 1", executor.QueryOptions{})
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
	if peak > 48<<20 {
		t.Errorf("heap grew to %d MB while streaming", peak>>20)
	}
}

// TestVendorReadersReleasedEarly releases readers of both warehouses after
// two batches, several times: every statement's goroutines (the Storage
// Read client's stream readers, the chunk downloader) return, and the
// warehouse still runs statements.
func TestVendorReadersReleasedEarly(t *testing.T) {
	fake := newBQFake(t)
	fake.BatchRows = 1000
	fake.Answer = func(string) bqfake.Result { return bqRows(200_000) }
	bq, err := openBigQuery(t, fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	srv := dbxfake.New(t)
	srv.ChunkRows, srv.BatchRows = 20_000, 1000
	srv.Answer = func(string) dbxfake.Result { return audienceRows(200_000) }
	dbx, err := openDatabricks(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, wh := range []executor.Warehouse{bq, dbx} {
		read := func(batches int) {
			rd, err := wh.Query(context.Background(), "SELECT 1 ORDER BY 1", executor.QueryOptions{})
			if err != nil {
				t.Fatal(err)
			}
			for i := 0; i < batches && rd.Next(); i++ {
			}
			rd.Release()
		}
		read(1 << 30) // warm: connections, pools
		time.Sleep(100 * time.Millisecond)
		base := runtime.NumGoroutine()
		for range 5 {
			read(2)
		}
		n := runtime.NumGoroutine()
		for deadline := time.Now().Add(5 * time.Second); n > base+2 && time.Now().Before(deadline); n = runtime.NumGoroutine() {
			time.Sleep(20 * time.Millisecond)
		}
		if n > base+2 {
			buf := make([]byte, 1<<20)
			t.Errorf("%s: %d goroutines after five readers released early, %d before\n%s", wh.Dialect(), n, base, buf[:runtime.Stack(buf, true)])
		}
		read(1 << 30)
	}
}
