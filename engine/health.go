package engine

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/linkaud/linkaud/sinks"
)

// DestinationHealth is what the last delivery of a destination found.
// A destination is halted when it refused the credential, does not know the
// account or region, or its Kafka topic is missing (sinks.ErrHalted):
// nothing is dead-lettered, its events wait in the outbox, and the next
// pass — the worker tries every deliver interval — resumes by itself once
// it accepts them.
type DestinationHealth struct {
	Name string
	// Halted: the last pass stopped on a sinks.HaltedError.
	Halted bool
	// Reason and Fix are the halt's (without secrets).
	Reason, Fix string
	// Since is when the destination halted (the first pass of the run of
	// halted passes); zero when healthy.
	Since time.Time
	// Checked is when a delivery pass last ended.
	Checked time.Time
}

// recordHealth notes the outcome of a delivery pass of dest.
func (e *Engine) recordHealth(dest string, err error) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	h := e.health[dest]
	h.Name, h.Checked = dest, now
	var halted *sinks.HaltedError
	switch {
	case errors.As(err, &halted):
		if !h.Halted {
			h.Since = now
			e.log.Error("destination halted: nothing is dead-lettered, its events wait in the outbox; delivery resumes by itself once it accepts them",
				"destination", dest, "reason", halted.Reason, "fix", halted.Fix)
		}
		h.Halted, h.Reason, h.Fix = true, halted.Reason, halted.Fix
	case err == nil:
		if h.Halted {
			e.log.Info("destination resumed after a halt", "destination", dest, "halted_for", now.Sub(h.Since).Round(time.Second).String())
		}
		h.Halted, h.Reason, h.Fix, h.Since = false, "", "", time.Time{}
	default:
		// Another failure (an outage, retries spent) says nothing about
		// the credential: the health stays as it was.
	}
	e.health[dest] = h
}

// Health returns what the last delivery of each destination found, by
// name; destinations not delivered yet are healthy with a zero Checked.
func (e *Engine) Health() []DestinationHealth {
	ws := e.Workspace()
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]DestinationHealth, 0, len(ws.Destinations))
	for _, d := range ws.Destinations {
		h := e.health[d.Name]
		h.Name = d.Name
		out = append(out, h)
	}
	slices.SortFunc(out, func(a, b DestinationHealth) int { return strings.Compare(a.Name, b.Name) })
	return out
}
