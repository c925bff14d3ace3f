package planner_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/gen"
	"github.com/linkaud/linkaud/internal/pgtest"
	"github.com/linkaud/linkaud/internal/randgen"
	"github.com/linkaud/linkaud/internal/refeval"
	"github.com/linkaud/linkaud/planner"
)

// liveTarget is a warehouse TestLiveWarehouses runs on.
type liveTarget struct {
	kind     string // warehouse type
	dsnEnv   string // the DSN's variable, for the warehouses a DSN names
	need     []string
	settings map[string]string
	// scratch is the setting naming the schema of one-part table names
	// (BigQuery's dataset, Databricks' schema): the test creates one of its
	// own and drops it at the end.
	scratch  string
	cases    int // random cases
	profiles int // size of the generated bank data set
}

// TestLiveWarehouses holds the planner to the reference evaluator on real
// warehouses: random cases (the differential suite's) and the generated
// bank + household workspace (internal/gen) with enough rows that no
// answer can come from table metadata, their tables created from DuckDB's
// copy of the data through INSERT statements written in the warehouse's
// own literals (dialect.String, dialect.Timestamp).
//
// Each target runs when its variables are set:
//
//	SNOWFLAKE_DSN   (SNOWFLAKE_PRIVATE_KEY_PATH for key-pair authentication)
//	REDSHIFT_DSN
//	BIGQUERY_PROJECT and credentials: BIGQUERY_CREDENTIALS_FILE (a key
//	                file) or GOOGLE_APPLICATION_CREDENTIALS; BIGQUERY_LOCATION
//	                optional (default US)
//	DATABRICKS_HOST, DATABRICKS_WAREHOUSE_ID and DATABRICKS_TOKEN;
//	                DATABRICKS_CATALOG optional (default main)
//	LINKAUD_TEST_PG_DSN   the PostgreSQL test server: every CI run, so that
//	                      this harness is itself tested
//
// The warehouse must be a scratch one: the test creates the generator's
// schemas and tables (refusing any that exist already), and drops exactly
// those at the end. On Snowflake it needs CREATE SCHEMA on the DSN's
// database; on Redshift CREATE on the database; on BigQuery
// roles/bigquery.user (datasets, jobs) and roles/bigquery.readSessionUser;
// on Databricks USE CATALOG and CREATE SCHEMA on the catalog and CAN USE
// on the SQL warehouse. BigQuery and Databricks load through INSERT jobs,
// a thousand rows each: the bank data set is smaller there.
func TestLiveWarehouses(t *testing.T) {
	targets := []liveTarget{
		{kind: "snowflake", dsnEnv: "SNOWFLAKE_DSN", settings: map[string]string{"query_tag": "linkaud-live-test"}, cases: 80, profiles: 50_000},
		{kind: "redshift", dsnEnv: "REDSHIFT_DSN", settings: map[string]string{"query_tag": "linkaud-live-test"}, cases: 80, profiles: 50_000},
		{kind: "postgres", dsnEnv: pgtest.EnvDSN, settings: map[string]string{}, cases: 40, profiles: 2000},
		{kind: "bigquery", need: []string{"BIGQUERY_PROJECT"}, scratch: "dataset", cases: 40, profiles: 5000,
			settings: map[string]string{"project": "env:BIGQUERY_PROJECT", "labels": "linkaud=live-test", "location": "US"}},
		{kind: "databricks", need: []string{"DATABRICKS_HOST", "DATABRICKS_WAREHOUSE_ID", "DATABRICKS_TOKEN"}, scratch: "schema", cases: 40, profiles: 10_000,
			settings: map[string]string{"host": "env:DATABRICKS_HOST", "warehouse_id": "env:DATABRICKS_WAREHOUSE_ID", "token": "env:DATABRICKS_TOKEN", "catalog": "main"}},
	}
	if p := os.Getenv("SNOWFLAKE_PRIVATE_KEY_PATH"); p != "" {
		targets[0].settings["private_key_path"] = p
	}
	if p := os.Getenv("BIGQUERY_CREDENTIALS_FILE"); p != "" {
		targets[3].settings["credentials_file"] = p
	} else if os.Getenv("GOOGLE_APPLICATION_CREDENTIALS") == "" {
		targets[3].need = append(targets[3].need, "BIGQUERY_CREDENTIALS_FILE")
	}
	if l := os.Getenv("BIGQUERY_LOCATION"); l != "" {
		targets[3].settings["location"] = l
	}
	if c := os.Getenv("DATABRICKS_CATALOG"); c != "" {
		targets[4].settings["catalog"] = c
	}
	for _, tg := range targets {
		t.Run(tg.kind, func(t *testing.T) {
			for _, v := range append([]string{tg.dsnEnv}, tg.need...) {
				if v != "" && os.Getenv(v) == "" {
					t.Skipf("%s is not set", v)
				}
			}
			dsn := os.Getenv(tg.dsnEnv)
			if tg.kind == "postgres" {
				dsn = pgtest.NewDatabase(t)
			}
			w := &dsl.Warehouse{Type: tg.kind, Settings: tg.settings}
			if tg.dsnEnv != "" {
				w.DSN = dsl.Secret{Env: "LIVE_DSN"}
			}
			open := func() executor.Warehouse {
				wh, err := executor.Open(context.Background(), w, executor.Options{
					LookupEnv: func(n string) (string, bool) {
						if n == "LIVE_DSN" {
							return dsn, true
						}
						return os.LookupEnv(n)
					},
				})
				if err != nil {
					t.Fatal(err)
				}
				return wh
			}
			d, err := planner.ForWarehouse(w)
			if err != nil {
				t.Fatal(err)
			}
			var scratch string
			if tg.scratch != "" {
				// A schema of the test's own for one-part table names.
				scratch = "linkaud_live_" + strconv.FormatInt(time.Now().UnixNano(), 36)
				wh := open()
				lw := &liveWarehouse{t: t, wh: wh, d: d}
				if err := lw.exec(context.Background(), "CREATE SCHEMA "+d.Ident(scratch)+schemaOptions(tg)); err != nil {
					t.Fatal(err)
				}
				wh.Close()
				w.Settings[tg.scratch] = scratch
			}
			wh := open()
			defer wh.Close()
			lw := &liveWarehouse{t: t, wh: wh, d: d, schemaOptions: schemaOptions(tg)}
			if scratch != "" {
				lw.schemas = append(lw.schemas, d.Ident(scratch))
				lw.keep = len(lw.schemas)
			}
			defer func() { lw.keep = 0; lw.dropAll() }()
			t.Run("bank", func(t *testing.T) { lw.bank(t, tg.profiles) })
			t.Run("random", func(t *testing.T) { lw.random(t, tg.cases) })
		})
	}
}

