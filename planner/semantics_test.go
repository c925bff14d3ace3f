package planner_test

import (
	"database/sql"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
	"github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// TestSemantics pins DESIGN.md's "Exact meaning" with small hand-made
// cases: each `rows` runs the audience's SQL in DuckDB and the reference
// evaluator over the same data, fails if they disagree, and prints the rows,
// which were checked by hand against the design. Commands:
//
//	graph             the workspace's graph (and any helper audiences)
//	sql               statements creating and filling the tables (DuckDB)
//	rows [now=RFC3339] [audience=NAME] [limit=N]
//	                  the audience(s) in the input; prints NAME's rows
//	                  (default: the last one), "profile_key | key_0 | … | enrich_0 | …"
//
// Regenerate with -rewrite, then read the diff like code.
func TestSemantics(t *testing.T) {
	datadriven.Walk(t, "testdata/semantics", func(t *testing.T, path string) {
		var graph string
		var db *sql.DB
		defer func() {
			if db != nil {
				db.Close()
			}
		}()
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "graph":
				graph = d.Input
				return ""
			case "sql":
				if db != nil {
					db.Close()
				}
				db = openDB(t)
				for _, s := range strings.Split(d.Input, ";") {
					if strings.TrimSpace(s) == "" {
						continue
					}
					if _, err := db.Exec(s); err != nil {
						d.Fatalf(t, "%s: %v", s, err)
					}
				}
				return ""
			case "rows":
				now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
				name := ""
				limit := 0
				for _, a := range d.CmdArgs {
					switch a.Key {
					case "now":
						var err error
						if now, err = time.Parse(time.RFC3339Nano, a.Vals[0]); err != nil {
							d.Fatalf(t, "now: %v", err)
						}
					case "audience":
						name = a.Vals[0]
					case "limit":
						limit, _ = strconv.Atoi(a.Vals[0])
					}
				}
				ws, err := checkSources(map[string]string{"graph.la": graph, "audiences.la": d.Input})
				if err != nil {
					return "check: " + err.Error()
				}
				a := ws.Audiences[len(ws.Audiences)-1]
				if name != "" {
					a = ws.Audience(name)
				}
				got, want, err := bothSides(db, ws, a, now, limit)
				if err != nil {
					return err.Error()
				}
				if strings.Join(got, "\n") != strings.Join(want, "\n") {
					t.Errorf("%s: DuckDB and the evaluator disagree\nduckdb:\n%s\nevaluator:\n%s", d.Pos, strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
				if len(got) == 0 {
					return "(no rows)\n"
				}
				return strings.Join(got, "\n") + "\n"
			}
			d.Fatalf(t, "unknown command %s", d.Cmd)
			return ""
		})
	})
}

func checkSources(src map[string]string) (*dsl.Workspace, error) {
	var files []*grammar.File
	srcs := map[string][]byte{}
	for _, n := range []string{"graph.la", "audiences.la"} {
		f, errs := grammar.ParseFile(n, []byte(src[n]))
		if len(errs) > 0 {
			return nil, errs
		}
		files = append(files, f)
		srcs[n] = []byte(src[n])
	}
	ws, diags := dsl.Check(".", files, dsl.Options{})
	if diags.HasErrors() {
		var b strings.Builder
		dsl.Render(&b, diags, srcs)
		return nil, fmt.Errorf("%s", b.String())
	}
	return ws, nil
}

// bothSides runs audience a in DuckDB and in the evaluator (over the
// graph's tables read back from the same database).
func bothSides(db *sql.DB, ws *dsl.Workspace, a *dsl.Audience, now time.Time, limit int) (got, want []string, err error) {
	plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: now, Limit: limit})
	if err != nil {
		return nil, nil, err
	}
	if err := noSubquery(db, plan.SQL); err != nil {
		return nil, nil, err
	}
	got, err = query(db, plan.SQL)
	if err != nil {
		return nil, nil, fmt.Errorf("duckdb: %v\n%s", err, plan.SQL)
	}
	tables, err := readTables(db, ws.Graph)
	if err != nil {
		return nil, nil, err
	}
	rows, err := refeval.Evaluate(a, ws.Graph, tables, now)
	if err != nil {
		return nil, nil, err
	}
	for _, r := range rows {
		vals := []any{r.ProfileKey}
		for _, k := range r.Keys {
			if k == nil {
				vals = append(vals, nil)
			} else {
				vals = append(vals, *k)
			}
		}
		want = append(want, rowText(append(vals, r.Enrich...)))
	}
	if limit > 0 {
		// The first limit members, with all their rows.
		members := refeval.Members(rows)
		if len(members) > limit {
			n := 0
			for n < len(rows) && rows[n].ProfileKey <= members[limit-1] {
				n++
			}
			want = want[:n]
		}
	}
	return got, want, nil
}

// readTables loads the graph's tables from db for the evaluator.
func readTables(db *sql.DB, g *dsl.Graph) (refeval.DB, error) {
	names := []dsl.TableName{g.Profile.Table}
	for _, e := range g.Entities {
		names = append(names, e.Table)
	}
	for _, r := range g.Relationships {
		if r.Through != nil {
			names = append(names, r.Through.Table)
		}
	}
	if g.Memberships != nil {
		names = append(names, g.Memberships.Table)
	}
	if g.Events != nil {
		names = append(names, g.Events.Table)
	}
	out := refeval.DB{}
	for _, n := range names {
		if _, ok := out[n.String()]; ok {
			continue
		}
		parts := make([]string, len(n))
		for i, p := range n {
			parts[i] = planner.DuckDB.Ident(p)
		}
		rows, err := db.Query("SELECT * FROM " + strings.Join(parts, "."))
		if err != nil {
			return nil, err
		}
		cols, _ := rows.Columns()
		t := &refeval.Table{Columns: cols}
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return nil, err
			}
			for i, v := range vals {
				switch x := v.(type) {
				case int32:
					vals[i] = int64(x)
				case int16:
					vals[i] = int64(x)
				case int8:
					vals[i] = int64(x)
				case duckdb.Decimal:
					r := new(big.Rat).SetInt(x.Value)
					vals[i] = r.Quo(r, new(big.Rat).SetInt(new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(x.Scale)), nil)))
				}
			}
			t.Rows = append(t.Rows, vals)
		}
		rows.Close()
		out[n.String()] = t
	}
	return out, nil
}
