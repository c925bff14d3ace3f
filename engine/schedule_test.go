package engine

import (
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

func TestNextRun(t *testing.T) {
	at := func(s string) time.Time {
		tm, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return tm
	}
	var never time.Time
	for _, tc := range []struct {
		name       string
		s          dsl.Schedule
		last, now  time.Time
		want       time.Time
		wantManual bool
	}{
		{"every, never ran: now", dsl.Schedule{Kind: dsl.ScheduleEvery, Every: time.Hour}, never, at("2026-11-29T10:17:00Z"), at("2026-11-29T10:17:00Z"), false},
		{"every, from last start", dsl.Schedule{Kind: dsl.ScheduleEvery, Every: time.Hour}, at("2026-11-29T10:00:00Z"), at("2026-11-29T10:17:00Z"), at("2026-11-29T11:00:00Z"), false},
		{"every, missed while down: once now", dsl.Schedule{Kind: dsl.ScheduleEvery, Every: 15 * time.Minute}, at("2026-11-29T01:00:00Z"), at("2026-11-29T10:17:00Z"), at("2026-11-29T10:17:00Z"), false},
		{"daily, later today", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "18:30"}, never, at("2026-11-29T10:17:00Z"), at("2026-11-29T18:30:00Z"), false},
		{"daily, passed today: tomorrow", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "09:00"}, never, at("2026-11-29T10:17:00Z"), at("2026-11-30T09:00:00Z"), false},
		{"daily, after last run", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "09:00"}, at("2026-11-29T09:00:00Z"), at("2026-11-29T09:00:05Z"), at("2026-11-30T09:00:00Z"), false},
		{"daily, missed: now", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "09:00"}, at("2026-11-27T09:00:00Z"), at("2026-11-29T10:17:00Z"), at("2026-11-29T10:17:00Z"), false},
		{"cron, mondays 9:00", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * MON"}, never, at("2026-11-29T10:17:00Z"), at("2026-11-30T09:00:00Z"), false},
		{"cron, every 5 minutes", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "*/5 * * * *"}, at("2026-11-29T10:15:00Z"), at("2026-11-29T10:17:00Z"), at("2026-11-29T10:20:00Z"), false},
		{"manual", dsl.Schedule{Kind: dsl.ScheduleManual}, never, at("2026-11-29T10:17:00Z"), time.Time{}, true},
	} {
		got, ok, err := NextRun(tc.s, tc.last, tc.now)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if ok == tc.wantManual || !got.Equal(tc.want) {
			t.Errorf("%s: NextRun = %v, %v; want %v", tc.name, got, ok, tc.want)
		}
	}
}
