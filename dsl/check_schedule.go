package dsl

import (
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/linkaud/linkaud/grammar"
)

var dailyRE = regexp.MustCompile(`^([01][0-9]|2[0-3]):[0-5][0-9]$`)

// MinEvery and MaxEvery bound `schedule every`. Segment offers 15m to 1d;
// shorter intervals are allowed for development and tests.
const (
	MinEvery = time.Second
	MaxEvery = 24 * time.Hour
)

func (c *checker) schedule(s *grammar.Schedule) Schedule {
	sc := c.scheduleKind(s)
	if s.Zone == nil {
		return sc
	}
	if sc.Kind != ScheduleDaily && sc.Kind != ScheduleCron {
		c.errorf(s.Zone, "a time zone applies to daily at and cron schedules only")
		return sc
	}
	if _, err := LoadZone(s.Zone.Value()); err != nil {
		c.errorf(s.Zone, "%v", err)
		return sc
	}
	sc.Zone = s.Zone.Value()
	if sc.Kind == ScheduleCron {
		loc, _ := LoadZone(sc.Zone)
		if _, err := ParseCron(sc.Cron, loc); err != nil {
			c.errorf(s.Cron, "cron %q: %v", sc.Cron, err)
		}
	}
	return sc
}

func (c *checker) scheduleKind(s *grammar.Schedule) Schedule {
	switch {
	case s.Manual:
		return Schedule{Kind: ScheduleManual}
	case s.Every != nil:
		if s.Every.Duration == "" {
			c.errorf(s.Every, "every takes a duration, e.g. every 1h")
			return DefaultSchedule
		}
		d, err := parseDuration(s.Every.Duration)
		if err != nil {
			c.errorf(s.Every, "%v", err)
			return DefaultSchedule
		}
		if d < MinEvery || d > MaxEvery {
			c.errorf(s.Every, "schedule every %s is out of range: from 1s to 1d (Segment offers 15m to 1d)", s.Every.Duration)
			return DefaultSchedule
		}
		return Schedule{Kind: ScheduleEvery, Every: d}
	case s.Daily != nil:
		v := s.Daily.Value()
		if !dailyRE.MatchString(v) {
			c.errorf(s.Daily, "daily at takes a time as \"HH:MM\", e.g. \"09:00\" (UTC, or the zone after it: daily at \"09:00\" in \"Europe/Paris\")")
			return DefaultSchedule
		}
		return Schedule{Kind: ScheduleDaily, DailyAt: v}
	case s.Cron != nil:
		v := s.Cron.Value()
		if s.Zone == nil {
			if _, err := ParseCron(v, nil); err != nil {
				c.errorf(s.Cron, "cron %q: %v", v, err)
				return DefaultSchedule
			}
		}
		return Schedule{Kind: ScheduleCron, Cron: v}
	}
	return DefaultSchedule
}

// parseDuration reads the language's durations: a whole number and one of
// s, m, h, d, w.
func parseDuration(s string) (time.Duration, error) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	n, err := strconv.ParseInt(s[:i], 10, 64)
	if err != nil || i == 0 {
		return 0, fmt.Errorf("invalid duration %q", s)
	}
	units := map[string]time.Duration{"s": time.Second, "m": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "w": 7 * 24 * time.Hour}
	u, ok := units[s[i:]]
	if !ok {
		return 0, fmt.Errorf("invalid duration %q: the unit is s, m, h, d or w", s)
	}
	if n > int64(365*24*time.Hour/u) {
		return 0, fmt.Errorf("duration %q is longer than a year", s)
	}
	return time.Duration(n) * u, nil
}