// schemaOptions is what follows CREATE SCHEMA on tg: a BigQuery dataset
// is created in the jobs' location.
func schemaOptions(tg liveTarget) string {
	if tg.kind == "bigquery" {
		return " OPTIONS (location = " + planner.BigQuery.String(tg.settings["location"]) + ")"
	}
	return ""
}

// liveWarehouse creates tables on a live warehouse and remembers them.
type liveWarehouse struct {
	t       *testing.T
	wh      executor.Warehouse
	d       planner.Dialect
	tables  []string // quoted names, to drop
	schemas []string
	// keep is the schemas, first in schemas, that dropAll leaves until the
	// end of the test (the scratch schema).
	keep int
	// schemaOptions follow CREATE SCHEMA (BigQuery: the location).
	schemaOptions string
}

func (lw *liveWarehouse) exec(ctx context.Context, q string) error {
	rd, err := lw.wh.Query(ctx, q, executor.QueryOptions{Tag: "live-test-setup"})
	if err != nil {
		return err
	}
	defer rd.Release()
	for rd.Next() {
	}
	return rd.Err()
}

// dropAll drops what the test created, tables first.
func (lw *liveWarehouse) dropAll() {
	ctx := context.Background()
	for i := len(lw.tables) - 1; i >= 0; i-- {
		if err := lw.exec(ctx, "DROP TABLE IF EXISTS "+lw.tables[i]); err != nil {
			lw.t.Errorf("dropping %s: %v", lw.tables[i], err)
		}
	}
	for _, s := range lw.schemas[lw.keep:] {
		if err := lw.exec(ctx, "DROP SCHEMA IF EXISTS "+s); err != nil {
			lw.t.Errorf("dropping schema %s: %v", s, err)
		}
	}
	lw.tables, lw.schemas = nil, lw.schemas[:lw.keep]
}

