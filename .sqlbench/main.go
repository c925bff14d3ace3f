// sqlbench runs the old (correlated) and new (decorrelated) plans of the
// bench audiences alternately on one DuckDB over the bench's parquet files,
// reading every row, and reports wall and CPU seconds per run.
package main

import (
	"database/sql"
	"fmt"
	"os"
	"sort"
	"syscall"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
)

func cpu() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func main() {
	data := "/work/benchdata/data-1000000-seed1/data/"
	db, err := sql.Open("duckdb", "")
	if err != nil {
		panic(err)
	}
	db.SetMaxOpenConns(1)
	for _, s := range []string{"ANALYTICS", "BANK", "HOME"} {
		must(db.Exec("CREATE SCHEMA " + s))
	}
	views := map[string]string{"ANALYTICS.PROFILES": "profiles", "BANK.ACCOUNTS": "accounts", "BANK.CREDIT_CARDS": "credit_cards",
		"BANK.SUBSCRIPTIONS": "subscriptions", "BANK.TRANSACTIONS": "transactions", "HOME.HOUSEHOLDS": "households", "HOME.PETS": "pets",
		"HOME.HOUSEHOLD_PETS": "household_pets", "ANALYTICS.AUDIENCE_MEMBERSHIPS": "audience_memberships", "ANALYTICS.TRACKS": "tracks"}
	for v, f := range views {
		var sch, tb string
		fmt.Sscanf(v, "%s", &sch)
		for i := range v {
			if v[i] == '.' {
				sch, tb = v[:i], v[i+1:]
			}
		}
		must(db.Exec(fmt.Sprintf(`CREATE VIEW "%s"."%s" AS SELECT * FROM read_parquet('%s%s.parquet')`, sch, tb, data, f)))
	}
	reps := 5
	res := map[string][]float64{}
	cpus := map[string][]float64{}
	for r := 0; r < reps; r++ {
		for _, a := range []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users"} {
			for _, v := range []string{"old", "new"} {
				if r%2 == 1 { // alternate which goes first
					v = map[string]string{"old": "new", "new": "old"}[v]
				}
				q, err := os.ReadFile(fmt.Sprintf("/work/benchruns2/sql/%s-%s.sql", v, a))
				if err != nil {
					panic(err)
				}
				c0, t0 := cpu(), time.Now()
				rows, err := db.Query(string(q))
				if err != nil {
					panic(fmt.Sprint(v, a, err))
				}
				cols, _ := rows.Columns()
				vals := make([]any, len(cols))
				ptrs := make([]any, len(cols))
				for i := range vals {
					ptrs[i] = &vals[i]
				}
				n := 0
				for rows.Next() {
					rows.Scan(ptrs...)
					n++
				}
				if err := rows.Err(); err != nil {
					panic(err)
				}
				rows.Close()
				wall, cp := time.Since(t0).Seconds(), (cpu() - c0).Seconds()
				k := v + " " + a
				res[k] = append(res[k], wall)
				cpus[k] = append(cpus[k], cp)
				fmt.Printf("rep %d %-3s %-20s rows=%d wall=%.2fs cpu=%.2fs\n", r, v, a, n, wall, cp)
			}
		}
	}
	keys := []string{}
	for k := range res {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Printf("median %-28s wall=%.2fs cpu=%.2fs\n", k, med(res[k]), med(cpus[k]))
	}
}

func med(x []float64) float64 { s := append([]float64(nil), x...); sort.Float64s(s); return s[len(s)/2] }

func must(_ sql.Result, err error) {
	if err != nil {
		panic(err)
	}
}
