package executor_test

import (
	"bufio"
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	duckdb "github.com/duckdb/duckdb-go/v2"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/gen"
)

// benchProfiles sizes the generated data: 200k profiles give a join of
// about 2.4M rows. LINKAUD_BENCH_PROFILES overrides it.
func benchProfiles() int {
	if v, err := strconv.Atoi(os.Getenv("LINKAUD_BENCH_PROFILES")); err == nil && v > 0 {
		return v
	}
	return 200000
}

// The shape of an audience result: profile key, the keys of three levels,
// an enrichment column; sorted as the differ needs (and, for comparison,
// unsorted, where nothing has to be held back).
const joinSQL = `
	SELECT a.email AS profile_key, a.id AS key_0, c.id AS key_1, t.id AS key_2, t.amount AS enrich_0
	FROM "BANK"."ACCOUNTS" a
	JOIN "BANK"."CREDIT_CARDS" c ON a.id = c.account_id
	JOIN "BANK"."TRANSACTIONS" t ON t.card_id = c.id
	WHERE t.amount > 5`

// BenchmarkStreamJoin streams a large join result three ways in one run:
// through executor's DuckDB reader (reading every cell as text, as the
// differ does), through database/sql row scanning, and through duckdb-go's
// own Arrow reader (which materialises the result first). It reports
// rows/s and the process's peak RSS during each run (Linux: reset through
// /proc/self/clear_refs). DuckDB keeps memory between runs, so the RSS
// figures mean most with one sub-benchmark per process:
//
//	go test -c -tags duckdb_arrow -o x.test ./executor
//	./x.test -test.run '^$' -test.bench 'StreamJoin/^sorted$/executor-arrow' -test.benchtime 1x
func BenchmarkStreamJoin(b *testing.B) {
	dir := b.TempDir()
	start := time.Now()
	res, err := gen.Generate(context.Background(), gen.Options{Profiles: benchProfiles(), Out: dir, Seed: 1,
		Anchor: time.Date(2026, 11, 28, 0, 0, 0, 0, time.UTC)})
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("generated %d profiles in %s", benchProfiles(), time.Since(start))
	var loads []*dsl.TableFile
	var views []string
	for _, t := range res.Tables {
		if !strings.HasPrefix(t.Name, "BANK.") {
			continue
		}
		file := filepath.Join(dir, t.File)
		loads = append(loads, &dsl.TableFile{Table: strings.Split(t.Name, "."), File: file})
		views = append(views, fmt.Sprintf(`CREATE OR REPLACE VIEW "BANK"."%s" AS SELECT * FROM read_parquet('%s')`,
			strings.TrimPrefix(t.Name, "BANK."), file))
	}
	wh, err := executor.Open(context.Background(), &dsl.Warehouse{Type: "duckdb", Loads: loads}, executor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer wh.Close()

	connector, err := duckdb.NewConnector("", nil)
	if err != nil {
		b.Fatal(err)
	}
	db := sql.OpenDB(connector)
	defer db.Close()
	db.SetMaxOpenConns(1)
	if _, err := db.Exec(`CREATE SCHEMA "BANK"`); err != nil {
		b.Fatal(err)
	}
	for _, v := range views {
		if _, err := db.Exec(v); err != nil {
			b.Fatal(err)
		}
	}

	for _, order := range []struct{ name, sql string }{
		{"unsorted", joinSQL},
		{"sorted", joinSQL + " ORDER BY profile_key, key_0, key_1, key_2"},
	} {
		b.Run(order.name+"/executor-arrow", func(b *testing.B) {
			measure(b, func() int64 { return readExecutor(b, wh, order.sql) })
		})
		b.Run(order.name+"/database-sql", func(b *testing.B) {
			measure(b, func() int64 { return readSQL(b, db, order.sql) })
		})
		b.Run(order.name+"/duckdb-go-arrow", func(b *testing.B) {
			measure(b, func() int64 { return readDuckDBGoArrow(b, db, order.sql) })
		})
	}
}

func measure(b *testing.B, read func() int64) {
	runtime.GC()
	debug.FreeOSMemory()
	resetPeakRSS()
	before := peakRSS()
	b.ResetTimer()
	var rows int64
	for i := 0; i < b.N; i++ {
		rows += read()
	}
	b.StopTimer()
	b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(rows)/float64(b.N), "rows/op")
	if p := peakRSS(); p > 0 {
		b.ReportMetric(float64(p)/(1<<20), "peak-RSS-MB")
		b.ReportMetric(float64(p-before)/(1<<20), "peak-growth-MB")
	}
}

