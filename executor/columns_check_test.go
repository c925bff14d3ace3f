package executor_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/cockroachdb/datadriven"
	_ "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/internal/bqfake"
	"github.com/linkaud/linkaud/internal/dbxfake"
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
	for _, kind := range []string{"duckdb", "postgres", "databricks", "bigquery"} {
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
					if kind != "postgres" {
						db.Close()
						wh, err = executor.Open(ctx, &dsl.Warehouse{Type: "duckdb", Path: filepath.Join(dir, "w.duckdb"), Settings: map[string]string{}}, executor.Options{})
						if err != nil {
							t.Fatal(err)
						}
						t.Cleanup(func() { wh.Close() })
						switch kind {
						case "databricks":
							wh = fakeDatabricksOver(t, wh)
						case "bigquery":
							wh = fakeBigQueryOver(t, wh)
						}
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
		// Databricks' type_text and BigQuery's data_type.
		"(STRING)", "(text)", "(INT64)", "(integer)", "(FLOAT64)", "(double)", "(BOOL)", "(boolean)",
		"(TIMESTAMP_NTZ)", "(timestamp)", "(BYTES)", "(binary)", "(BINARY)", "(binary)",
	)
	return r.Replace(s)
}

var backquoted = regexp.MustCompile("`([^`]*)`")

// describeDuck is the schema of a DuckDB table, as the warehouse fakes
// answer for it.
func describeDuck(duck executor.Warehouse, parts []string) (*arrow.Schema, error) {
	q := make([]string, len(parts))
	for i, p := range parts {
		q[i] = `"` + p + `"`
	}
	rd, err := duck.Query(context.Background(), "SELECT * FROM "+strings.Join(q, ".")+" LIMIT 0", executor.QueryOptions{})
	if err != nil {
		return nil, err
	}
	defer rd.Release()
	return rd.Schema(), nil
}

// fakeDatabricksOver is a fake Databricks warehouse whose tables are
// duck's: it answers a column check's SELECT * FROM … LIMIT 0 with the
// table's schema, or TABLE_OR_VIEW_NOT_FOUND.
func fakeDatabricksOver(t *testing.T, duck executor.Warehouse) executor.Warehouse {
	srv := dbxfake.New(t)
	srv.Answer = func(q string) dbxfake.Result {
		var parts []string
		for _, m := range backquoted.FindAllStringSubmatch(q, -1) {
			parts = append(parts, m[1])
		}
		sc, err := describeDuck(duck, parts)
		if err != nil {
			return dbxfake.Result{Error: &dbxfake.Error{Code: "BAD_REQUEST", Message: "[TABLE_OR_VIEW_NOT_FOUND] The table or view `" + strings.Join(parts, "`.`") + "` cannot be found."}}
		}
		return dbxfake.Result{Schema: sc}
	}
	wh, err := openDatabricks(t, srv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}

// fakeBigQueryOver is a fake BigQuery whose tables are duck's: it answers
// INFORMATION_SCHEMA.COLUMNS with their columns, DuckDB's types written as
// BigQuery names them.
func fakeBigQueryOver(t *testing.T, duck executor.Warehouse) executor.Warehouse {
	fake := newBQFake(t)
	table := regexp.MustCompile("`([^`]*)`\\.INFORMATION_SCHEMA\\.COLUMNS WHERE table_name = '([^']*)'")
	bqType := map[string]string{"utf8": "STRING", "int64": "INT64", "int32": "INT64", "float64": "FLOAT64", "bool": "BOOL",
		"date32": "DATE", "binary": "BYTES"}
	fake.Answer = func(q string) bqfake.Result {
		m := table.FindStringSubmatch(q)
		if m == nil {
			t.Errorf("query %q", q)
			return bqfake.Result{Error: &bqfake.Error{Code: 400, Reason: "invalidQuery", Message: "unexpected"}}
		}
		var rows [][2]string
		if sc, err := describeDuck(duck, []string{m[1], m[2]}); err == nil {
			for _, f := range sc.Fields() {
				typ := bqType[f.Type.String()]
				if strings.HasPrefix(f.Type.String(), "timestamp") {
					typ = "TIMESTAMP"
				} else if d, ok := f.Type.(*arrow.Decimal128Type); ok {
					typ = "NUMERIC(" + strconv.Itoa(int(d.Precision)) + ", " + strconv.Itoa(int(d.Scale)) + ")"
				}
				rows = append(rows, [2]string{f.Name, typ})
			}
		}
		return strings2("column_name", "data_type", rows)
	}
	wh, err := openBigQuery(t, fake, nil)
	if err != nil {
		t.Fatal(err)
	}
	return wh
}
