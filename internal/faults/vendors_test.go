package faults

import (
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/bqfake"
	"github.com/linkaud/linkaud/internal/dbxfake"
	"github.com/linkaud/linkaud/planner"
)

// duckAnswers computes the fixture's audience on DuckDB, over the data of
// the generation the test says, for a warehouse fake to serve: the fakes
// run no SQL, so the rows of the BigQuery and Databricks statements are
// those the same audience has on DuckDB, where cleanRun computed the
// generations every faulty run must end up with.
type duckAnswers struct {
	t   *testing.T
	f   fixture
	dir string
	clk *clock

	mu  sync.Mutex
	gen int
}

func newDuckAnswers(t *testing.T, f fixture, clk *clock) *duckAnswers {
	return &duckAnswers{t: t, f: f, dir: f.write(t), clk: clk, gen: 1}
}

// use makes the answers those of generation gen.
func (d *duckAnswers) use(gen int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.gen = gen
	d.f.writeData(d.t, d.dir, d.f.data(gen))
}

// answer returns the audience's rows (or, for a column check's LIMIT 0
// statement, none) as the schema and batches DuckDB returns.
func (d *duckAnswers) answer(query string) (*arrow.Schema, []arrow.RecordBatch, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	ctx := context.Background()
	ws := load(d.t, d.dir)
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{Logger: quietLogger()})
	if err != nil {
		return nil, nil, err
	}
	defer wh.Close()
	sql, err := d.duckSQL(ws, query)
	if err != nil {
		return nil, nil, err
	}
	rd, err := wh.Query(ctx, sql, executor.QueryOptions{})
	if err != nil {
		return nil, nil, err
	}
	defer rd.Release()
	var recs []arrow.RecordBatch
	for rd.Next() {
		rec := rd.RecordBatch()
		rec.Retain()
		recs = append(recs, rec)
	}
	return rd.Schema(), recs, rd.Err()
}

// lookupKeys are the key literals of a lookup statement (planner.Lookup):
// the fixture's keys need no escapes.
var lookupKeys = regexp.MustCompile(`'([^'\\]*)'`)

// duckSQL is the DuckDB statement that answers query: the lookup of
// removed entities when query is one in its own dialect (the statement
// planner.Lookup writes for one of the path's entities and the keys it
// lists), else the audience's.
func (d *duckAnswers) duckSQL(ws *dsl.Workspace, query string) (string, error) {
	a := ws.Audience(audience)
	if strings.HasPrefix(query, "/*") {
		// The executor's tag comment.
		_, query, _ = strings.Cut(query, "*/\n")
	}
	if !strings.HasPrefix(query, "WITH") {
		var keys []string
		for _, m := range lookupKeys.FindAllStringSubmatch(query, -1) {
			keys = append(keys, m[1])
		}
		for k, st := range a.Primary.Steps {
			var cols []string
			for _, r := range a.Enrich {
				if r.Source == dsl.SourceStep && r.StepIndex == k {
					cols = append(cols, r.Column)
				}
			}
			for _, name := range []string{"bigquery", "databricks"} {
				dia, err := planner.DialectFor(name)
				if err != nil {
					return "", err
				}
				if sql, err := planner.Lookup(st.Entity, cols, keys, dia); err == nil && sql == query {
					return planner.Lookup(st.Entity, cols, keys, planner.DuckDB)
				}
			}
		}
	}
	plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: d.clk.Now()})
	if err != nil {
		return "", err
	}
	return plan.SQL, nil
}

// vendorWorkspace is the fixture's workspace on another warehouse.
func vendorWorkspace(f fixture, warehouse string) string {
	text := f.workspaceText()
	end := strings.Index(text, "}\n")
	return warehouse + text[end+2:]
}

