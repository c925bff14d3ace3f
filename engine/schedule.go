package engine

import (
	"fmt"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// NextRun returns when an audience on schedule s runs next, given that its
// last run started at last (zero: never ran) and it is now now. A manual
// schedule never runs on its own: ok is false.
//
// An `every` audience that never ran is due now; afterwards it runs every
// interval measured from the last start, and a run missed while the worker
// was down is made up once, immediately, not once per missed interval.
// `daily at` and `cron` schedules are wall-clock times in their zone (UTC
// by default): the first occurrence after the last run, or after now when
// it never ran; one missed while the worker was down is likewise made up
// once, immediately. The next occurrence is always strictly after last, so
// one due time never gets two runs; a schedule with no next occurrence is
// an error, never a run now.
func NextRun(s dsl.Schedule, last, now time.Time) (next time.Time, ok bool, err error) {
	now = now.UTC()
	switch s.Kind {
	case dsl.ScheduleManual:
		return time.Time{}, false, nil
	case dsl.ScheduleEvery:
		if s.Every <= 0 {
			return time.Time{}, false, fmt.Errorf("engine: every %s", s.Every)
		}
		if last.IsZero() {
			return now, true, nil
		}
		next = last.UTC().Add(s.Every)
		if next.Before(now) {
			next = now
		}
		return next, true, nil
	case dsl.ScheduleDaily:
		loc, err := dsl.LoadZone(s.Zone)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("engine: %w", err)
		}
		var h, m int
		if _, err := fmt.Sscanf(s.DailyAt, "%d:%d", &h, &m); err != nil {
			return time.Time{}, false, fmt.Errorf("engine: daily at %q: %w", s.DailyAt, err)
		}
		from := now
		if !last.IsZero() {
			from = last.UTC()
		}
		lf := from.In(loc)
		next = time.Date(lf.Year(), lf.Month(), lf.Day(), h, m, 0, 0, loc)
		for !next.After(from) {
			lf = lf.AddDate(0, 0, 1)
			next = time.Date(lf.Year(), lf.Month(), lf.Day(), h, m, 0, 0, loc)
		}
		next = next.UTC()
		if next.Before(now) {
			next = now // missed while down: run once now
		}
		return next, true, nil
	case dsl.ScheduleCron:
		loc, err := dsl.LoadZone(s.Zone)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("engine: %w", err)
		}
		sched, err := dsl.ParseCron(s.Cron, loc)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("engine: cron %q: %w", s.Cron, err)
		}
		from := now
		if !last.IsZero() {
			from = last.UTC()
		}
		next = sched.Next(from)
		if next.IsZero() {
			return time.Time{}, false, fmt.Errorf("engine: cron %q has no occurrence after %s", s.Cron, from.Format(time.RFC3339))
		}
		next = next.UTC()
		if next.Before(now) {
			next = now
		}
		return next, true, nil
	}
	return time.Time{}, false, fmt.Errorf("engine: unknown schedule kind %d", s.Kind)
}