// liveType is the warehouse type holding a DuckDB column type's values.
func (lw *liveWarehouse) liveType(duck string) (string, error) {
	t := strings.ToUpper(duck)
	switch lw.d.Name() {
	case "bigquery":
		switch {
		case t == "VARCHAR":
			return "STRING", nil
		case t == "BIGINT" || t == "INTEGER":
			return "INT64", nil
		case t == "DOUBLE":
			return "FLOAT64", nil
		case t == "BOOLEAN":
			return "BOOL", nil
		case t == "DATE" || t == "TIMESTAMP":
			return t, nil
		case strings.HasPrefix(t, "DECIMAL"):
			return strings.Replace(t, "DECIMAL", "NUMERIC", 1), nil
		}
		return "", fmt.Errorf("no BigQuery type for DuckDB's %s", duck)
	case "databricks":
		switch {
		case t == "VARCHAR":
			return "STRING", nil
		case t == "BIGINT" || t == "INTEGER":
			return "BIGINT", nil
		case t == "TIMESTAMP":
			return "TIMESTAMP_NTZ", nil // wall-clock time, as DuckDB's
		case t == "DOUBLE" || t == "BOOLEAN" || t == "DATE" || strings.HasPrefix(t, "DECIMAL"):
			return t, nil
		}
		return "", fmt.Errorf("no Databricks type for DuckDB's %s", duck)
	}
	switch {
	case t == "VARCHAR":
		if lw.d.Name() == "redshift" {
			return "VARCHAR(65535)", nil
		}
		return "VARCHAR", nil
	case t == "BIGINT" || t == "INTEGER":
		return "BIGINT", nil
	case t == "DOUBLE":
		return "DOUBLE PRECISION", nil
	case t == "BOOLEAN":
		return "BOOLEAN", nil
	case t == "DATE":
		return "DATE", nil
	case t == "TIMESTAMP":
		if lw.d.Name() == "snowflake" {
			return "TIMESTAMP_NTZ", nil
		}
		return "TIMESTAMP", nil
	case strings.HasPrefix(t, "DECIMAL"):
		return strings.Replace(t, "DECIMAL", "NUMERIC", 1), nil
	}
	return "", fmt.Errorf("no live type for DuckDB's %s", duck)
}

// literal writes a value DuckDB's driver returned in the dialect.
func (lw *liveWarehouse) literal(v any, duckType string) string {
	switch v := v.(type) {
	case nil:
		return "NULL"
	case string:
		return lw.d.String(v)
	case int64:
		return strconv.FormatInt(v, 10)
	case int32:
		return strconv.FormatInt(int64(v), 10)
	case float64:
		typ := map[string]string{"bigquery": "FLOAT64", "databricks": "DOUBLE"}[lw.d.Name()]
		if typ == "" {
			typ = "DOUBLE PRECISION"
		}
		return "CAST(" + strconv.FormatFloat(v, 'g', -1, 64) + " AS " + typ + ")"
	case bool:
		return strings.ToUpper(strconv.FormatBool(v))
	case time.Time:
		if strings.EqualFold(duckType, "DATE") {
			return "CAST('" + v.UTC().Format(time.DateOnly) + "' AS DATE)"
		}
		return lw.d.Timestamp(v)
	case duckdb.Decimal:
		r := new(big.Rat).SetFrac(v.Value, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(v.Scale)), nil))
		if lw.d.Name() == "bigquery" {
			// A decimal point makes a FLOAT64 literal in GoogleSQL.
			return "NUMERIC '" + r.FloatString(int(v.Scale)) + "'"
		}
		return r.FloatString(int(v.Scale))
	}
	return lw.d.String(fmt.Sprint(v))
}

