package diff_test

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// cycleSize runs one cycle of aud (a path of one step, account) with
// members u0…u(n-1), each holding account a<i>.
func cycleSize(t *testing.T, s *diff.Store, aud *dsl.Audience, n int, start time.Time) *diff.CycleResult {
	t.Helper()
	l := diff.LayoutOf(aud)
	var rows [][]any
	for i := range n {
		id := fmt.Sprintf("u%07d", i)
		rows = append(rows, []any{id, "a" + id})
	}
	rr := buildReader(t, l, nil, rows, 1000)
	defer rr.Release()
	res, err := s.Cycle(t.Context(), diff.CycleInput{Audience: aud, Layout: l, Rows: rr, Start: start})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func accountsAudience(name string) *dsl.Audience {
	return &dsl.Audience{Name: name, Version: "v1", Primary: &dsl.Path{Steps: []*dsl.Step{
		{Entity: &dsl.Entity{Name: "account", Key: "id"}, Level: 2},
	}}}
}

// TestHistoryEveryRun: the size history has a point per run beyond the
// 50 run records, survives a reopen, and Purge deletes it.
func TestHistoryEveryRun(t *testing.T) {
	s := quietStore(t, diff.Options{HistoryRuns: 5})
	aud := accountsAudience("grow")
	if err := s.Enable("grow"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		cycleSize(t, s, aud, 10+i, t0.Add(time.Duration(i)*time.Minute))
	}
	runs, err := s.Runs("grow")
	if err != nil {
		t.Fatal(err)
	}
	pts, err := s.History("grow")
	if err != nil {
		t.Fatal(err)
	}
	if len(runs) != 5 || len(pts) != 12 {
		t.Fatalf("%d run records (want 5), %d history points (want 12)", len(runs), len(pts))
	}
	for i, p := range pts {
		want := diff.HistoryPoint{Run: uint64(i + 1), Start: t0.Add(time.Duration(i) * time.Minute), Members: int64(10 + i), Entered: 1, OK: true, Runs: 1}
		if i == 0 {
			want.Entered = 10
		}
		if p != want {
			t.Errorf("point %d: %+v, want %+v", i, p, want)
		}
	}
	if err := s.Disable("grow"); err != nil {
		t.Fatal(err)
	}
	if err := s.Purge("grow"); err != nil {
		t.Fatal(err)
	}
	if pts, err := s.History("grow"); err != nil || len(pts) != 0 {
		t.Fatalf("after purge: %d points, %v", len(pts), err)
	}
}

// TestHistoryBounded: a year of runs every ten minutes stays within
// HistoryMaxPoints points and their byte bound; the newest
// HistoryFullRuns are one per run, older ones one per day with the day's
// changes summed.
func TestHistoryBounded(t *testing.T) {
	var pts []diff.HistoryPoint
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	const runs = 365 * 24 * 6
	var entered int64
	for i := range runs {
		p := diff.HistoryPoint{Run: uint64(i + 1), Start: t0.Add(time.Duration(i) * 10 * time.Minute),
			Members: 1_000_000 + int64(i), Entered: 3, Exited: 2, OK: true, Runs: 1}
		entered += p.Entered
		pts = diff.AppendHistory(pts, p)
	}
	if len(pts) > diff.HistoryMaxPoints {
		t.Fatalf("%d points, over %d", len(pts), diff.HistoryMaxPoints)
	}
	enc := diff.EncodeHistory(pts)
	if max := diff.HistoryMaxPoints * 57; len(enc) > max {
		t.Fatalf("%d bytes, over %d", len(enc), max)
	}
	recent := pts[len(pts)-diff.HistoryFullRuns:]
	for i, p := range recent {
		if p.Runs != 1 || p.Run != uint64(runs-diff.HistoryFullRuns+i+1) {
			t.Fatalf("recent point %d: %+v", i, p)
		}
	}
	older := pts[:len(pts)-diff.HistoryFullRuns]
	for i, p := range older[1:] {
		if p.Runs != 144 || p.Entered != 3*144 {
			// Whole days of 144 runs (the first kept day may be cut).
			if i+2 < len(older) {
				t.Fatalf("older point %d: %+v, want a day of 144 runs", i+1, p)
			}
		}
		if p.Start.Hour() != 23 || p.Start.Minute() != 50 {
			if i+2 < len(older) {
				t.Fatalf("older point %d starts %s, want the day's last run", i+1, p.Start)
			}
		}
	}
	dec, err := diff.DecodeHistory(enc)
	if err != nil || len(dec) != len(pts) || dec[len(dec)-1] != pts[len(pts)-1] {
		t.Fatalf("round trip: %d points, %v", len(dec), err)
	}
	t.Logf("a year of 10-minute runs: %d points, %d bytes (%d days at daily resolution)", len(pts), len(enc), len(older))
	// A value cut inside its last point is refused, not half read.
	if _, err := diff.DecodeHistory(enc[:len(enc)-1]); err == nil {
		t.Error("a truncated history decoded without an error")
	}
}

// TestDriftAlert: a run whose size changes past the threshold is marked,
// and the notify destination's outbox gets one alert event; a run within
// it is not, and the first run (from nothing) never fires a percentage.
func TestDriftAlert(t *testing.T) {
	s := quietStore(t, diff.Options{})
	aud := accountsAudience("drift")
	ops := &dsl.Destination{Name: "ops", Type: "webhook"}
	aud.Alerts = []*dsl.Alert{{Metric: dsl.AlertSizeChange, Op: ">", Threshold: 20, Percent: true, Notify: ops}}
	if err := s.Enable("drift"); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, n := range []int{100, 110, 150} {
		res := cycleSize(t, s, aud, n, t0.Add(time.Duration(i)*time.Hour))
		if fired := len(res.Alerts) > 0; fired != (i == 2) {
			t.Fatalf("run %d (%d members): alerts %+v", i+1, n, res.Alerts)
		}
	}
	runs, err := s.Runs("drift")
	if err != nil {
		t.Fatal(err)
	}
	want := diff.FiredAlert{Alert: "size_change > 20%", Value: 40 * 100 / 110.0, Before: 110, After: 150, Notify: "ops"}
	if len(runs[0].Alerts) != 1 || runs[0].Alerts[0] != want || len(runs[1].Alerts) != 0 {
		t.Fatalf("run records' alerts: %+v / %+v, want %+v", runs[0].Alerts, runs[1].Alerts, want)
	}
	pts, _ := s.History("drift")
	if pts[2].Alerts != 1 || pts[1].Alerts != 0 {
		t.Fatalf("history alerts: %+v", pts)
	}
	msgs, err := s.Pending("ops", 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 1 || msgs[0].Event != diff.AlertEvent {
		t.Fatalf("ops outbox: %+v", msgs)
	}
	var p struct {
		Type, Event, MessageID string
		Properties             map[string]any
	}
	if err := json.Unmarshal(msgs[0].Payload, &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != "track" || p.Properties["audience_key"] != "drift" || p.Properties["members_before"] != 110.0 ||
		p.Properties["members_after"] != 150.0 || p.Properties["alert"] != "size_change > 20%" || p.MessageID != msgs[0].ID {
		t.Fatalf("alert payload: %s", msgs[0].Payload)
	}
}

// TestMembersPage: pages follow each other without gap or repeat, a
// prefix narrows them, and a member's rows come with it.
func TestMembersPage(t *testing.T) {
	s := quietStore(t, diff.Options{})
	aud := accountsAudience("paged")
	if err := s.Enable("paged"); err != nil {
		t.Fatal(err)
	}
	cycleSize(t, s, aud, 2500, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	var all []diff.Member
	after := ""
	for pages := 0; ; pages++ {
		page, more, err := s.MembersPage("paged", "", after, 100)
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, page...)
		if !more {
			if pages != 24 {
				t.Fatalf("%d pages, want 25", pages+1)
			}
			break
		}
		after = page[len(page)-1].Profile
	}
	if len(all) != 2500 {
		t.Fatalf("%d members paged, want 2500", len(all))
	}
	for i, m := range all {
		id := fmt.Sprintf("u%07d", i)
		if m.Profile != id || len(m.Chains) != 1 || *m.Chains[0][0] != "a"+id {
			t.Fatalf("member %d: %+v", i, m)
		}
	}
	page, more, err := s.MembersPage("paged", "u000012", "", 100)
	if err != nil || more || len(page) != 10 || page[0].Profile != "u0000120" {
		t.Fatalf("prefix u000012: %d members, more %v, %v", len(page), more, err)
	}
	page, _, err = s.MembersPage("paged", "u000012", "u0000125", 100)
	if err != nil || len(page) != 4 || page[0].Profile != "u0000126" {
		t.Fatalf("prefix u000012 after u0000125: %+v, %v", page, err)
	}
}
