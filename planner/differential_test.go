package planner_test

import (
	"database/sql"
	"flag"
	"fmt"
	"math/big"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/internal/randgen"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// The differential test's size; `make fuzz-planner` sets them through the
// environment (LINKAUD_FUZZ_CASES, LINKAUD_FUZZ_SEED).
var (
	fuzzCases = flag.Int("cases", envInt("LINKAUD_FUZZ_CASES", 1200), "random cases of TestDifferential")
	fuzzSeed  = flag.Int64("seed", int64(envInt("LINKAUD_FUZZ_SEED", 1)), "seed of TestDifferential")
	fuzzOne   = flag.Int("case", -1, "run only this case of TestDifferential (as a failure reports it)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

// audiencesPerGraph is how many audiences run over one generated graph and
// its data (loaded into DuckDB once).
const audiencesPerGraph = 8

// TestDifferential runs random audiences over random graphs and data in
// DuckDB and compares every result row (members, entity chains,
// enrichment, order) with the reference evaluator. A mismatch is shrunk to
// a small reproducer: graph, data, audiences as text, the SQL and both
// results.
func TestDifferential(t *testing.T) {
	cases := *fuzzCases
	if testing.Short() && cases > 300 {
		cases = 300
	}
	seed := *fuzzSeed
	var st stats
	failures := 0
	start := time.Now()
	for gi := 0; gi*audiencesPerGraph < cases; gi++ {
		first := gi * audiencesPerGraph
		if *fuzzOne >= 0 && (*fuzzOne < first || *fuzzOne >= first+audiencesPerGraph) {
			continue
		}
		gen := randgen.New(uint64(seed)*1_000_003 + uint64(gi))
		gr := gen.Graph()
		db := openDB(t)
		if err := load(db, gr); err != nil {
			t.Fatalf("load: %v\n%s", err, gr.Text())
		}
		for k := 0; k < audiencesPerGraph && first+k < cases; k++ {
			helpers, target := gen.Audiences(gr)
			c := &randgen.Case{Graph: gr, Helpers: helpers, Target: target, Now: gen.Now(), Limit: gen.Limit()}
			ws, err := checkCase(c)
			if err != nil {
				t.Fatalf("case %d: generated text does not check: %v\n%s", first+k, err, sourceText(c))
			}
			if a := ws.Audience("target"); a.Primary != nil {
				var steps []string
				for _, s := range a.Primary.Steps {
					steps = append(steps, s.Entity.Name)
				}
				target.Enrich = gen.Enrich(gr, steps)
			}
			if *fuzzOne >= 0 && *fuzzOne != first+k {
				continue
			}
			r := runCase(db, c)
			st.add(c, r)
			if r.ok() {
				continue
			}
			failures++
			min := randgen.Shrink(c, func(v *randgen.Case) bool {
				vdb := openDB(t)
				defer vdb.Close()
				if load(vdb, v.Graph) != nil {
					return false
				}
				vr := runCase(vdb, v)
				return vr.checkErr == nil && !vr.ok()
			}, 3000)
			vdb := openDB(t)
			_ = load(vdb, min.Graph)
			mr := runCase(vdb, min)
			vdb.Close()
			t.Errorf("case %d (-seed=%d -case=%d): %s\n%s", first+k, seed, first+k, r.summary(), reproducer(min, mr))
			if failures >= 3 {
				db.Close()
				t.Fatalf("stopping after %d failures", failures)
			}
		}
		db.Close()
	}
	t.Logf("seed %d: %d cases in %s; %s", seed, st.cases, time.Since(start).Round(time.Millisecond), st.String())
}

// ---- running one case ----

type result struct {
	sql       string
	checkErr  error
	planErr   error
	queryErr  error
	evalErr   error
	got, want []string
}

func (r *result) ok() bool {
	if r.checkErr != nil || r.planErr != nil || r.queryErr != nil || r.evalErr != nil {
		return false
	}
	return strings.Join(r.got, "\n") == strings.Join(r.want, "\n")
}

// keyOrder sorts, within each run of rows with the same keys, the rows by
// their whole text: the contract orders rows by keys only, and rows whose
// keys are equal (a key that is not unique in its table) may differ in
// their enrichment in any order.
func keyOrder(rows []string, keys int) []string {
	out := append([]string(nil), rows...)
	prefix := func(s string) string {
		return strings.Join(strings.SplitN(s, " | ", keys+2)[:min(keys+1, strings.Count(s, " | ")+1)], " | ")
	}
	for i := 0; i < len(out); {
		j := i + 1
		for j < len(out) && prefix(out[j]) == prefix(out[i]) {
			j++
		}
		sort.Strings(out[i:j])
		i = j
	}
	return out
}

func (r *result) summary() string {
	switch {
	case r.checkErr != nil:
		return "check: " + r.checkErr.Error()
	case r.planErr != nil:
		return "plan: " + r.planErr.Error()
	case r.queryErr != nil:
		return "query: " + r.queryErr.Error()
	case r.evalErr != nil:
		return "evaluator: " + r.evalErr.Error()
	}
	return fmt.Sprintf("rows differ: duckdb %d, evaluator %d", len(r.got), len(r.want))
}

func runCase(db *sql.DB, c *randgen.Case) *result {
	r := &result{}
	ws, err := checkCase(c)
	if err != nil {
		r.checkErr = err
		return r
	}
	a := ws.Audience("target")
	plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: c.Now, Limit: c.Limit})
	if err != nil {
		r.planErr = err
		return r
	}
	r.sql = plan.SQL
	if err := noSubquery(db, plan.SQL); err != nil {
		r.queryErr = err
		return r
	}
	r.got, r.queryErr = query(db, plan.SQL)
	r.got = keyOrder(r.got, plan.KeyColumns())
	rows, err := refeval.Evaluate(a, ws.Graph, refDB(c.Graph), c.Now)
	if err != nil {
		r.evalErr = err
		return r
	}
	if c.Limit > 0 {
		if m := refeval.Members(rows); len(m) > c.Limit {
			n := 0
			for n < len(rows) && rows[n].ProfileKey <= m[c.Limit-1] {
				n++
			}
			rows = rows[:n]
		}
	}
	for _, row := range rows {
		vals := []any{row.ProfileKey}
		for _, k := range row.Keys {
			if k == nil {
				vals = append(vals, nil)
			} else {
				vals = append(vals, *k)
			}
		}
		vals = append(vals, row.Enrich...)
		r.want = append(r.want, rowText(vals))
	}
	r.want = keyOrder(r.want, plan.KeyColumns())
	return r
}

// noSubquery parses q with DuckDB's own parser and fails if its tree has
// a subquery (an expression or a table of class SUBQUERY): an independent
// check of the invariant the planner's checkUncorrelated keeps.
func noSubquery(db *sql.DB, q string) error {
	// One literal: the planner's literals spell control characters out,
	// so its newlines are layout, and a literal of chr() terms would cost
	// DuckDB seconds to fold.
	lit := "'" + strings.ReplaceAll(strings.ReplaceAll(q, "\n", " "), "'", "''") + "'"
	var tree string
	if err := db.QueryRow("SELECT CAST(json_serialize_sql(" + lit + ") AS VARCHAR)").Scan(&tree); err != nil {
		return fmt.Errorf("json_serialize_sql: %w", err)
	}
	if strings.Contains(tree, `"error":true`) {
		return fmt.Errorf("DuckDB does not parse the plan: %s", tree)
	}
	if strings.Contains(tree, `"SUBQUERY"`) {
		return fmt.Errorf("DuckDB's parse tree of the plan has a subquery")
	}
	return nil
}

func checkCase(c *randgen.Case) (*dsl.Workspace, error) {
	src := c.Source()
	names := make([]string, 0, len(src))
	for n := range src {
		names = append(names, n)
	}
	sort.Strings(names)
	var files []*grammar.File
	for _, n := range names {
		f, errs := grammar.ParseFile(n, []byte(src[n]))
		if len(errs) > 0 {
			return nil, errs
		}
		files = append(files, f)
	}
	ws, diags := dsl.Check(".", files, dsl.Options{})
	if diags.HasErrors() {
		var b strings.Builder
		dsl.Render(&b, diags, map[string][]byte{"graph.la": []byte(src["graph.la"]), "audiences.la": []byte(src["audiences.la"])})
		return nil, fmt.Errorf("%s", b.String())
	}
	return ws, nil
}

func openDB(t testing.TB) *sql.DB {
	db, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	db.SetMaxOpenConns(1)
	// DESIGN.md: a timestamp without a zone is UTC; pin the session's zone
	// so that nothing depends on the machine's.
	if _, err := db.Exec("SET TimeZone = 'UTC'"); err != nil {
		t.Fatal(err)
	}
	return db
}

// load creates the graph's tables and inserts their rows through
// parameters.
func load(db *sql.DB, gr *randgen.Graph) error {
	for _, t := range gr.Tables() {
		for _, s := range t.DDL() {
			if _, err := db.Exec(s); err != nil {
				return fmt.Errorf("%s: %w", s, err)
			}
		}
		if len(t.Rows) == 0 {
			continue
		}
		ph := "(" + strings.TrimSuffix(strings.Repeat("?, ", len(t.Columns)), ", ") + ")"
		var args []any
		var tuples []string
		for _, r := range t.Rows {
			tuples = append(tuples, ph)
			args = append(args, r...)
		}
		if _, err := db.Exec("INSERT INTO "+t.SQLName()+" VALUES "+strings.Join(tuples, ", "), args...); err != nil {
			return fmt.Errorf("insert into %s: %w", t.QName(), err)
		}
	}
	return nil
}

func query(db *sql.DB, q string) ([]string, error) {
	rows, err := db.Query(q)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return nil, err
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		out = append(out, rowText(vals))
	}
	return out, rows.Err()
}

