package executor_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/internal/pgload"
	"github.com/linkaud/linkaud/internal/pgtest"
)

// TestCheckWarehouse runs `check --warehouse` (dsl.CheckColumns over a real
// warehouse's names and types) on the cases of testdata/check_warehouse,
// on DuckDB and on PostgreSQL, which must print the same diagnostics:
//
//	sql      DuckDB statements creating the tables (copied to PostgreSQL)
//	check    a workspace's audiences over testdata's graph; prints the
//	         diagnostics, rendered
func TestCheckWarehouse(t *testing.T) {
	graph, err := os.ReadFile(filepath.Join("testdata", "check_warehouse.la"))
	if err != nil {
		t.Fatal(err)
	}
	for _, kind := range []string{"duckdb", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			dir := t.TempDir()
			var wh executor.Warehouse
			datadriven.RunTest(t, filepath.Join("testdata", "check_warehouse"), func(t *testing.T, d *datadriven.TestData) string {
				switch d.Cmd {
				case "sql":
					db, err := sql.Open("duckdb", filepath.Join(dir, "w.duckdb"))
					if err != nil {
						t.Fatal(err)
					}
					for _, s := range strings.Split(d.Input, ";") {
						if strings.TrimSpace(s) != "" {
							if _, err := db.Exec(s); err != nil {
								d.Fatalf(t, "%s: %v", s, err)
							}
						}
					}
					if kind == "duckdb" {
						db.Close()
						wh, err = executor.Open(ctx, &dsl.Warehouse{Type: "duckdb", Path: filepath.Join(dir, "w.duckdb"), Settings: map[string]string{}}, executor.Options{})
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { wh.Close() })
						return ""
					}
					defer db.Close()
					dsn := pgtest.NewDatabase(t)
					var tables []pgload.Table
					rows, err := db.Query(`SELECT schema_name, table_name FROM duckdb_tables()`)
					if err != nil {
						t.Fatal(err)
					}
					for rows.Next() {
						var s, n string
						rows.Scan(&s, &n)
						tables = append(tables, pgload.Table{Name: []string{s, n}})
					}
					rows.Close()
					if err := pgload.Copy(ctx, db, pgtest.Connect(t, dsn), tables, pgload.Options{}); err != nil {
						t.Fatal(err)
					}
					wh = openPGAt(t, "postgres", dsn, nil)
					return ""
				case "check":
					src := map[string][]byte{"graph.la": graph, "audiences.la": []byte(d.Input)}
					var files []*grammar.File
					for _, n := range []string{"graph.la", "audiences.la"} {
						f, errs := grammar.ParseFile(n, src[n])
						if len(errs) > 0 {
							d.Fatalf(t, "%v", errs)
						}
						files = append(files, f)
					}
					ws, diags := dsl.Check(".", files, dsl.Options{})
					if diags.HasErrors() {
						d.Fatalf(t, "%v", diags)
					}
					diags = dsl.CheckColumns(ctx, ws, wh)
					var b strings.Builder
					dsl.Render(&b, diags, src)
					// Type names are each warehouse's own.
					return normaliseTypes(b.String())
				}
				d.Fatalf(t, "unknown command %s", d.Cmd)
				return ""
			})
		})
	}
}

// normaliseTypes replaces the warehouse's name of a type, "(VARCHAR)" or
// "(text)", by its class's, so both warehouses print one expectation.
func normaliseTypes(s string) string {
	r := strings.NewReplacer(
		"(VARCHAR)", "(text)", "(BIGINT)", "(integer)", "(bigint)", "(integer)", "(DOUBLE)", "(double)",
		"(double precision)", "(double)", "(BOOLEAN)", "(boolean)", "(DATE)", "(date)", "(TIMESTAMP)", "(timestamp)",
		"(BLOB)", "(binary)", "(bytea)", "(binary)",
	)
	return r.Replace(s)
}
