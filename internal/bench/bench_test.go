package bench_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/internal/bench"
)

// TestRunSmall runs every phase on a small data set and checks that the
// phases agree with each other; it reports the figures but asserts no
// duration (the machine is shared).
func TestRunSmall(t *testing.T) {
	dir := t.TempDir()
	res, err := bench.Run(context.Background(), bench.Options{Profiles: 3000, Dir: dir, Mutate: 2, Repeat: 2})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := bench.WriteTable(&table, res); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	if res.Rows == 0 || res.Members == 0 || res.Events == 0 {
		t.Fatalf("first cycle: %d rows, %d members, %d events", res.Rows, res.Members, res.Events)
	}
	var queryRows int64
	for _, a := range res.PerAudience {
		queryRows += a.Rows
	}
	if queryRows != res.Rows {
		t.Errorf("the bare queries returned %d rows, the cycles read %d", queryRows, res.Rows)
	}
	for name, v := range map[string]float64{
		"query_s": res.QueryS, "cycle_s": res.CycleS, "nochange_cycle_s": res.NochangeCycleS,
		"mutate_cycle_s": res.MutateCycleS, "mutate_query_s": res.MutateQueryS, "except_baseline_s": res.ExceptBaselineS,
		"nochange_over_query": res.NochangeOverQuery, "mutate_over_query": res.MutateOverQuery,
		"diff_rows_per_s": res.DiffRowsPerS, "kafka_events_per_s": res.KafkaEventsPerS,
		"kafka_over_raw": res.KafkaOverRaw, "peak_rss_mb": res.PeakRSSMB,
	} {
		if v <= 0 {
			t.Errorf("%s = %v: the phase did not run", name, v)
		}
	}
	// A no-change cycle writes its run record and little else; a mutation
	// cycle writes what changed.
	if res.NochangeBytesWritten <= 0 || res.NochangeBytesWrittenRatio >= 1 {
		t.Errorf("no-change cycle wrote %d bytes, %.3f of the state", res.NochangeBytesWritten, res.NochangeBytesWrittenRatio)
	}
	if res.MutateRowsChanged == 0 || res.ExceptRows == 0 {
		t.Errorf("a %g%% mutation changed %d rows for the differ and %d for the EXCEPT baseline", res.MutatePercent, res.MutateRowsChanged, res.ExceptRows)
	}
	// The first cycle writes every row and event: more than a no-change
	// cycle, at least a byte per event.
	if res.CycleBytesWritten <= res.NochangeBytesWritten || res.CycleBytesWritten < res.Events {
		t.Errorf("first cycle wrote %d bytes for %d events (no-change cycle: %d)", res.CycleBytesWritten, res.Events, res.NochangeBytesWritten)
	}
	if res.MutateBytesWritten <= res.NochangeBytesWritten {
		t.Errorf("mutation cycle wrote %d bytes, no more than the no-change cycle's %d", res.MutateBytesWritten, res.NochangeBytesWritten)
	}
	// Kafka gets the first cycle's outbox, all of it (Run checks the
	// outbox is empty after).
	if res.KafkaEvents != res.Events {
		t.Errorf("kafka delivered %d events, the first cycle wrote %d", res.KafkaEvents, res.Events)
	}
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"profiles", "query_s", "cycle_s", "cycle_over_query", "cycle_bytes_written", "except_baseline_s", "cycle_over_except",
		"nochange_cycle_s", "nochange_bytes_written_ratio", "diff_rows_per_s", "kafka_events_per_s", "kafka_over_raw", "peak_rss_mb"} {
		if _, ok := keys[k]; !ok {
			t.Errorf("--json lacks %q", k)
		}
	}
}
