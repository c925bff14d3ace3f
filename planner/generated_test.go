package planner_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/gen"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

// TestGeneratedWorkspace runs the audiences of the synthetic bank +
// household workspace (internal/gen: awkward data at a realistic shape,
// Parquet files) through preview, the production path, and compares every
// row with the reference evaluator over the same files.
func TestGeneratedWorkspace(t *testing.T) {
	profiles := 3000
	if testing.Short() {
		profiles = 500
	}
	dir := t.TempDir()
	anchor := time.Date(2026, 3, 15, 0, 0, 0, 0, time.UTC)
	ctx := context.Background()
	if _, err := gen.Generate(ctx, gen.Options{Profiles: profiles, Out: dir, Seed: 7, Anchor: anchor}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.la"), []byte(extraAudiences), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	w, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	db := openDB(t)
	defer db.Close()
	for _, l := range ws.Warehouse.Loads {
		parts := make([]string, len(l.Table))
		for i, p := range l.Table {
			parts[i] = planner.DuckDB.Ident(p)
		}
		mustExec(t, db, "CREATE SCHEMA IF NOT EXISTS "+strings.Join(parts[:len(parts)-1], "."))
		mustExec(t, db, "CREATE VIEW "+strings.Join(parts, ".")+" AS SELECT * FROM read_parquet("+planner.DuckDB.String(l.File)+")")
	}
	ref, err := readTables(db, ws.Graph)
	if err != nil {
		t.Fatal(err)
	}
	now := anchor.Add(-time.Hour)
	for _, a := range ws.Audiences {
		plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		res, err := preview.Run(ctx, w, plan)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		rows, err := refeval.Evaluate(a, ws.Graph, ref, now)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != len(res.Rows) || res.Members != len(refeval.Members(rows)) {
			t.Errorf("%s: warehouse %d rows, %d members; evaluator %d rows, %d members", a.Name, len(res.Rows), res.Members, len(rows), len(refeval.Members(rows)))
		}
		for i := range min(len(rows), len(res.Rows)) {
			g, w := res.Rows[i], rows[i]
			same := g.ProfileKey == w.ProfileKey
			for k := range g.Keys {
				same = same && g.Present[k] == (w.Keys[k] != nil) && (w.Keys[k] == nil || g.Keys[k] == *w.Keys[k])
			}
			for j := range g.Enrich {
				same = same && jsonText(g.Enrich[j]) == jsonText(goValue(w.Enrich[j]))
			}
			if !same {
				t.Errorf("%s: row %d differs: warehouse %+v, evaluator %s %v %v", a.Name, i, g, w.ProfileKey, derefs(w.Keys), w.Enrich)
				break
			}
		}
		t.Logf("%s: %d members, %d rows", a.Name, res.Members, len(res.Rows))
	}
}

func derefs(ks []*string) []string {
	out := make([]string, len(ks))
	for i, k := range ks {
		if k == nil {
			out[i] = "NULL"
		} else {
			out[i] = *k
		}
	}
	return out
}
