package metrics

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/buildinfo"
	"github.com/linkaud/linkaud/sinks"
)

func TestHooks(t *testing.T) {
	m := New()
	aud := &dsl.Audience{Name: "gold"}
	hook := &dsl.Destination{Name: "hook"}
	acts := []*dsl.Activation{
		{Name: "entered", Audience: aud, Destination: hook, Event: dsl.AudienceEntered},
		{Name: "added", Audience: aud, Destination: hook, Event: dsl.EntityAdded},
		{Name: "idle", Audience: aud, Destination: hook, Event: dsl.AudienceExited},
	}
	m.OnQueue(1, 0)
	m.OnQueue(2, 3)
	m.OnQueue(1, 0)
	m.OnCycleStarted("gold", 0)
	m.OnCycleStarted("gold", 250*time.Millisecond)
	res := &diff.CycleResult{
		Audience: "gold", Query: time.Second, Diff: 100 * time.Millisecond,
		Counts:      diff.Counts{RowsRead: 10, Members: 4, Rows: 7, Oversize: 1},
		Activations: map[string]int64{"entered": 4, "added": 7},
	}
	m.OnCycleDone(engine.CycleReport{Audience: aud, Activations: acts, Result: res, Took: 2 * time.Second})
	m.OnCycleDone(engine.CycleReport{Audience: aud, Activations: acts, Err: errors.New("warehouse down"), Took: time.Second})
	m.OnDelivered("hook", []diff.Message{{Event: "Audience Entered"}, {Event: "Entity Added"}, {Event: "Entity Added"}})
	m.OnRetried("hook", nil, 1, time.Second, errors.New("503"))
	m.OnThrottled("hook", nil, time.Second)
	m.OnDeadLettered("hook", make([]diff.Message, 2), "400")
	m.OnDropped("hook", diff.Message{}, 40000)
	m.OnDeliverPass("hook", sinks.Stats{}, errors.New("retries exhausted"), time.Second)
	m.OnReload(true)
	m.OnReload(false)

	want := `
# HELP linkaud_cycles_total Compute cycles run by the worker, by audience and result (ok, failed).
# TYPE linkaud_cycles_total counter
linkaud_cycles_total{audience="gold",result="failed"} 1
linkaud_cycles_total{audience="gold",result="ok"} 1
# HELP linkaud_cycles_running Compute cycles running now.
# TYPE linkaud_cycles_running gauge
linkaud_cycles_running 1
# HELP linkaud_cycles_running_peak The most compute cycles that ran at once since the worker started.
# TYPE linkaud_cycles_running_peak gauge
linkaud_cycles_running_peak 2
# HELP linkaud_cycles_queued Due runs waiting for a free slot.
# TYPE linkaud_cycles_queued gauge
linkaud_cycles_queued 0
# HELP linkaud_cycles_delayed_total Runs that had to wait in the queue because every slot was busy.
# TYPE linkaud_cycles_delayed_total counter
linkaud_cycles_delayed_total 1
# HELP linkaud_audience_members Profiles in the audience's current generation.
# TYPE linkaud_audience_members gauge
linkaud_audience_members{audience="gold"} 4
# HELP linkaud_events_emitted_total Events written to the outbox by cycles, by destination and event.
# TYPE linkaud_events_emitted_total counter
linkaud_events_emitted_total{destination="hook",event="Audience Entered"} 4
linkaud_events_emitted_total{destination="hook",event="Entity Added"} 7
# HELP linkaud_events_delivered_total Events acknowledged by their destination, by destination and event.
# TYPE linkaud_events_delivered_total counter
linkaud_events_delivered_total{destination="hook",event="Audience Entered"} 1
linkaud_events_delivered_total{destination="hook",event="Entity Added"} 2
# HELP linkaud_delivery_errors_total Delivery errors by destination and kind: retried (a failed send retried), throttled (the destination asked to slow down), failed (a pass that stopped with messages left), halted (a pass stopped by a halted destination).
# TYPE linkaud_delivery_errors_total counter
linkaud_delivery_errors_total{destination="hook",kind="failed"} 1
linkaud_delivery_errors_total{destination="hook",kind="retried"} 1
linkaud_delivery_errors_total{destination="hook",kind="throttled"} 1
# HELP linkaud_events_dead_lettered_total Events a destination rejected permanently, moved to the dead-letter store.
# TYPE linkaud_events_dead_lettered_total counter
linkaud_events_dead_lettered_total{destination="hook"} 2
# HELP linkaud_events_dropped_total Events dropped at delivery for their size.
# TYPE linkaud_events_dropped_total counter
linkaud_events_dropped_total{destination="hook"} 1
# HELP linkaud_events_oversize_total Events over the size cap, not written to the outbox, by audience.
# TYPE linkaud_events_oversize_total counter
linkaud_events_oversize_total{audience="gold"} 1
# HELP linkaud_reloads_total Workspace reloads, by result (ok, rejected).
# TYPE linkaud_reloads_total counter
linkaud_reloads_total{result="ok"} 1
linkaud_reloads_total{result="rejected"} 1
`
	names := []string{
		"linkaud_cycles_total", "linkaud_cycles_running", "linkaud_cycles_running_peak", "linkaud_cycles_queued",
		"linkaud_cycles_delayed_total", "linkaud_audience_members", "linkaud_events_emitted_total",
		"linkaud_events_delivered_total", "linkaud_delivery_errors_total", "linkaud_events_dead_lettered_total",
		"linkaud_events_dropped_total", "linkaud_events_oversize_total", "linkaud_reloads_total",
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	for _, name := range names {
		i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == name })
		if i < 0 {
			t.Fatalf("no %s", name)
		}
		if _, err := expfmt.MetricFamilyToText(&got, mfs[i]); err != nil {
			t.Fatal(err)
		}
	}
	if strings.TrimSpace(got.String()) != strings.TrimSpace(want) {
		t.Fatalf("metrics:\n%s\nwant:\n%s", got.String(), want)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "linkaud_cycle_step_duration_seconds" })
	if i < 0 || len(mfs[i].GetMetric()) != 3 {
		t.Fatalf("step duration series: want query, diff and total of gold")
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "linkaud_") {
			t.Errorf("lint: %s: %s", p.Metric, p.Text)
		}
	}
}

