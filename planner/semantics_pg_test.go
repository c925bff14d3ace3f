package planner_test

import (
	"context"
	"database/sql"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// TestSemanticsPostgres holds the hand-checked cases of testdata/semantics
// on PostgreSQL and on the redshift dialect's SQL (see pgEngine): every
// `rows` must give the evaluator's rows there too. Tables are created in
// DuckDB as the files say, then copied, under the dialect's names (folded
// to lower case).
func TestSemanticsPostgres(t *testing.T) {
	for _, d := range []planner.Dialect{planner.Postgres, planner.Redshift} {
		t.Run(d.Name(), func(t *testing.T) {
			eng := newPGEngine(t, d)
			ctx := context.Background()
			ran := 0
			defer func() { t.Logf("%s: %d cases run", d.Name(), ran) }()
			datadriven.Walk(t, "testdata/semantics", func(t *testing.T, path string) {
				var graph string
				var db *sql.DB
				defer func() {
					if db != nil {
						db.Close()
					}
				}()
				datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
					switch td.Cmd {
					case "graph":
						graph = td.Input
					case "sql":
						if db != nil {
							db.Close()
						}
						db = openDB(t)
						for _, s := range strings.Split(td.Input, ";") {
							if strings.TrimSpace(s) != "" {
								mustExec(t, db, s)
							}
						}
						if err := eng.load(ctx, db, duckTables(t, db)); err != nil {
							td.Fatalf(t, "load into PostgreSQL: %v", err)
						}
					case "rows":
						now := time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)
						name, limit := "", 0
						for _, a := range td.CmdArgs {
							switch a.Key {
							case "now":
								now, _ = time.Parse(time.RFC3339Nano, a.Vals[0])
							case "audience":
								name = a.Vals[0]
							case "limit":
								limit, _ = strconv.Atoi(a.Vals[0])
							}
						}
						ws, err := checkSources(map[string]string{"graph.la": graph, "audiences.la": td.Input})
						if err != nil {
							return td.Expected // a checker case: nothing to run
						}
						a := ws.Audiences[len(ws.Audiences)-1]
						if name != "" {
							a = ws.Audience(name)
						}
						plan, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: now, Limit: limit})
						if err != nil {
							return td.Expected // planning errors are the DuckDB test's to print
						}
						ran++
						got, err := eng.rows(ctx, plan)
						if err != nil {
							t.Fatalf("%s: %s: %v\n%s", td.Pos, d.Name(), err, plan.SQL)
						}
						tables, err := readTables(db, ws.Graph)
						if err != nil {
							t.Fatal(err)
						}
						rows, err := refeval.Evaluate(a, ws.Graph, tables, now)
						if err != nil {
							t.Fatal(err)
						}
						want := canonicalWant(limitMembers(rows, limit))
						if strings.Join(got, "\n") != strings.Join(want, "\n") {
							t.Errorf("%s: %s and the evaluator disagree\n%s:\n%s\nevaluator:\n%s\nSQL:\n%s", td.Pos, d.Name(), d.Name(), strings.Join(got, "\n"), strings.Join(want, "\n"), plan.SQL)
						}
					}
					return td.Expected
				})
			})
		})
	}
}

// duckTables lists the tables of a DuckDB database.
func duckTables(t *testing.T, db *sql.DB) []dsl.TableName {
	rows, err := db.Query("SELECT schema_name, table_name FROM duckdb_tables() UNION ALL SELECT schema_name, view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1, 2")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []dsl.TableName
	for rows.Next() {
		var s, n string
		if err := rows.Scan(&s, &n); err != nil {
			t.Fatal(err)
		}
		if s == "main" {
			out = append(out, dsl.TableName{n})
		} else {
			out = append(out, dsl.TableName{s, n})
		}
	}
	return out
}
