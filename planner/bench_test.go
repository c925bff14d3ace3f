package planner_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/gen"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/preview"
)

// extraAudiences are planned and previewed over the generated workspace
// besides the seed's three: having, at most, exactly 0, or, dynamic
// references, performed.
const extraAudiences = `
audience big_spenders {
  match profile -> account -> credit_card -> transaction having sum(amount) > 2000
     or (trait ltv >= 5000 and not in audience churned)
  enrich trait.plan
}

audience few_cards_no_cats {
  match profile -> account where max_limit > 10000 -> at most 1 credit_card where (credit_limit < account.max_limit and balance != "Paid")
    and profile -> household -> exactly 0 pet where type = "cat"
    and not performed "Signed In" within 7 days
  enrich account.type, credit_card.balance
}
`

// BenchmarkCompile measures planning time per audience (both dialects).
func BenchmarkCompile(b *testing.B) {
	dir := b.TempDir()
	if _, err := gen.Generate(context.Background(), gen.Options{Profiles: 10, Out: dir, Seed: 1}); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra.la"), []byte(extraAudiences), 0o644); err != nil {
		b.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	now := time.Now()
	for _, a := range ws.Audiences {
		for _, d := range []planner.Dialect{planner.DuckDB, planner.Snowflake} {
			b.Run(a.Name+"/"+d.Name(), func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := planner.Compile(a, ws.Graph, d, planner.Options{Now: now}); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

// benchProfiles is the size of the generated workspace BenchmarkPreview
// runs on: LINKAUD_BENCH_PROFILES, default 100000.
func benchProfiles() int {
	if n, err := strconv.Atoi(os.Getenv("LINKAUD_BENCH_PROFILES")); err == nil && n > 0 {
		return n
	}
	return 100_000
}

// BenchmarkPreview measures preview throughput: the audience's SQL in the
// embedded DuckDB over the generated bank + household Parquet files, every
// row read through Arrow into preview rows. It reports result rows/s,
// profiles of the workspace evaluated per second, and rows and members per
// run.
func BenchmarkPreview(b *testing.B) {
	ws := benchWorkspace(b)
	ctx := context.Background()
	w, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	now := time.Now()
	for _, a := range ws.Audiences {
		b.Run(a.Name, func(b *testing.B) {
			plan, err := planner.Compile(a, ws.Graph, planner.DuckDB, planner.Options{Now: now})
			if err != nil {
				b.Fatal(err)
			}
			rows, members := 0, 0
			start := time.Now()
			for b.Loop() {
				res, err := preview.Run(ctx, w, plan)
				if err != nil {
					b.Fatal(err)
				}
				rows += len(res.Rows)
				members = res.Members
			}
			elapsed := time.Since(start).Seconds()
			b.ReportMetric(float64(rows)/elapsed, "rows/s")
			b.ReportMetric(float64(benchProfiles())*float64(b.N)/elapsed, "profiles/s")
			b.ReportMetric(float64(rows)/float64(b.N), "rows")
			b.ReportMetric(float64(members), "members")
		})
	}
}

// benchWorkspace is the generated workspace of benchProfiles profiles with
// extraAudiences, made once per process.
func benchWorkspace(b *testing.B) *dsl.Workspace {
	benchOnce.Do(func() {
		benchDir, benchErr = os.MkdirTemp("", "linkaud-bench")
		if benchErr == nil {
			_, benchErr = gen.Generate(context.Background(), gen.Options{Profiles: benchProfiles(), Out: benchDir, Seed: 1})
		}
		if benchErr == nil {
			benchErr = os.WriteFile(filepath.Join(benchDir, "extra.la"), []byte(extraAudiences), 0o644)
		}
	})
	if benchErr != nil {
		b.Fatal(benchErr)
	}
	ws, diags := dsl.Load(benchDir, dsl.Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	return ws
}
