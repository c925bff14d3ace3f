package executor

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
)

// The warehouse file is attached only while statements run or a Hold is
// taken, read-only: between cycles another process — here a second DuckDB
// instance, which DuckDB locks out exactly as it would another process —
// can write it, and the next cycle reads what it wrote.
func TestDuckDBFileSharedBetweenCycles(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bank.duckdb")
	if err := CreateDuckDBFile(path); err != nil {
		t.Fatal(err)
	}
	etl := func(stmt string) error {
		w, err := Open(context.Background(), &dsl.Warehouse{Type: "duckdb", Path: path, Settings: map[string]string{"access_mode": "read_write"}}, Options{MaxConns: 1})
		if err != nil {
			return err
		}
		defer w.Close()
		rr, err := w.Query(context.Background(), stmt, QueryOptions{})
		if err != nil {
			return err
		}
		for rr.Next() {
		}
		err = rr.Err()
		rr.Release()
		return err
	}
	if err := etl("CREATE TABLE t AS SELECT 1 AS x"); err != nil {
		t.Fatal(err)
	}
	d := openDuck(t, &dsl.Warehouse{Type: "duckdb", Path: path}, Options{})
	if got := query(t, d, "SELECT count(*) FROM t"); got[0][0] != "1" {
		t.Fatalf("got %v", got)
	}
	// Between cycles: the ETL job writes.
	if err := etl("INSERT INTO t VALUES (2)"); err != nil {
		t.Fatalf("writing the file between cycles: %v", err)
	}
	// During a cycle (a Hold) the file is attached read-only. (DuckDB's
	// file lock is an fcntl lock, per process: a second instance in this
	// process is not locked out, another process is.)
	release, err := d.Hold(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := query(t, d, "SELECT count(*) FROM t"); got[0][0] != "2" {
		t.Fatalf("the cycle does not see the ETL job's row: %v", got)
	}
	if _, err := d.Query(context.Background(), "INSERT INTO t VALUES (4)", QueryOptions{}); err == nil || !strings.Contains(strings.ToLower(err.Error()), "read-only") {
		t.Fatalf("a write through the warehouse: %v, want a read-only refusal", err)
	}
	release()
	if err := etl("INSERT INTO t VALUES (5)"); err != nil {
		t.Fatalf("after the cycle: %v", err)
	}
	if got := query(t, d, "SELECT count(*) FROM t"); got[0][0] != "3" {
		t.Fatalf("got %v", got)
	}
}

// A warehouse path naming no file is an error naming the path, never an
// empty warehouse created in its place.
func TestDuckDBMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bnak.duckdb")
	_, err := Open(context.Background(), &dsl.Warehouse{Type: "duckdb", Path: path}, Options{})
	if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("err = %v", err)
	}
	if _, serr := filepath.Glob(path + "*"); serr != nil {
		t.Fatal(serr)
	}
	if m, _ := filepath.Glob(path + "*"); len(m) != 0 {
		t.Fatalf("files created: %v", m)
	}
}
