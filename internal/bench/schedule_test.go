package bench_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/internal/bench"
)

// TestRunScheduleSmall schedules 20 generated audiences on the worker over
// 2,000 profiles, both rounds, and checks that the figures agree with each
// other and with the state; it asserts no duration.
func TestRunScheduleSmall(t *testing.T) {
	const n = 20
	res, err := bench.RunSchedule(context.Background(), bench.ScheduleOptions{Audiences: n, Profiles: 2000, Dir: t.TempDir(), MaxConcurrent: 2})
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	if err := bench.WriteScheduleTable(&table, res); err != nil {
		t.Fatal(err)
	}
	t.Logf("\n%s", table.String())

	if res.Audiences != n || res.Schedule != "every 15m" || res.MaxConcurrent != 2 || len(res.Rounds) != 2 {
		t.Fatalf("%d audiences %s, max %d, %d rounds: want %d, every 15m, 2, 2 rounds", res.Audiences, res.Schedule, res.MaxConcurrent, len(res.Rounds), n)
	}
	for k, r := range res.Rounds {
		if r.Name != []string{"first", "steady"}[k] {
			t.Errorf("round %d is %q", k+1, r.Name)
		}
		// One cycle per audience per round, each a new generation.
		if r.Cycles != n || r.Failures != 0 {
			t.Errorf("%s: %d cycles, %d failed; want %d, 0", r.Name, r.Cycles, r.Failures, n)
		}
		if r.StateRuns != uint64(n*(k+1)) || r.AtGeneration != n {
			t.Errorf("%s: the state records %d runs and %d audiences at generation %d; want %d and %d", r.Name, r.StateRuns, r.AtGeneration, k+1, n*(k+1), n)
		}
		if r.MetSchedule+r.MissedSchedule != n {
			t.Errorf("%s: %d met and %d missed the schedule, of %d audiences", r.Name, r.MetSchedule, r.MissedSchedule, n)
		}
		if r.MissedSchedule > 0 && r.LatestFinishS <= 15*60 {
			t.Errorf("%s: %d missed the 15-minute schedule, but the latest finished %.1f s after due", r.Name, r.MissedSchedule, r.LatestFinishS)
		}
		if r.Rows == 0 || r.Members == 0 {
			t.Errorf("%s: %d rows, %d members", r.Name, r.Rows, r.Members)
		}
		// The served exposition and the registry agree; each audience
		// has the same series (every audience ran and none failed).
		m := r.Metrics
		if m.Bytes == 0 || m.Series == 0 || m.Samples != m.Series {
			t.Errorf("%s: /metrics %d bytes, %d sample lines, the registry %d series", r.Name, m.Bytes, m.Samples, m.Series)
		}
		if m.AudienceSeries == 0 || m.AudienceSeries%n != 0 || m.PerAudience != float64(m.AudienceSeries/n) {
			t.Errorf("%s: %d series with an audience label (%.2f per audience) over %d audiences", r.Name, m.AudienceSeries, m.PerAudience, n)
		}
		if r.WallS <= 0 || r.CyclesPerMin <= 0 || r.PeakRSSMB <= 0 || r.GoHeapPeakMB <= 0 || r.StateBytes <= 0 || r.StateTablesBytes < 0 {
			t.Errorf("%s: wall %v s, %v cycles/min, RSS %v MB, heap %v MB, state %d B (%d in sstables): a figure was not measured",
				r.Name, r.WallS, r.CyclesPerMin, r.PeakRSSMB, r.GoHeapPeakMB, r.StateBytes, r.StateTablesBytes)
		}
		if r.SchedulerOverhead < 0 || r.SchedulerOverhead > 1 || r.SlotUtilization <= 0 || r.SlotUtilization > 1 || r.CPUUtilization <= 0 {
			t.Errorf("%s: scheduler overhead %v, slot utilization %v, CPU utilization %v", r.Name, r.SchedulerOverhead, r.SlotUtilization, r.CPUUtilization)
		}
		if s := r.StartDelayS; s.Median > s.P99 || s.P99 > s.Max || r.CycleS.Median > r.CycleS.Max {
			t.Errorf("%s: start delay %+v, cycle %+v: not ordered", r.Name, s, r.CycleS)
		}
	}
	first, steady := res.Rounds[0], res.Rounds[1]
	// The steady round recomputes the same data: the same results, and no
	// events (the generated audiences have no activations anyway).
	if steady.Rows != first.Rows || steady.Members != first.Members || steady.Events != 0 {
		t.Errorf("steady round: %d rows, %d members, %d events; the first had %d rows, %d members", steady.Rows, steady.Members, steady.Events, first.Rows, first.Members)
	}
	// In the first round every audience is due at once: at most
	// max_concurrent start without waiting.
	if first.StartDelayS.Max <= 0 {
		t.Errorf("first round: no run waited for a slot, with %d due at once and 2 slots", n)
	}

	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var keys struct {
		Rounds []map[string]any `json:"rounds"`
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"cycles", "failures", "wall_s", "cycles_per_min", "start_delay_s", "idle_slot_s", "scheduler_overhead",
		"met_schedule", "missed_schedule", "peak_rss_mb", "go_heap_peak_mb", "state_bytes", "metrics"} {
		if _, ok := keys.Rounds[0][k]; !ok {
			t.Errorf("--json lacks rounds[].%s", k)
		}
	}
}