// TestDatabricksFailuresChangeNothing runs the fixture's audience on the
// fake Databricks warehouse: the first cycle gives what DuckDB's clean run
// gives; then the second fails in each way the API can fail it — a
// statement FAILED half-way through the warehouse's work, a token that
// expired, throttling that never ends, a result chunk cut mid-stream — and
// each time the audience is Failed with Databricks' own message and not
// the token, the first generation and the outbox exactly as they were, no
// event; the cycle after gives what a clean run gives.
func TestDatabricksFailuresChangeNothing(t *testing.T) {
	f := fixture{profiles: 4000}
	want1, want2 := cleanRun(t, f, engine.Options{})
	clk := &clock{}
	answers := newDuckAnswers(t, f, clk)
	srv := dbxfake.New(t)
	srv.ChunkRows, srv.BatchRows = 1000, 256
	srv.Answer = func(q string) dbxfake.Result {
		schema, recs, err := answers.answer(q)
		if err != nil {
			return dbxfake.Result{Error: &dbxfake.Error{Code: "INTERNAL_ERROR", Message: err.Error()}}
		}
		res, err := dbxfake.Records(schema, recs)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	dir := f.write(t)
	t.Setenv("FAULT_DBX_HOST", srv.URL)
	t.Setenv("FAULT_DBX_TOKEN", srv.Token)
	writeFiles(t, dir, map[string]string{"ws.la": vendorWorkspace(f, "warehouse {\n  type databricks\n  host env(\"FAULT_DBX_HOST\")\n  warehouse_id \""+srv.WarehouseID+"\"\n  token env(\"FAULT_DBX_TOKEN\")\n  catalog \"main\"\n}\n")})
	e := open(t, load(t, dir), clk, engine.Options{})
	defer e.Close()
	mustCompute(t, e, clk, start1)
	if d := diffSnapshots(take(t, e.Store()), want1); d != "" {
		t.Fatalf("generation 1 on Databricks differs from DuckDB's clean run:\n%s", d)
	}

	answers.use(2)
	token := srv.Token
	for _, fault := range []struct {
		name, reason string
		arm, disarm  func()
	}{
		{"statement failed", "[DIVIDE_BY_ZERO] Division by zero",
			func() {
				srv.Answer = failing(srv.Answer, &dbxfake.Error{Code: "BAD_REQUEST", Message: "[DIVIDE_BY_ZERO] Division by zero. SQLSTATE: 22012"})
			}, func() {}},
		{"token expired", "refused the token in env(FAULT_DBX_TOKEN)",
			func() { srv.Token = "rotated-token" }, func() { srv.Token = token }},
		{"throttled", "HTTP 429 TOO_MANY_REQUESTS",
			func() { srv.Throttle = 1000 }, func() { srv.Throttle = 0 }},
		{"chunk cut", "chunk 1 after",
			func() { srv.BreakChunk, srv.BreakAfter, srv.BreakAlways = 1, 20_000, true },
			func() { srv.BreakChunk, srv.BreakAlways = -1, false }},
	} {
		answer := srv.Answer
		srv.Update(fault.arm)
		_, err := compute(e, clk, start2)
		srv.Update(func() { fault.disarm(); srv.Answer = answer })
		if err == nil {
			t.Fatalf("%s: the cycle succeeded", fault.name)
		}
		if strings.Contains(err.Error(), token) {
			t.Errorf("%s: the error shows the token: %v", fault.name, err)
		}
		checkFailed(t, e.Store(), want1, fault.reason)
		t.Logf("%s: %v", fault.name, err)
	}
	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the faults differs from a clean run:\n%s", d)
	}
}

// failing answers the audience's statement with e (a column check's LIMIT
// 0 statement still gets its answer).
func failing(next func(string) dbxfake.Result, e *dbxfake.Error) func(string) dbxfake.Result {
	return func(q string) dbxfake.Result {
		if strings.Contains(q, "LIMIT 0") {
			return next(q)
		}
		return dbxfake.Result{Error: e}
	}
}