func refDB(gr *randgen.Graph) refeval.DB {
	db := refeval.DB{}
	for _, t := range gr.Tables() {
		rt := &refeval.Table{Rows: t.Rows}
		for _, c := range t.Columns {
			rt.Columns = append(rt.Columns, c.Name)
		}
		db[t.QName()] = rt
	}
	return db
}

// rowText renders a result row with each value's type, so that the two
// sides must agree on types as well as values.
func rowText(vals []any) string {
	parts := make([]string, len(vals))
	for i, v := range vals {
		switch v := v.(type) {
		case nil:
			parts[i] = "NULL"
		case string:
			parts[i] = strconv.Quote(v)
		case int64:
			parts[i] = strconv.FormatInt(v, 10)
		case int32:
			parts[i] = strconv.FormatInt(int64(v), 10)
		case float64:
			parts[i] = strconv.FormatFloat(v, 'g', -1, 64) + "f"
		case bool:
			parts[i] = strconv.FormatBool(v)
		case time.Time:
			parts[i] = v.UTC().Format(time.RFC3339Nano)
		case *big.Int:
			parts[i] = v.String()
		default:
			parts[i] = fmt.Sprintf("%T(%v)", v, v)
		}
	}
	return strings.Join(parts, " | ")
}

func sourceText(c *randgen.Case) string {
	return "# graph.la\n" + c.Graph.Text() + "# audiences.la\n" + c.AudiencesText()
}

