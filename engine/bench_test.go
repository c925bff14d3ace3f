package engine

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/internal/gen"
)

// BenchmarkCompute runs compute cycles end to end — refresh the Parquet
// views, plan, query DuckDB, stream Arrow, merge against Pebble on disk,
// commit — on a generated workspace, and reports result rows per second
// of wall time. "first" diffs against an empty state (every row is
// written, send_current events for all); "nochange" recomputes an
// unchanged audience (reads only). LINKAUD_BENCH_PROFILES sets the size
// (default 20000 profiles).
func BenchmarkCompute(b *testing.B) {
	profiles := 20000
	if v := os.Getenv("LINKAUD_BENCH_PROFILES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			b.Fatalf("LINKAUD_BENCH_PROFILES=%q", v)
		}
		profiles = n
	}
	dir := b.TempDir()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if _, err := gen.Generate(context.Background(), gen.Options{Profiles: profiles, Out: dir, Seed: 1,
		Anchor: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), Logger: quiet}); err != nil {
		b.Fatal(err)
	}
	// An audience with many rows besides gen's three, and an activation
	// so that the first cycle writes events too.
	if err := os.WriteFile(dir+"/bench.la", []byte(`
audience card_transactions { match profile -> account -> credit_card -> transaction }
destination audit { type file path "events.jsonl" }
activation tx_in { audience card_transactions destination audit event audience_entered send_current true }
`), 0o644); err != nil {
		b.Fatal(err)
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		b.Fatal(diags)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { now = now.Add(time.Minute); return now }
	for _, name := range []string{"card_transactions", "outstanding_balance"} {
		a := ws.Audience(name)
		b.Run(name+"/first", func(b *testing.B) {
			var rows int64
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				ws := *ws
				ws.StateDir = fmt.Sprintf("%s/state-%s-%d", dir, name, i)
				e, err := Open(context.Background(), &ws, Options{Logger: quiet, Now: clock})
				if err != nil {
					b.Fatal(err)
				}
				if err := e.Store().Enable(name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				res, err := e.Compute(context.Background(), a)
				if err != nil {
					b.Fatal(err)
				}
				rows += res.RowsRead
				b.StopTimer()
				e.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
		b.Run(name+"/nochange", func(b *testing.B) {
			ws := *ws
			ws.StateDir = fmt.Sprintf("%s/state-%s-nochange", dir, name)
			e, err := Open(context.Background(), &ws, Options{Logger: quiet, Now: clock})
			if err != nil {
				b.Fatal(err)
			}
			defer e.Close()
			if err := e.Store().Enable(name); err != nil {
				b.Fatal(err)
			}
			if _, err := e.Compute(context.Background(), a); err != nil {
				b.Fatal(err)
			}
			var rows, written int64
			for b.Loop() {
				res, err := e.Compute(context.Background(), a)
				if err != nil {
					b.Fatal(err)
				}
				if res.Events != 0 {
					b.Fatalf("an unchanged audience emitted %d events", res.Events)
				}
				rows += res.RowsRead
				written += res.BytesWritten
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
			b.ReportMetric(float64(written)/float64(b.N), "bytes-written/op")
		})
	}
}
