// Package audtest runs the test blocks of a workspace (`linkaud test`):
// each test on a fresh embedded DuckDB, whatever the workspace's
// warehouse, with the tables it gives loaded from CSV files or inline
// rows and every other table of the graph empty, with the columns the
// workspace reads. Each cycle of a test computes the audience's plan (the
// planner's SQL, as a compute cycle runs it) and checks the expectations:
// members, a member's entities, and from the second cycle on the changes
// since the previous cycle (entered, exited, added, removed).
//
// Entry points: Run returns one Result per test; Report.WriteText prints
// them one line each with the member diff of a failure, WriteJUnit the
// JUnit XML that CI systems read.
package audtest

import (
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

// Options configure Run.
type Options struct {
	// Run, when set, selects the tests whose name it matches.
	Run *regexp.Regexp
}

// Result is one test's outcome.
type Result struct {
	Test *dsl.Test
	// Failures are the expectations that did not hold, each with its
	// place and the difference; Err is a test that could not run (a CSV
	// DuckDB cannot read, say).
	Failures []Failure
	Err      error
	Took     time.Duration
}

// Passed reports whether the test ran and every expectation held.
func (r *Result) Passed() bool { return r.Err == nil && len(r.Failures) == 0 }

// Failure is an expectation that did not hold.
type Failure struct {
	At    dsl.Range
	Cycle int // 1-based
	// What is the expectation as written, briefly; Missing and Unexpected
	// the difference (members, entities or events).
	What                string
	Missing, Unexpected []string
}

// Report is what Run did.
type Report struct {
	Dir     string
	Results []*Result
	Took    time.Duration
}

// Failed counts the tests that did not pass.
func (r *Report) Failed() int {
	n := 0
	for _, x := range r.Results {
		if !x.Passed() {
			n++
		}
	}
	return n
}

// Run runs ws's tests in source order.
func Run(ctx context.Context, ws *dsl.Workspace, opts Options) (*Report, error) {
	began := time.Now()
	rep := &Report{Dir: ws.Dir}
	tables, used := dsl.UsedColumns(ws)
	types := columnTypes(ws)
	for _, t := range ws.Tests {
		if opts.Run != nil && !opts.Run.MatchString(t.Name) {
			continue
		}
		start := time.Now()
		res := &Result{Test: t}
		res.Failures, res.Err = runTest(ctx, ws, t, tables, used, types)
		res.Took = time.Since(start)
		rep.Results = append(rep.Results, res)
		if err := ctx.Err(); err != nil {
			return rep, err
		}
	}
	rep.Took = time.Since(began)
	return rep, nil
}

// state is what one cycle computed: the members and, per step of the
// primary path, the (profile, entity key) pairs of their chains.
type state struct {
	members map[string]bool
	pairs   []map[[2]string]bool
}

func runTest(ctx context.Context, ws *dsl.Workspace, t *dsl.Test, tables []dsl.TableName, used map[string][]string, types map[string]string) ([]Failure, error) {
	wh, err := executor.Open(ctx, &dsl.Warehouse{Type: "duckdb", Path: ":memory:", Settings: map[string]string{}}, executor.Options{MaxConns: 1})
	if err != nil {
		return nil, err
	}
	defer wh.Close()
	db, ok := wh.(*executor.DuckDB)
	if !ok {
		return nil, fmt.Errorf("audtest: the embedded warehouse is no DuckDB")
	}
	tmp, err := os.MkdirTemp("", "linkaud-test-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	var fails []Failure
	var prev *state
	now := dsl.DefaultTestNow
	givenNow := map[string]*dsl.TestGiven{}
	for ci, cyc := range t.Cycles {
		switch {
		case !cyc.Now.IsZero():
			now = cyc.Now
		case ci > 0:
			now = now.Add(time.Hour)
		}
		for _, g := range cyc.Givens {
			givenNow[strings.ToUpper(g.Table.String())] = g
		}
		if err := load(ctx, db, tables, used, types, givenNow, tmp, ci); err != nil {
			return nil, fmt.Errorf("cycle %d: %w", ci+1, err)
		}
		plan, err := planner.Compile(t.Audience, ws.Graph, planner.DuckDB, planner.Options{Now: now})
		if err != nil {
			return nil, err
		}
		res, err := preview.Run(ctx, wh, plan)
		if err != nil {
			return nil, fmt.Errorf("cycle %d: %w", ci+1, err)
		}
		st := stateOf(res, plan.KeyColumns())
		for _, e := range cyc.Expects {
			if f := check(e, st, prev, res); f != nil {
				f.At, f.Cycle = e.Range, ci+1
				fails = append(fails, *f)
			}
		}
		prev = st
	}
	return fails, nil
}

func stateOf(res *preview.Result, steps int) *state {
	st := &state{members: map[string]bool{}, pairs: make([]map[[2]string]bool, steps)}
	for i := range st.pairs {
		st.pairs[i] = map[[2]string]bool{}
	}
	for _, row := range res.Rows {
		st.members[row.ProfileKey] = true
		for i, k := range row.Keys {
			if row.Present[i] {
				st.pairs[i][[2]string{row.ProfileKey, k}] = true
			}
		}
	}
	return st
}

// check tests one expectation; nil when it holds.
func check(e *dsl.TestExpect, st, prev *state, res *preview.Result) *Failure {
	switch e.Kind {
	case dsl.ExpectMembers, dsl.ExpectNoMembers:
		what := "expect members " + strings.Join(e.Keys, ", ")
		if e.Kind == dsl.ExpectNoMembers {
			what = "expect no members"
		}
		return compare(what, e.Keys, keys(st.members))
	case dsl.ExpectMember:
		k := e.Keys[0]
		if !st.members[k] {
			return &Failure{What: "expect member " + k, Missing: []string{k}}
		}
		if e.Entity == nil {
			return nil
		}
		var got []string
		for p := range st.pairs[e.Step] {
			if p[0] == k {
				got = append(got, p[1])
			}
		}
		return compare(fmt.Sprintf("expect member %s with entities %s %s", k, e.Entity.Name, strings.Join(e.EntityKeys, ", ")), e.EntityKeys, got)
	case dsl.ExpectEvents, dsl.ExpectNoEvents:
		// Entered and exited are always compared; added and removed
		// for the entities the list names (no events: every entity).
		var want []string
		named := map[string]bool{}
		for _, ev := range e.Events {
			want = append(want, eventText(ev.Kind, entityName(ev.Entity), ev.Key, ev.Profile))
			named[entityName(ev.Entity)] = true
		}
		what := "expect events"
		if e.Kind == dsl.ExpectNoEvents {
			what = "expect no events"
		}
		return compare(what, want, changes(prev, st, res, func(entity string) bool { return e.Kind == dsl.ExpectNoEvents || named[entity] }))
	}
	return nil
}

func entityName(e *dsl.Entity) string {
	if e == nil {
		return ""
	}
	return e.Name
}

func eventText(kind, entity, key, profile string) string {
	if entity == "" {
		return fmt.Sprintf("%s %q", kind, key)
	}
	return fmt.Sprintf("%s %s %q for %q", kind, entity, key, profile)
}

// changes lists what changed from prev to st as `expect events` writes it.
func changes(prev, st *state, res *preview.Result, compared func(entity string) bool) []string {
	var out []string
	for k := range st.members {
		if !prev.members[k] {
			out = append(out, eventText("entered", "", k, ""))
		}
	}
	for k := range prev.members {
		if !st.members[k] {
			out = append(out, eventText("exited", "", k, ""))
		}
	}
	var steps []string
	if p := res.Plan.Audience.Primary; p != nil {
		for _, s := range p.Steps {
			steps = append(steps, s.Entity.Name)
		}
	}
	for i := range st.pairs {
		if !compared(steps[i]) {
			continue
		}
		for p := range st.pairs[i] {
			if !prev.pairs[i][p] {
				out = append(out, eventText("added", steps[i], p[1], p[0]))
			}
		}
		for p := range prev.pairs[i] {
			if !st.pairs[i][p] {
				out = append(out, eventText("removed", steps[i], p[1], p[0]))
			}
		}
	}
	return out
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// compare is nil when got is exactly want (as sets), else the difference.
func compare(what string, want, got []string) *Failure {
	w, g := map[string]bool{}, map[string]bool{}
	for _, x := range want {
		w[x] = true
	}
	for _, x := range got {
		g[x] = true
	}
	f := &Failure{What: what}
	for x := range w {
		if !g[x] {
			f.Missing = append(f.Missing, x)
		}
	}
	for x := range g {
		if !w[x] {
			f.Unexpected = append(f.Unexpected, x)
		}
	}
	if len(f.Missing) == 0 && len(f.Unexpected) == 0 {
		return nil
	}
	sort.Strings(f.Missing)
	sort.Strings(f.Unexpected)
	return f
}

// load (re)creates every table of the graph for a cycle: from the given
// CSV file or inline rows, else empty, with the workspace's columns.
func load(ctx context.Context, db *executor.DuckDB, tables []dsl.TableName, used map[string][]string, types map[string]string, given map[string]*dsl.TestGiven, tmp string, cycle int) error {
	type stmt struct{ sql, what string }
	var stmts []stmt
	schemas := map[string]bool{}
	for i, t := range tables {
		if len(t) > 1 && !schemas[strings.ToUpper(strings.Join(t[:len(t)-1], "."))] {
			schemas[strings.ToUpper(strings.Join(t[:len(t)-1], "."))] = true
			stmts = append(stmts, stmt{"CREATE SCHEMA IF NOT EXISTS " + ident(t[:len(t)-1]), "schema " + strings.Join(t[:len(t)-1], ".")})
		}
		name := ident(t)
		g := given[strings.ToUpper(t.String())]
		if g == nil {
			var cols []string
			for _, c := range used[t.String()] {
				cols = append(cols, quote(c)+" "+typeOr(types, t, c, "VARCHAR"))
			}
			stmts = append(stmts, stmt{"CREATE OR REPLACE TABLE " + name + " (" + strings.Join(cols, ", ") + ")", "empty table " + t.String()})
			continue
		}
		file := g.File
		if file == "" {
			file = filepath.Join(tmp, fmt.Sprintf("c%d-t%d.csv", cycle, i))
			if err := writeCSV(file, g.Columns, g.Rows); err != nil {
				return err
			}
		}
		// Columns the workspace compares with numbers, dates or
		// booleans get that type, so that a file with no row (or only
		// empty cells) in them still compares; the rest DuckDB detects.
		// Columns the workspace reads that the file leaves out are NULL.
		has := map[string]bool{}
		for _, c := range g.Columns {
			has[strings.ToUpper(c)] = true
		}
		var typed, extra []string
		for _, c := range used[t.String()] {
			ty := typeOr(types, t, c, "")
			switch {
			case !has[strings.ToUpper(c)]:
				extra = append(extra, ", CAST(NULL AS "+typeOr(types, t, c, "VARCHAR")+") AS "+quote(c))
			case ty != "":
				typed = append(typed, literal(c)+": "+literal(ty))
			}
		}
		opts := "header = true"
		if len(typed) > 0 {
			opts += ", types = {" + strings.Join(typed, ", ") + "}"
		}
		what := "the rows of " + t.String()
		if g.File != "" {
			what = t.String() + " from " + g.File
		}
		stmts = append(stmts, stmt{"CREATE OR REPLACE TABLE " + name + " AS SELECT *" + strings.Join(extra, "") + " FROM read_csv(" + literal(file) + ", " + opts + ")", what})
	}
	for _, s := range stmts {
		if err := db.Exec(ctx, s.sql); err != nil {
			// DuckDB's CSV errors end with a list of its reader's
			// options after a blank line: the cause comes before.
			msg, _, _ := strings.Cut(err.Error(), "\n\n")
			return fmt.Errorf("loading %s: %s", s.what, msg)
		}
	}
	return nil
}

func writeCSV(path string, cols []string, rows [][]*string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := csv.NewWriter(f)
	_ = w.Write(cols)
	for _, r := range rows {
		rec := make([]string, len(r))
		for i, c := range r {
			if c != nil {
				rec[i] = *c
			}
		}
		_ = w.Write(rec)
	}
	w.Flush()
	if err := w.Error(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func ident(t dsl.TableName) string {
	parts := make([]string, len(t))
	for i, p := range t {
		parts[i] = quote(p)
	}
	return strings.Join(parts, ".")
}

func quote(s string) string   { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }
func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func typeOr(types map[string]string, t dsl.TableName, col, def string) string {
	if ty, ok := types[strings.ToUpper(t.String()+"."+col)]; ok {
		return ty
	}
	return def
}

// columnTypes infers the type of the columns the audiences compare with a
// number, a date or a boolean, or aggregate: DOUBLE, TIMESTAMP, BOOLEAN.
func columnTypes(ws *dsl.Workspace) map[string]string {
	out := map[string]string{}
	g := ws.Graph
	set := func(r *dsl.ColumnRef, ty string) {
		var t dsl.TableName
		switch r.Source {
		case dsl.SourceTrait:
			t = g.Profile.Table
		case dsl.SourceEvents:
			if g.Events == nil {
				return
			}
			t = g.Events.Table
		default:
			if r.Entity == nil {
				return
			}
			t = r.Entity.Table
		}
		out[strings.ToUpper(t.String()+"."+r.Column)] = ty
	}
	if ev := g.Events; ev != nil && ev.TimeColumn != "" {
		out[strings.ToUpper(ev.Table.String()+"."+ev.TimeColumn)] = "TIMESTAMP"
	}
	for _, a := range ws.Audiences {
		if a.Match == nil {
			continue
		}
		dsl.Inspect(a.Match, func(n dsl.Node) bool {
			switch n := n.(type) {
			case *dsl.Compare:
				switch {
				case n.Op == dsl.OpWithin || n.Op == dsl.OpBefore || n.Op == dsl.OpAfter || n.Value.Kind == dsl.LitDate:
					set(n.Column, "TIMESTAMP")
				case n.Op == dsl.OpIsTrue || n.Op == dsl.OpIsFalse || n.Ref == nil && n.Value.Kind == dsl.LitBool && n.Op <= dsl.OpNe:
					set(n.Column, "BOOLEAN")
				case n.Ref == nil && (n.Value.Kind == dsl.LitNumber || len(n.Values) > 0 && n.Values[0].Kind == dsl.LitNumber):
					set(n.Column, "DOUBLE")
				}
			case *dsl.Step:
				if h := n.Having; h != nil && h.Column != "" {
					out[strings.ToUpper(n.Entity.Table.String()+"."+h.Column)] = "DOUBLE"
				}
			}
			return true
		})
	}
	return out
}