// TestBigQueryFailuresChangeNothing is the same story on the fake
// BigQuery: maximum_bytes_billed exceeded, a quota error, credentials that
// expired, a missing dataset and a Storage Read stream failing half-way
// each leave the audience Failed with BigQuery's message, the state as it
// was, no event.
func TestBigQueryFailuresChangeNothing(t *testing.T) {
	f := fixture{profiles: 4000}
	want1, want2 := cleanRun(t, f, engine.Options{})
	clk := &clock{}
	answers := newDuckAnswers(t, f, clk)
	fake := bqfake.New(t, "linkaud-faults")
	fake.Datasets["analytics"] = true
	fake.BatchRows = 500
	var billed int64 = 1 << 20
	var answerErr *bqfake.Error
	var mu sync.Mutex
	fake.Answer = func(q string) bqfake.Result {
		mu.Lock()
		defer mu.Unlock()
		if answerErr != nil {
			return bqfake.Result{Error: answerErr}
		}
		schema, recs, err := answers.answer(q)
		if err != nil {
			return bqfake.Result{Error: &bqfake.Error{Code: 500, Reason: "backendError", Message: err.Error()}}
		}
		res, err := bqfake.Records(schema, recs)
		if err != nil {
			t.Fatal(err)
		}
		res.BytesBilled = billed
		return res
	}
	rest, storage := fake.ClientOptions()
	opts := engine.Options{Warehouse: executor.Options{GoogleAPI: executor.GoogleAPI{REST: rest, Storage: storage}}}
	dir := f.write(t)
	t.Setenv("FAULT_BQ_KEY", fake.CredentialsFile(t.TempDir()))
	writeFiles(t, dir, map[string]string{"ws.la": vendorWorkspace(f, `warehouse {
  type bigquery
  project "linkaud-faults"
  dataset "analytics"
  credentials_file env("FAULT_BQ_KEY")
  maximum_bytes_billed 100000000
  labels "team=faults"
}
`)})
	e := open(t, load(t, dir), clk, opts)
	defer e.Close()
	mustCompute(t, e, clk, start1)
	if d := diffSnapshots(take(t, e.Store()), want1); d != "" {
		t.Fatalf("generation 1 on BigQuery differs from DuckDB's clean run:\n%s", d)
	}

	answers.use(2)
	set := func(e *bqfake.Error, b int64) func() {
		return func() { mu.Lock(); answerErr, billed = e, b; mu.Unlock() }
	}
	for _, fault := range []struct {
		name, reason string
		arm, disarm  func()
	}{
		{"bytes billed", "Query exceeded limit for bytes billed: 100000000. 5368709120 or higher required.",
			set(nil, 5<<30), set(nil, 1<<20)},
		{"quota", "Quota exceeded: Your project exceeded quota for free query bytes scanned.",
			set(&bqfake.Error{Code: 403, Reason: "quotaExceeded", Message: "Quota exceeded: Your project exceeded quota for free query bytes scanned. For more information, see https://cloud.google.com/bigquery/docs/troubleshoot-quotas"}, 1<<20),
			set(nil, 1<<20)},
		{"missing dataset", "Not found: Dataset linkaud-faults:BANK",
			set(&bqfake.Error{Code: 404, Reason: "notFound", Message: "Not found: Dataset linkaud-faults:BANK was not found in location US"}, 1<<20),
			set(nil, 1<<20)},
		{"credentials expired", "BigQuery refused the credentials in",
			func() { fake.RejectTokens = true }, func() { fake.RejectTokens = false }},
		{"read stream failed half-way", "failed to read rows on stream",
			func() {
				fake.ReadRowsFail, fake.ReadRowsFailAfter, fake.ReadRowsFailAlways = status.New(codes.ResourceExhausted, "Exceeded rate limits: too many concurrent reads"), 1500, true
			},
			func() { fake.ReadRowsFail = nil }},
	} {
		fake.Update(fault.arm)
		_, err := compute(e, clk, start2)
		fake.Update(fault.disarm)
		if err == nil {
			t.Fatalf("%s: the cycle succeeded", fault.name)
		}
		if strings.Contains(err.Error(), "PRIVATE KEY") {
			t.Errorf("%s: the error shows the key: %v", fault.name, err)
		}
		checkFailed(t, e.Store(), want1, fault.reason)
		t.Logf("%s: %v", fault.name, err)
	}
	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the faults differs from a clean run:\n%s", d)
	}
}