func readExecutor(b *testing.B, wh executor.Warehouse, query string) int64 {
	rr, err := wh.Query(context.Background(), query, executor.QueryOptions{Tag: "bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	var n int64
	var buf []byte
	cells := make([]executor.Cells, len(rr.Schema().Fields()))
	for rr.Next() {
		rec := rr.RecordBatch()
		for j := range cells {
			if cells[j], err = executor.NewCells(rec.Column(j)); err != nil {
				b.Fatal(err)
			}
		}
		for i := 0; i < int(rec.NumRows()); i++ {
			for _, c := range cells {
				buf, _ = c.AppendText(buf[:0], i)
			}
		}
		n += rec.NumRows()
	}
	if err := rr.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func readSQL(b *testing.B, db *sql.DB, query string) int64 {
	rows, err := db.Query(query)
	if err != nil {
		b.Fatal(err)
	}
	defer rows.Close()
	var n int64
	var pk sql.NullString
	var k0, k1, k2 string
	var amount any
	for rows.Next() {
		if err := rows.Scan(&pk, &k0, &k1, &k2, &amount); err != nil {
			b.Fatal(err)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		b.Fatal(err)
	}
	return n
}

func readDuckDBGoArrow(b *testing.B, db *sql.DB, query string) int64 {
	conn, err := db.Conn(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	var n int64
	err = conn.Raw(func(dc any) error {
		ar, err := duckdb.NewArrowFromConn(dc.(driver.Conn))
		if err != nil {
			return err
		}
		rr, err := ar.QueryContext(context.Background(), query)
		if err != nil {
			return err
		}
		defer rr.Release()
		var buf []byte
		cells := make([]executor.Cells, len(rr.Schema().Fields()))
		for rr.Next() {
			rec := rr.RecordBatch()
			for j := range cells {
				if cells[j], err = executor.NewCells(rec.Column(j)); err != nil {
					return err
				}
			}
			for i := 0; i < int(rec.NumRows()); i++ {
				for _, c := range cells {
					buf, _ = c.AppendText(buf[:0], i)
				}
			}
			n += rec.NumRows()
		}
		return rr.Err()
	})
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// resetPeakRSS resets the kernel's high-water mark of this process's RSS
// ("5" to clear_refs, Linux 4.0+); elsewhere it does nothing.
func resetPeakRSS() {
	os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
}

// peakRSS is VmHWM in bytes, or 0 where /proc is missing.
func peakRSS() int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// BenchmarkStreamRange reads 8M generated rows (no sort, no files): the
// case where a streaming reader holds one batch and a materialising one
// the whole result. Run one sub-benchmark per process for the RSS figures.
func BenchmarkStreamRange(b *testing.B) {
	const q = `SELECT i AS key_0, 'profile-' || i AS profile_key, md5(i::VARCHAR) AS enrich_0 FROM range(8000000) t(i)`
	b.Run("executor-arrow", func(b *testing.B) {
		wh, err := executor.Open(context.Background(), &dsl.Warehouse{Type: "duckdb"}, executor.Options{})
		if err != nil {
			b.Fatal(err)
		}
		defer wh.Close()
		measure(b, func() int64 { return readExecutor(b, wh, q) })
	})
	b.Run("duckdb-go-arrow", func(b *testing.B) {
		connector, err := duckdb.NewConnector("", nil)
		if err != nil {
			b.Fatal(err)
		}
		db := sql.OpenDB(connector)
		defer db.Close()
		measure(b, func() int64 { return readDuckDBGoArrow(b, db, q) })
	})
}