// copyTables creates each of duck's tables on the warehouse (under the
// dialect's names) and inserts its rows, a thousand per statement.
func (lw *liveWarehouse) copyTables(ctx context.Context, duck *sql.DB, names []dsl.TableName) error {
	for _, n := range names {
		parts := make([]string, len(n))
		for i, p := range n {
			parts[i] = lw.d.Ident(p)
		}
		name := strings.Join(parts, ".")
		if _, err := lw.wh.Columns(ctx, n); !errors.Is(err, executor.ErrTableNotFound) {
			return fmt.Errorf("refusing to replace %s, which exists already (err %v): point the DSN at a scratch database", n, err)
		}
		if len(parts) > 1 {
			schema := strings.Join(parts[:len(parts)-1], ".")
			if lw.exec(ctx, "CREATE SCHEMA "+schema+lw.schemaOptions) == nil {
				lw.schemas = append(lw.schemas, schema)
			}
		}
		duckName := make([]string, len(n))
		for i, p := range n {
			duckName[i] = planner.DuckDB.Ident(p)
		}
		cols, err := describe(duck, strings.Join(duckName, "."))
		if err != nil {
			return err
		}
		defs := make([]string, len(cols))
		for i, c := range cols {
			lt, err := lw.liveType(c[1])
			if err != nil {
				return fmt.Errorf("%s.%s: %w", n, c[0], err)
			}
			defs[i] = lw.d.Ident(c[0]) + " " + lt
		}
		if err := lw.exec(ctx, "CREATE TABLE "+name+" ("+strings.Join(defs, ", ")+")"); err != nil {
			return fmt.Errorf("creating %s: %w", n, err)
		}
		lw.tables = append(lw.tables, name)
		rows, err := duck.Query("SELECT * FROM " + strings.Join(duckName, "."))
		if err != nil {
			return err
		}
		var tuples []string
		flush := func() error {
			if len(tuples) == 0 {
				return nil
			}
			err := lw.exec(ctx, "INSERT INTO "+name+" VALUES "+strings.Join(tuples, ", "))
			tuples = tuples[:0]
			return err
		}
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		for rows.Next() {
			if err := rows.Scan(ptrs...); err != nil {
				rows.Close()
				return err
			}
			lits := make([]string, len(vals))
			for i, v := range vals {
				lits[i] = lw.literal(v, cols[i][1])
			}
			tuples = append(tuples, "("+strings.Join(lits, ", ")+")")
			if len(tuples) == 1000 {
				if err := flush(); err != nil {
					rows.Close()
					return fmt.Errorf("inserting into %s: %w", n, err)
				}
			}
		}
		rows.Close()
		if err := flush(); err != nil {
			return fmt.Errorf("inserting into %s: %w", n, err)
		}
	}
	return nil
}

