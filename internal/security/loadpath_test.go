package security

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/grammar"
	"github.com/linkaud/linkaud/planner"
)

// asFileName reports whether v can be the name of a file here, and so be
// tried as a `load` path: no '/', not "." or "..", within NAME_MAX. Glob
// characters are left out: DuckDB expands a load path as a glob by design
// (a literal '[' or '*' in a file name is not addressable).
func asFileName(v string) bool {
	return v != "" && v != "." && v != ".." && !strings.ContainsAny(v, "/*?[") && len(v)+len(".csv") <= 255
}

// TestLoadPathInjection loads, for each hostile value, a CSV file whose
// name is that value through `load "S.P" from "data/<value>.csv"`, on the
// embedded DuckDB through the executor: the view must read exactly that
// file, its definition must be one statement, and nothing else in the
// database may change. It also puts every value in the table-name
// position of `load`.
func TestLoadPathInjection(t *testing.T) {
	parser := newDuckParser(t)
	ctx := context.Background()
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	var files []string
	for i, v := range hostile {
		if !asFileName(v) {
			continue
		}
		files = append(files, v)
		body := fmt.Sprintf("pk,note\np%d,mark%d\n", i, i)
		if err := os.WriteFile(filepath.Join(data, v+".csv"), []byte(body), 0o644); err != nil {
			t.Fatalf("%q: %v", short(v), err)
		}
	}
	const graph = `graph { profile { table "S.P" key pk } }` + "\n"
	cases := 0
	for i, v := range hostile {
		if !asFileName(v) {
			continue
		}
		cases++
		src := fmt.Sprintf("warehouse { load \"S.P\" from %s }\n%saudience a { match trait note = \"mark%d\" }\n",
			grammar.Quote("data/"+v+".csv"), graph, i)
		got, viewSQL, err := loadAndQuery(ctx, t, dir, src, "S.P")
		if err != nil {
			t.Errorf("%q: %v", short(v), err)
			continue
		}
		if want := [][]string{{fmt.Sprintf("p%d", i), fmt.Sprintf("mark%d", i)}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("%q: the view reads %q, want %q", short(v), got, want)
		}
		if n, err := parser.statements(viewSQL); err != nil || n != 1 {
			t.Errorf("%q: view definition is %d statements (%v): %s", short(v), n, err, viewSQL)
		}
		sc, err := scanSQL(viewSQL, false)
		if err != nil {
			t.Errorf("%q: view definition: %v: %s", short(v), err, viewSQL)
		} else if want := filepath.Join(data, v+".csv"); !slices.Contains(sc.strings, want) {
			t.Errorf("%q: no literal of the view definition is the path %q: %s", short(v), want, viewSQL)
		}
	}

	// The table-name position of load.
	if err := os.WriteFile(filepath.Join(data, "p.csv"), []byte("pk,note\np1,beta\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, v := range append(slices.Clone(tableNames), hostile...) {
		cases++
		src := fmt.Sprintf("warehouse { load %s from \"data/p.csv\" }\ngraph { profile { table %s key pk } }\naudience a { match trait note = \"beta\" }\n",
			grammar.Quote(v), grammar.Quote(v))
		got, _, err := loadAndQuery(ctx, t, dir, src, v)
		if !isTableRef(v) {
			if err == nil || !strings.Contains(err.Error(), "check:") {
				t.Errorf("table %q: accepted, want refused by the checker (%v)", short(v), err)
			}
			continue
		}
		if err != nil {
			t.Errorf("table %q: %v", short(v), err)
			continue
		}
		if want := [][]string{{"p1", "beta"}}; !slices.EqualFunc(got, want, slices.Equal) {
			t.Errorf("table %q: reads %q, want %q", short(v), got, want)
		}
	}
	t.Logf("load injection: %d cases (%d file names of %d hostile values; the rest hold '/' or glob characters or are too long for a file name; %d table names)",
		cases, len(files), len(hostile), len(tableNames)+len(hostile))
}

// loadAndQuery checks the workspace src in dir, opens its warehouse with
// the executor (which creates the load views), runs the audience's plan
// and a SELECT of the table, and returns the table's rows (pk, note), the
// view's definition as DuckDB stores it, or an error prefixed "check:" when
// the checker refused the workspace.
func loadAndQuery(ctx context.Context, t *testing.T, dir, src, table string) ([][]string, string, error) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, "ws.la"), []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		return nil, "", fmt.Errorf("check: %v", diags)
	}
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		return nil, "", err
	}
	defer wh.Close()
	if err := executor.Refresh(ctx, wh); err != nil {
		return nil, "", err
	}
	plan, err := planner.Compile(ws.Audience("a"), ws.Graph, planner.DuckDB, planner.Options{Now: injectionNow})
	if err != nil {
		return nil, "", err
	}
	members, err := query(ctx, wh, plan.SQL)
	if err != nil {
		return nil, "", fmt.Errorf("plan: %w", err)
	}
	parts := strings.Split(table, ".")
	rows, err := query(ctx, wh, "SELECT pk, note FROM "+sqlIdents(parts))
	if err != nil {
		return nil, "", err
	}
	if len(members) != 1 || len(rows) != 1 || members[0][0] != rows[0][0] {
		return nil, "", fmt.Errorf("members %q over rows %q", members, rows)
	}
	schema := "main"
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	def, err := query(ctx, wh, "SELECT sql FROM duckdb_views() WHERE schema_name = "+sqlString(schema)+" AND view_name = "+sqlString(parts[len(parts)-1]))
	if err != nil || len(def) != 1 {
		return nil, "", fmt.Errorf("view definition: %q, %v", def, err)
	}
	return rows, strings.TrimSuffix(def[0][0], ";"), nil
}

func sqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

// query runs sql through the executor and returns its rows as text.
func query(ctx context.Context, wh executor.Warehouse, sql string) ([][]string, error) {
	r, err := wh.Query(ctx, sql, executor.QueryOptions{})
	if err != nil {
		return nil, err
	}
	defer r.Release()
	var out [][]string
	for r.Next() {
		rec := r.RecordBatch()
		for i := 0; i < int(rec.NumRows()); i++ {
			row := make([]string, rec.NumCols())
			for j := range row {
				// ValueStr may alias the batch's buffers, reused after Release.
				row[j] = strings.Clone(rec.Column(j).ValueStr(i))
			}
			out = append(out, row)
		}
	}
	return out, r.Err()
}
