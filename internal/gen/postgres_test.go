package gen_test

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
	"github.com/linkaud/linkaud/internal/pgtest"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

// TestLoadPostgres generates a workspace, loads it into PostgreSQL (as
// `linkaud gen --warehouse postgres` does), mutates it and loads the
// mutated tables again: every audience's rows on PostgreSQL equal its rows
// on the Parquet files through DuckDB, before and after.
func TestLoadPostgres(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	dir := t.TempDir()
	anchor := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := gen.Generate(ctx, gen.Options{Profiles: 3000, Out: dir, Seed: 3, Anchor: anchor}); err != nil {
		t.Fatal(err)
	}
	duckText, err := os.ReadFile(filepath.Join(dir, gen.WorkspaceFile))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := gen.LoadPostgres(ctx, gen.PostgresOptions{Dir: dir, DSN: dsn, DSNEnv: "GEN_TEST_DSN"}); err != nil {
		t.Fatal(err)
	}
	pgText, _ := os.ReadFile(filepath.Join(dir, gen.WorkspaceFile))
	if !strings.Contains(string(pgText), "type postgres") || strings.Contains(string(pgText), dsn) {
		t.Fatalf("workspace after the load:\n%s", pgText)
	}
	t.Setenv("GEN_TEST_DSN", dsn)
	compare := func(step string) {
		duckDir := t.TempDir()
		text := strings.ReplaceAll(string(duckText), `from "data/`, `from "`+filepath.Join(dir, "data")+"/")
		os.WriteFile(filepath.Join(duckDir, gen.WorkspaceFile), []byte(text), 0o644)
		want := rowsOf(t, duckDir, anchor)
		got := rowsOf(t, dir, anchor)
		for name, w := range want {
			if got[name] != w {
				t.Errorf("%s: %s on PostgreSQL differs from DuckDB:\npostgres:\n%.2000s\nduckdb:\n%.2000s", step, name, got[name], w)
			}
			if w == "" {
				t.Errorf("%s: %s has no members: a test of nothing", step, name)
			}
		}
	}
	compare("generated")
	res, err := gen.Mutate(ctx, gen.MutateOptions{Dir: dir, Percent: 5, Seed: 4})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tb := range res.Tables {
		names = append(names, tb.Name)
	}
	if _, err := gen.LoadPostgres(ctx, gen.PostgresOptions{Dir: dir, DSN: dsn, DSNEnv: "GEN_TEST_DSN", Tables: names}); err != nil {
		t.Fatal(err)
	}
	compare("mutated")
}

// rowsOf previews every audience of the workspace in dir.
func rowsOf(t *testing.T, dir string, anchor time.Time) map[string]string {
	t.Helper()
	ctx := context.Background()
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer wh.Close()
	d, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, a := range ws.Audiences {
		p, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: anchor.Add(-time.Hour)})
		if err != nil {
			t.Fatal(err)
		}
		res, err := preview.Run(ctx, wh, p)
		if err != nil {
			t.Fatalf("%s on %s: %v", a.Name, d.Name(), err)
		}
		var b strings.Builder
		if err := res.WriteJSONL(&b); err != nil {
			t.Fatal(err)
		}
		out[a.Name] = b.String()
	}
	return out
}
