package dsl

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // schedules name IANA zones: do not depend on the host's zoneinfo

	"github.com/robfig/cron/v3"
)

var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// cronHorizon is how far ParseCron looks for a first occurrence: a
// schedule with none in eight years (30 February, 31 April) never fires.
// February 29 fires every four years, so it passes.
const cronHorizon = 8

// ParseCron parses a five-field cron expression as users write it — the
// robfig/cron standard fields and names (MON, JAN), plus 7 for Sunday as
// most crons accept — and checks that it can fire: one whose days never
// occur (30 February) is an error. A "TZ=" or "CRON_TZ=" prefix is refused:
// the time zone goes after the expression, `cron "…" in "Europe/Paris"`;
// loc is that zone (nil: UTC).
func ParseCron(spec string, loc *time.Location) (cron.Schedule, error) {
	spec = strings.TrimSpace(spec)
	if loc == nil {
		loc = time.UTC
	}
	if strings.HasPrefix(spec, "TZ=") || strings.HasPrefix(spec, "CRON_TZ=") {
		zone, _, _ := strings.Cut(strings.SplitN(spec, "=", 2)[1], " ")
		return nil, fmt.Errorf("a time zone goes after the expression, not in it: cron %q in %q", strings.TrimSpace(spec[strings.IndexByte(spec, ' ')+1:]), zone)
	}
	if !strings.HasPrefix(spec, "@") {
		fields := strings.Fields(spec)
		if len(fields) != 5 {
			return nil, fmt.Errorf("a cron expression has five fields (minute hour day-of-month month day-of-week), this one has %d", len(fields))
		}
		dow, err := sundaySeven(fields[4])
		if err != nil {
			return nil, err
		}
		fields[4] = dow
		spec = strings.Join(fields, " ")
	} else if strings.HasPrefix(spec, "@every") {
		return nil, errors.New("@every is not a cron expression here: write schedule every DURATION")
	}
	s, err := cronParser.Parse(spec)
	if err != nil {
		return nil, err
	}
	if ss, ok := s.(*cron.SpecSchedule); ok {
		ss.Location = loc
	}
	from := time.Date(2000, 1, 1, 0, 0, 0, 0, loc)
	for range cronHorizon / 5 * 2 {
		// robfig/cron looks five years ahead at most.
		if next := s.Next(from); !next.IsZero() {
			return s, nil
		}
		from = from.AddDate(4, 0, 0)
	}
	return nil, errors.New("this expression never fires (no such date: a day of the month the month never has)")
}

var dowNames = map[string]int{"SUN": 0, "MON": 1, "TUE": 2, "WED": 3, "THU": 4, "FRI": 5, "SAT": 6}

// sundaySeven rewrites a day-of-week field so that 7 means Sunday, as in
// most crons (robfig/cron takes 0-6): each item naming 7 is expanded into
// the days it covers.
func sundaySeven(field string) (string, error) {
	if !strings.Contains(field, "7") {
		return field, nil
	}
	day := func(s string) (int, error) {
		if n, ok := dowNames[strings.ToUpper(s)]; ok {
			return n, nil
		}
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 7 {
			return 0, fmt.Errorf("day of week %q: 0-7 (0 and 7 are Sunday) or SUN-SAT", s)
		}
		return n, nil
	}
	var out []string
	for item := range strings.SplitSeq(field, ",") {
		if !strings.Contains(item, "7") {
			out = append(out, item)
			continue
		}
		rng, stepText, hasStep := strings.Cut(item, "/")
		step := 1
		if hasStep {
			n, err := strconv.Atoi(stepText)
			if err != nil || n <= 0 {
				return "", fmt.Errorf("day of week step %q", stepText)
			}
			step = n
		}
		lo, hi := 0, 7
		if rng != "*" {
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = day(a); err != nil {
				return "", err
			}
			hi = lo
			if isRange {
				if hi, err = day(b); err != nil {
					return "", err
				}
			} else if hasStep {
				hi = 7
			}
		}
		if lo > hi {
			return "", fmt.Errorf("day of week range %q runs backwards", rng)
		}
		for d := lo; d <= hi; d += step {
			out = append(out, strconv.Itoa(d%7))
		}
	}
	return strings.Join(out, ","), nil
}

// LoadZone loads an IANA time zone name for a schedule.
func LoadZone(name string) (*time.Location, error) {
	if name == "" {
		return time.UTC, nil
	}
	if strings.ContainsAny(name, " ") || strings.HasPrefix(name, "/") {
		return nil, fmt.Errorf("time zone %q: an IANA name such as \"Europe/Paris\" or \"UTC\"", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q: an IANA name such as \"Europe/Paris\" or \"America/New_York\"", name)
	}
	return loc, nil
}
