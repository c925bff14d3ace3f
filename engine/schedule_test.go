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
		// 2026-11-29 is a Sunday.
		{"cron, 7 is Sunday", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * 7"}, never, at("2026-11-28T10:17:00Z"), at("2026-11-29T09:00:00Z"), false},
		{"cron, 5-7 is Friday to Sunday", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * 5-7"}, at("2026-11-28T09:00:00Z"), at("2026-11-28T09:00:01Z"), at("2026-11-29T09:00:00Z"), false},
		{"cron, names", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 1 DEC MON-FRI"}, never, at("2026-11-29T10:17:00Z"), at("2026-12-01T09:00:00Z"), false},
		{"cron, 29 February", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 0 29 2 *"}, never, at("2026-11-29T10:17:00Z"), at("2028-02-29T00:00:00Z"), false},
		// Europe/Paris is UTC+1 in winter, UTC+2 in summer.
		{"cron in a zone, winter", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * MON", Zone: "Europe/Paris"}, never, at("2026-11-29T10:17:00Z"), at("2026-11-30T08:00:00Z"), false},
		{"cron in a zone, summer", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * MON", Zone: "Europe/Paris"}, never, at("2026-06-28T10:17:00Z"), at("2026-06-29T07:00:00Z"), false},
		{"daily in a zone", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "09:00", Zone: "America/New_York"}, at("2026-11-29T14:00:00Z"), at("2026-11-29T14:00:01Z"), at("2026-11-30T14:00:00Z"), false},
		// The spring-forward gap: 02:30 does not exist on 2026-03-29 in
		// Paris; the run comes at the instant the clock jumps to.
		{"daily in a zone, across spring forward", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "02:30", Zone: "Europe/Paris"}, at("2026-03-28T01:30:00Z"), at("2026-03-28T01:30:01Z"), at("2026-03-29T01:30:00Z"), false},
		// One due time, one run: the next is strictly after the last start,
		// even when the last start is the due time itself.
		{"cron, last start on the due time", dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * *"}, at("2026-11-29T09:00:00Z"), at("2026-11-29T09:00:00Z"), at("2026-11-30T09:00:00Z"), false},
		{"daily, last start on the due time", dsl.Schedule{Kind: dsl.ScheduleDaily, DailyAt: "09:00"}, at("2026-11-29T09:00:00Z"), at("2026-11-29T09:00:00Z"), at("2026-11-30T09:00:00Z"), false},
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

// A schedule with no next occurrence is an error, never "now": the worker
// would otherwise run the audience in a loop.
func TestNextRunNever(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 17, 0, 0, time.UTC)
	for _, s := range []dsl.Schedule{
		{Kind: dsl.ScheduleCron, Cron: "0 0 31 2 *"},
		{Kind: dsl.ScheduleCron, Cron: "0 0 30 2 *"},
		{Kind: dsl.ScheduleCron, Cron: "TZ=Europe/Paris 0 9 * * *"},
		{Kind: dsl.ScheduleCron, Cron: "0 9 * * *", Zone: "Nowhere/Land"},
		{Kind: dsl.ScheduleEvery},
	} {
		next, ok, err := NextRun(s, time.Time{}, now)
		if err == nil {
			t.Errorf("%+v: NextRun = %v, %v; want an error", s, next, ok)
		}
	}
}
