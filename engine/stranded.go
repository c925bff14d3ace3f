package engine

import (
	"log/slog"
	"slices"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// Stranded is a destination the workspace no longer defines (renamed or
// deleted) whose outbox or dead letters the state still holds: nothing
// delivers them.
type Stranded struct {
	Destination string
	Pending     int64
	DeadLetters int64
}

// StrandedEvents returns the destinations the state holds events for and
// ws does not define, by name. `linkaud outbox DIR move|drop` and
// `linkaud deadletters DIR move|drop` deal with them.
func StrandedEvents(ws *dsl.Workspace, store *diff.Store) ([]Stranded, error) {
	if store == nil {
		return nil, nil
	}
	backlogs, err := store.Backlogs()
	if err != nil {
		return nil, err
	}
	dead, err := store.DeadLetterCounts()
	if err != nil {
		return nil, err
	}
	by := map[string]*Stranded{}
	note := func(dest string) *Stranded {
		s := by[dest]
		if s == nil {
			s = &Stranded{Destination: dest}
			by[dest] = s
		}
		return s
	}
	for dest, n := range backlogs {
		if n > 0 && ws.Destination(dest) == nil {
			note(dest).Pending = n
		}
	}
	for dest, n := range dead {
		if n > 0 && ws.Destination(dest) == nil {
			note(dest).DeadLetters = n
		}
	}
	var out []Stranded
	for _, s := range by {
		out = append(out, *s)
	}
	slices.SortFunc(out, func(a, b Stranded) int {
		if a.Destination < b.Destination {
			return -1
		}
		if a.Destination > b.Destination {
			return 1
		}
		return 0
	})
	return out, nil
}

// WarnStranded logs a warning per stranded destination (see
// StrandedEvents); errors reading the state are logged too.
func WarnStranded(log *slog.Logger, ws *dsl.Workspace, store *diff.Store) {
	st, err := StrandedEvents(ws, store)
	if err != nil {
		log.Warn("checking for stranded events failed", "error", err)
		return
	}
	for _, s := range st {
		log.Warn("events for a destination the workspace no longer defines are never delivered: move them to another destination or drop them (linkaud outbox|deadletters DIR move|drop)",
			"destination", s.Destination, "pending", s.Pending, "dead_letters", s.DeadLetters)
	}
}