func reproducer(c *randgen.Case, r *result) string {
	var b strings.Builder
	b.WriteString("---- minimal reproducer ----\n")
	b.WriteString(sourceText(c))
	fmt.Fprintf(&b, "# now: %s\n", c.Now.Format(time.RFC3339Nano))
	if c.Limit > 0 {
		fmt.Fprintf(&b, "# limit: %d members\n", c.Limit)
	}
	fmt.Fprintf(&b, "# data (DuckDB):\n%s", c.DataText())
	fmt.Fprintf(&b, "# result: %s\n", r.summary())
	if r.sql != "" {
		b.WriteString("# SQL:\n" + r.sql + "\n")
	}
	b.WriteString("# evaluator rows:\n")
	for _, l := range r.want {
		b.WriteString("  " + l + "\n")
	}
	b.WriteString("# duckdb rows:\n")
	for _, l := range r.got {
		b.WriteString("  " + l + "\n")
	}
	return b.String()
}

// ---- coverage ----

// stats counts what the cases exercised, so that a generator that stops
// producing some construct is noticed in the log.
type stats struct {
	cases, members, rows, empty int
	constructs                  map[string]int
	depth                       [6]int // cases by their longest path's steps
}

func longestPath(x randgen.Cond) int {
	n := 0
	switch x := x.(type) {
	case *randgen.And:
		for _, t := range x.Terms {
			n = max(n, longestPath(t))
		}
	case *randgen.Or:
		for _, t := range x.Terms {
			n = max(n, longestPath(t))
		}
	case *randgen.Not:
		n = longestPath(x.X)
	case *randgen.Path:
		n = len(x.Steps)
	}
	return n
}

var constructs = []string{"exactly 0", "at most", "exactly", "at least", "having count", "having sum", "having avg", "having min", "having max",
	"not ", " or ", "in audience", "performed", "within", "before", "after", "contains", "starts with", "ends with", "not in", " in (",
	"is null", "is not null", "is true", "trait.", "trait ", "enrich", "through"}

func (s *stats) add(c *randgen.Case, r *result) {
	if s.constructs == nil {
		s.constructs = map[string]int{}
	}
	s.cases++
	s.depth[min(longestPath(c.Target.Match), 5)]++
	s.rows += len(r.want)
	seen := map[string]bool{}
	for _, l := range r.want {
		seen[strings.SplitN(l, " | ", 2)[0]] = true
	}
	s.members += len(seen)
	if len(seen) == 0 {
		s.empty++
	}
	text := c.AudiencesText() + c.Graph.Text()
	for _, k := range constructs {
		if strings.Contains(text, k) {
			s.constructs[k]++
		}
	}
}

func (s *stats) String() string {
	var parts []string
	for _, k := range constructs {
		parts = append(parts, fmt.Sprintf("%q:%d", strings.TrimSpace(k), s.constructs[k]))
	}
	return fmt.Sprintf("%d members, %d rows, %d cases with no member; cases by longest path (0..5 steps): %v; cases using: %s",
		s.members, s.rows, s.empty, s.depth, strings.Join(parts, " "))
}