// linkaud_build_info is 1 with the build's facts as labels, so a dashboard
// can show which version each worker runs.
func TestBuildInfo(t *testing.T) {
	mfs, err := New().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(mfs, func(mf *dto.MetricFamily) bool { return mf.GetName() == "linkaud_build_info" })
	if i < 0 || len(mfs[i].GetMetric()) != 1 {
		t.Fatal("want one linkaud_build_info series")
	}
	s := mfs[i].GetMetric()[0]
	labels := map[string]string{}
	for _, l := range s.GetLabel() {
		labels[l.GetName()] = l.GetValue()
	}
	bi := buildinfo.Get()
	want := map[string]string{"version": bi.Version, "revision": bi.Commit, "build_time": bi.BuildTime, "goversion": bi.Go, "duckdb_version": bi.DuckDB}
	for k, v := range want {
		if labels[k] != v || v == "" {
			t.Errorf("label %s = %q, want %q", k, labels[k], v)
		}
	}
	if s.GetGauge().GetValue() != 1 {
		t.Errorf("value %v, want 1", s.GetGauge().GetValue())
	}
}

// TestSeriesPerAudience bounds what an audience costs in /metrics: at
// 1,000 audiences every series counts.
func TestSeriesPerAudience(t *testing.T) {
	m := New()
	const n = 100
	for i := range n {
		aud := &dsl.Audience{Name: "a" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26))}
		m.OnCycleDone(engine.CycleReport{Audience: aud, Took: time.Second, Result: &diff.CycleResult{
			Audience: aud.Name, Query: time.Second, Diff: time.Millisecond, Counts: diff.Counts{Members: 3, Rows: 5},
		}})
		m.OnCycleDone(engine.CycleReport{Audience: aud, Took: time.Second, Err: errors.New("down")})
	}
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, mf := range mfs {
		for _, s := range mf.GetMetric() {
			for _, l := range s.GetLabel() {
				if l.GetName() == "audience" {
					per[l.GetValue()]++
				}
			}
		}
	}
	if len(per) != n {
		t.Fatalf("%d audiences in /metrics, want %d", len(per), n)
	}
	const most = 10
	for aud, c := range per {
		if c > most {
			t.Errorf("audience %s costs %d series, want at most %d", aud, c, most)
		}
	}
	var text bytes.Buffer
	for _, mf := range mfs {
		if _, err := expfmt.MetricFamilyToText(&text, mf); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("%d series per audience; /metrics is %d bytes at %d audiences", per["aaa"], text.Len(), n)
}
