package faults

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/pgload"
	"github.com/linkaud/linkaud/internal/pgtest"
	"github.com/linkaud/linkaud/sinks"
)

// TestPostgresServerStoppedMidStream runs the fixture's audience on a
// PostgreSQL server of its own and stops the server (pg_ctl -m immediate,
// as a crash would) while the second cycle's rows stream: the cycle fails
// with the connection's error, the audience is Failed, the state (first
// generation, outbox) is exactly what it was, and once the server is back
// the next cycle gives what a clean run gives. Both generations must equal
// the same fixture's clean run on DuckDB: one workspace, two warehouses,
// the same events byte for byte.
func TestPostgresServerStoppedMidStream(t *testing.T) {
	f := fixture{profiles: 200_000} // a result well over the socket buffers: data the server wrote before it died still arrives
	want1, want2 := cleanRun(t, f, engine.Options{})
	srv := pgtest.StartServer(t)
	dir := f.write(t)
	loadPostgres(t, srv.DSN, f.data(1))
	t.Setenv("FAULT_PG_DSN", srv.DSN)
	writeFiles(t, dir, map[string]string{"ws.la": postgresWorkspace(f)})

	hook := &rowsHook{}
	clk := &clock{}
	e := open(t, load(t, dir), clk, engine.Options{Hooks: []sinks.Hook{hook}})
	defer e.Close()
	mustCompute(t, e, clk, start1)
	if d := diffSnapshots(take(t, e.Store()), want1); d != "" {
		t.Fatalf("generation 1 on PostgreSQL differs from DuckDB's clean run:\n%s", d)
	}

	loadPostgres(t, srv.DSN, f.data(2))
	stopped := false
	hook.arm(func(int64) {
		if !stopped {
			stopped = true
			srv.Stop(t)
		}
	})
	_, err := compute(e, clk, start2)
	hook.arm(nil)
	if !stopped {
		t.Fatal("no rows streamed")
	}
	if err == nil {
		t.Fatal("the cycle survived its server stopping: the result was read in full before the stop")
	}
	checkFailed(t, e.Store(), want1, "postgres")
	t.Logf("server stopped after %d rows: %v", hook.lastRead(), err)

	srv.Start(t)
	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatalf("the cycle after the restart differs from a clean run:\n%s", d)
	}
}

// postgresWorkspace is the fixture's workspace on a PostgreSQL warehouse.
func postgresWorkspace(f fixture) string {
	text := f.workspaceText()
	end := strings.Index(text, "}\n")
	return "warehouse {\n  type postgres\n  dsn env(\"FAULT_PG_DSN\")\n}\n" + text[end+2:]
}

// loadPostgres replaces the fixture's tables on the server with files's
// CSV data, read by DuckDB as the DuckDB workspace reads it.
func loadPostgres(t *testing.T, dsn string, files map[string]string) {
	t.Helper()
	tmp := t.TempDir()
	writeFiles(t, tmp, files)
	duck, err := sql.Open("duckdb", "")
	if err != nil {
		t.Fatal(err)
	}
	defer duck.Close()
	duck.SetMaxOpenConns(1)
	var tables []pgload.Table
	for name, table := range map[string][]string{"profiles": {"ANALYTICS", "PROFILES"}, "accounts": {"BANK", "ACCOUNTS"}, "cards": {"BANK", "CREDIT_CARDS"}} {
		stmts := []string{fmt.Sprintf(`CREATE SCHEMA IF NOT EXISTS "%s"`, table[0]),
			fmt.Sprintf(`CREATE TABLE "%s"."%s" AS SELECT * FROM read_csv('%s')`, table[0], table[1], filepath.Join(tmp, name+".csv"))}
		for _, s := range stmts {
			if _, err := duck.Exec(s); err != nil {
				t.Fatal(err)
			}
		}
		tables = append(tables, pgload.Table{Name: table})
	}
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := pgload.Copy(ctx, duck, c, tables, pgload.Options{}); err != nil {
		t.Fatal(err)
	}
}