// describe lists a DuckDB table's columns and types.
func describe(duck *sql.DB, name string) ([][2]string, error) {
	rows, err := duck.Query("SELECT column_name, column_type FROM (DESCRIBE SELECT * FROM " + name + ")")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][2]string
	for rows.Next() {
		var c [2]string
		if err := rows.Scan(&c[0], &c[1]); err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// rows runs plan and renders its rows canonically.
func (lw *liveWarehouse) rows(ctx context.Context, plan *planner.Plan) ([]string, error) {
	e := &pgEngine{dialect: lw.d, wh: lw.wh}
	return e.rows(ctx, plan)
}

// bank runs the generated workspace's audiences on a data set of n
// profiles, against the evaluator over the same rows.
func (lw *liveWarehouse) bank(t *testing.T, n int) {
	ctx := context.Background()
	dir := t.TempDir()
	anchor := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	if _, err := gen.Generate(ctx, gen.Options{Profiles: n, Out: dir, Seed: 11, Anchor: anchor}); err != nil {
		t.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	duck := openDB(t)
	defer duck.Close()
	var names []dsl.TableName
	for _, l := range ws.Warehouse.Loads {
		mustExec(t, duck, "CREATE SCHEMA IF NOT EXISTS "+planner.DuckDB.Ident(l.Table[0]))
		mustExec(t, duck, "CREATE TABLE "+planner.DuckDB.Ident(l.Table[0])+"."+planner.DuckDB.Ident(l.Table[1])+" AS SELECT * FROM read_parquet("+planner.DuckDB.String(l.File)+")")
		names = append(names, l.Table)
	}
	if err := lw.copyTables(ctx, duck, names); err != nil {
		t.Fatal(err)
	}
	ref, err := readTables(duck, ws.Graph)
	if err != nil {
		t.Fatal(err)
	}
	now := anchor.Add(-time.Hour)
	for _, a := range ws.Audiences {
		plan, err := planner.Compile(a, ws.Graph, lw.d, planner.Options{Now: now})
		if err != nil {
			t.Fatal(err)
		}
		got, err := lw.rows(ctx, plan)
		if err != nil {
			t.Fatalf("%s: %v", a.Name, err)
		}
		want, err := refeval.Evaluate(a, ws.Graph, ref, now)
		if err != nil {
			t.Fatal(err)
		}
		w := canonicalWant(want)
		if strings.Join(got, "\n") != strings.Join(w, "\n") {
			t.Errorf("%s: %d rows on %s, %d from the evaluator", a.Name, len(got), lw.d.Name(), len(w))
		}
		t.Logf("%s: %d rows, %d members", a.Name, len(got), len(refeval.Members(want)))
	}
	lw.dropAll()
}

// random runs the differential suite's first cases.
func (lw *liveWarehouse) random(t *testing.T, cases int) {
	ctx := context.Background()
	failures, skipped := 0, 0
	for gi := 0; gi*audiencesPerGraph < cases; gi++ {
		g := randgen.New(uint64(*fuzzSeed)*1_000_003 + uint64(gi))
		gr := g.Graph()
		if foldCollision(gr) {
			// Two tables alike but for case: one table under the
			// warehouse's folding.
			skipped++
			continue
		}
		duck := openDB(t)
		if err := load(duck, gr); err != nil {
			t.Fatal(err)
		}
		var names []dsl.TableName
		for _, tb := range gr.Tables() {
			names = append(names, dsl.TableName(tb.Name))
		}
		if err := lw.copyTables(ctx, duck, names); err != nil {
			t.Fatalf("graph %d: %v", gi, err)
		}
		duck.Close()
		for k := 0; k < audiencesPerGraph && gi*audiencesPerGraph+k < cases; k++ {
			helpers, target := g.Audiences(gr)
			c := &randgen.Case{Graph: gr, Helpers: helpers, Target: target, Now: g.Now(), Limit: g.Limit()}
			ws, err := checkCase(c)
			if err != nil {
				t.Fatal(err)
			}
			if a := ws.Audience("target"); a.Primary != nil {
				var steps []string
				for _, s := range a.Primary.Steps {
					steps = append(steps, s.Entity.Name)
				}
				target.Enrich = g.Enrich(gr, steps)
			}
			e := &pgEngine{dialect: lw.d, wh: lw.wh}
			r := e.runCase(ctx, c)
			if !r.ok() {
				failures++
				t.Errorf("%s case %d: %s\n%s", lw.d.Name(), gi*audiencesPerGraph+k, r.summary(), reproducer(c, r))
				if failures >= 3 {
					t.FailNow()
				}
			}
		}
		lw.dropAll()
	}
	t.Logf("%d random graphs skipped: table names alike but for case", skipped)
}

// foldCollision reports whether two of a graph's tables, or two columns of
// one table, have names that differ only in case.
func foldCollision(gr *randgen.Graph) bool {
	seen := map[string]bool{}
	for _, tb := range gr.Tables() {
		n := strings.ToLower(tb.QName())
		if seen[n] {
			return true
		}
		seen[n] = true
		cols := map[string]bool{}
		for _, c := range tb.Columns {
			if cols[strings.ToLower(c.Name)] {
				return true
			}
			cols[strings.ToLower(c.Name)] = true
		}
	}
	return false
}
