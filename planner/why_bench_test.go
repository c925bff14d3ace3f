package planner_test

import (
	"context"
	"testing"
	"time"

	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
	"github.com/linkaud/linkaud/planner/why"
)

// BenchmarkWhy measures `linkaud why` for one profile (a member and a
// non-member) of each audience on the generated workspace
// (LINKAUD_BENCH_PROFILES, default 100000; 1000000 for the issue's
// figure), against a preview of the whole audience on the same warehouse:
// it reports both times and their ratio.
func BenchmarkWhy(b *testing.B) {
	ws := benchWorkspace(b)
	ctx := context.Background()
	w, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	keys, err := pgColumn(ctx, w, `SELECT CAST(segment_id AS VARCHAR) FROM "ANALYTICS"."PROFILES" LIMIT 1000`)
	if err != nil {
		b.Fatal(err)
	}
	for _, a := range ws.Audiences {
		plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: now})
		if err != nil {
			b.Fatal(err)
		}
		began := time.Now()
		res, err := preview.Run(ctx, w, plan)
		if err != nil {
			b.Fatal(err)
		}
		previewTime := time.Since(began)
		member := map[string]bool{}
		for _, r := range res.Rows {
			member[r.ProfileKey] = true
		}
		pick := map[string]string{}
		for _, k := range keys {
			kind := "non-member"
			if member[k] {
				kind = "member"
			}
			if pick[kind] == "" {
				pick[kind] = k
			}
		}
		for _, kind := range []string{"member", "non-member"} {
			key := pick[kind]
			if key == "" {
				continue
			}
			b.Run(a.Name+"/"+kind, func(b *testing.B) {
				start := time.Now()
				for b.Loop() {
					wp, err := planner.CompileWhy(a, ws.Graph, planner.DuckDB, key, planner.Options{Now: now, Limit: 10})
					if err != nil {
						b.Fatal(err)
					}
					r, err := why.Run(ctx, w, wp)
					if err != nil {
						b.Fatal(err)
					}
					if r.Member != (kind == "member") {
						b.Fatalf("why %s: member %v", key, r.Member)
					}
				}
				per := time.Since(start) / time.Duration(b.N)
				b.ReportMetric(float64(per.Microseconds())/1000, "why-ms")
				b.ReportMetric(float64(previewTime.Microseconds())/1000, "preview-ms")
				b.ReportMetric(float64(per)/float64(previewTime), "why/preview")
			})
		}
	}
}
