package engine

import (
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/linkaud/linkaud/dsl"
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// NextRun returns when an audience on schedule s runs next, given that its
// last run started at last (zero: never ran) and it is now now. A manual
// schedule never runs on its own: ok is false.
//
// An `every` audience that never ran is due now; afterwards it runs every
// interval measured from the last start, and a run missed while the worker
// was down is made up once, immediately, not once per missed interval.
// `daily at` and `cron` schedules are wall-clock times in UTC: the first
// occurrence after the last run, or after now when it never ran; one missed
// while the worker was down is likewise made up once, immediately.
func NextRun(s dsl.Schedule, last, now time.Time) (next time.Time, ok bool, err error) {
	now = now.UTC()
	switch s.Kind {
	case dsl.ScheduleManual:
		return time.Time{}, false, nil
	case dsl.ScheduleEvery:
		if last.IsZero() {
			return now, true, nil
		}
		next = last.UTC().Add(s.Every)
		if next.Before(now) {
			next = now
		}
		return next, true, nil
	case dsl.ScheduleDaily:
		var h, m int
		if _, err := fmt.Sscanf(s.DailyAt, "%d:%d", &h, &m); err != nil {
			return time.Time{}, false, fmt.Errorf("engine: daily at %q: %w", s.DailyAt, err)
		}
		from := now
		if !last.IsZero() {
			from = last.UTC()
		}
		next = time.Date(from.Year(), from.Month(), from.Day(), h, m, 0, 0, time.UTC)
		if !next.After(from) {
			next = next.AddDate(0, 0, 1)
		}
		if next.Before(now) {
			next = now // missed while down: run once now
		}
		return next, true, nil
	case dsl.ScheduleCron:
		sched, err := cronParser.Parse(s.Cron)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("engine: cron %q: %w", s.Cron, err)
		}
		from := now
		if !last.IsZero() {
			from = last.UTC()
		}
		next = sched.Next(from)
		if next.Before(now) {
			next = now
		}
		return next, true, nil
	}
	return time.Time{}, false, fmt.Errorf("engine: unknown schedule kind %d", s.Kind)
}
