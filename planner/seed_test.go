package planner_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/big"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

// seedNow is the cycle start the seed's members are asserted at.
var seedNow = time.Date(2026, 3, 15, 12, 0, 0, 0, time.UTC)

// TestSeedUseCases runs the seed's three use cases (testdata/seed) on the
// embedded DuckDB warehouse the workspace declares, the way preview does
// (executor, Arrow, canonical cell text), checks the rows against the
// reference evaluator over the same CSV files, and prints them for the
// hand-checked expectations in testdata/seed_members. `members AUDIENCE`
// prints "profile_key | key_0 | … | enrich_0 | …" per row.
func TestSeedUseCases(t *testing.T) {
	ws, diags := dsl.Load(filepath.Join("..", "testdata", "seed"), dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	w, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	ref := refTablesFromLoads(t, ws)
	datadriven.RunTest(t, filepath.Join("testdata", "seed_members"), func(t *testing.T, d *datadriven.TestData) string {
		if d.Cmd != "members" || len(d.CmdArgs) != 1 {
			d.Fatalf(t, "usage: members AUDIENCE")
		}
		a := ws.Audience(d.CmdArgs[0].Key)
		if a == nil {
			d.Fatalf(t, "no audience %s", d.CmdArgs[0].Key)
		}
		plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: seedNow})
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		res, err := preview.Run(ctx, w, plan)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		var got []string
		for _, r := range res.Rows {
			vals := []string{r.ProfileKey}
			for i, k := range r.Keys {
				if r.Present[i] {
					vals = append(vals, k)
				} else {
					vals = append(vals, "NULL")
				}
			}
			for _, v := range r.Enrich {
				vals = append(vals, jsonText(v))
			}
			got = append(got, strings.Join(vals, " | "))
		}
		rows, err := refeval.Evaluate(a, ws.Graph, ref, seedNow)
		if err != nil {
			d.Fatalf(t, "%v", err)
		}
		var want []string
		for _, r := range rows {
			vals := []string{r.ProfileKey}
			for _, k := range r.Keys {
				if k == nil {
					vals = append(vals, "NULL")
				} else {
					vals = append(vals, *k)
				}
			}
			for _, v := range r.Enrich {
				vals = append(vals, jsonText(goValue(v)))
			}
			want = append(want, strings.Join(vals, " | "))
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("%s: warehouse and evaluator disagree\nwarehouse:\n%s\nevaluator:\n%s", a.Name, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		return strings.Join(got, "\n") + "\n"
	})
}

// refTablesFromLoads reads the workspace's CSV loads through database/sql
// (the same DuckDB reader, independent of the executor) for the evaluator.
func refTablesFromLoads(t *testing.T, ws *dsl.Workspace) refeval.DB {
	db := openDB(t)
	defer db.Close()
	for _, l := range ws.Warehouse.Loads {
		parts := make([]string, len(l.Table))
		for i, p := range l.Table {
			parts[i] = planner.DuckDB.Ident(p)
		}
		if len(parts) > 1 {
			mustExec(t, db, "CREATE SCHEMA IF NOT EXISTS "+strings.Join(parts[:len(parts)-1], "."))
		}
		mustExec(t, db, "CREATE VIEW "+strings.Join(parts, ".")+" AS SELECT * FROM read_csv("+planner.DuckDB.String(l.File)+")")
	}
	ref, err := readTables(db, ws.Graph)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

func mustExec(t *testing.T, db *sql.DB, q string) {
	t.Helper()
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

// goValue is an evaluator value in the form executor.Cells.Value gives it.
func goValue(v any) any {
	switch v := v.(type) {
	case time.Time:
		if v.Equal(v.Truncate(24 * time.Hour)) {
			return v.Format(time.DateOnly)
		}
		return v.UTC().Format(time.RFC3339Nano)
	case int32:
		return int64(v)
	}
	return v
}

func jsonText(v any) string {
	switch x := v.(type) {
	case nil:
		return "NULL"
	case *big.Rat:
		return "n:" + x.RatString()
	case json.Number:
		if r, ok := new(big.Rat).SetString(string(x)); ok {
			return "n:" + r.RatString()
		}
	}
	if s, ok := v.(string); ok {
		return strconv.Quote(s)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}
