package dsl

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/linkaud/linkaud/grammar"
)

// stateSpec lists the settings of a `state "DIR" { … }` block: how the
// process that runs the state may use the machine.
var stateSpec = map[string]settingSpec{
	"memory_limit": {kind: "string"},
}

// MinMemoryLimit is the smallest memory_limit accepted: below it DuckDB,
// Pebble and the pipeline cannot each get a working share.
const MinMemoryLimit = 128 << 20

// state checks a state declaration into c.ws.StateDir and c.ws.MemoryLimit.
func (c *checker) state(s *grammar.State) {
	if s.Path.Str == nil {
		c.errorf(s.Path, "state takes a directory as a string, e.g. state \".linkaud\"")
		return
	}
	c.ws.StateDir = c.absPath(s.Path.Str.Value())
	for key, ss := range c.settings("state", s.Settings, stateSpec) {
		ss = valid(ss)
		if len(ss) == 0 {
			continue
		}
		switch key {
		case "memory_limit":
			v := ss[0].Value
			n, err := ParseBytes(v.Str.Value())
			if err != nil {
				c.errorf(v, "memory_limit: %v", err)
				continue
			}
			if n < MinMemoryLimit {
				c.errorf(v, "memory_limit %s is below the minimum of 128MB", v.Str.Value())
				continue
			}
			c.ws.MemoryLimit = n
		}
	}
}

// ParseBytes reads a size such as "512MB", "2GB", "1.5GiB" or "800000000".
// Units are powers of 1024 whether written MB or MiB, as DuckDB reads its
// own memory_limit.
func ParseBytes(s string) (int64, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToUpper(strings.TrimSpace(t[i:]))
	f, err := strconv.ParseFloat(num, 64)
	if err != nil || f < 0 || num == "" {
		return 0, fmt.Errorf("%q is not a size: write a number and a unit, e.g. \"512MB\" or \"2GB\"", s)
	}
	var mult float64
	switch unit {
	case "", "B":
		mult = 1
	case "KB", "KIB", "K":
		mult = 1 << 10
	case "MB", "MIB", "M":
		mult = 1 << 20
	case "GB", "GIB", "G":
		mult = 1 << 30
	case "TB", "TIB", "T":
		mult = 1 << 40
	default:
		return 0, fmt.Errorf("%q: unknown unit %q (use B, KB, MB, GB or TB)", s, strings.TrimSpace(t[i:]))
	}
	return int64(f * mult), nil
}

// FormatBytes writes n as ParseBytes reads it, in the largest unit that
// keeps it whole to a tenth: 536870912 is "512MB".
func FormatBytes(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TB", 1 << 40}, {"GB", 1 << 30}, {"MB", 1 << 20}, {"KB", 1 << 10}} {
		if n >= u.size {
			v := float64(n) / float64(u.size)
			if v == float64(int64(v)) {
				return fmt.Sprintf("%d%s", int64(v), u.name)
			}
			return strconv.FormatFloat(v, 'f', 1, 64) + u.name
		}
	}
	return fmt.Sprintf("%dB", n)
}
