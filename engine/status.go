package engine

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// Statuses returns the status of every audience of ws, in workspace
// order, then of those only in the state (deleted from the workspace, kept
// until purged), by name, as `linkaud audiences list` shows them without a
// worker: Next, Running and Queued are zero. An audience the state has
// never seen is Disabled with no generation; a nil store is a state that
// does not exist yet.
func Statuses(ws *dsl.Workspace, store *diff.Store) ([]AudienceStatus, error) {
	var states []diff.AudienceState
	if store != nil {
		var err error
		if states, err = store.Audiences(); err != nil {
			return nil, err
		}
	}
	byName := map[string]diff.AudienceState{}
	for _, st := range states {
		byName[st.Name] = st
	}
	var out []AudienceStatus
	for _, a := range ws.Audiences {
		st, ok := byName[a.Name]
		if !ok {
			st = diff.AudienceState{Name: a.Name, Status: diff.Disabled}
		}
		delete(byName, a.Name)
		out = append(out, definedStatus(a, st))
	}
	var rest []AudienceStatus
	for _, st := range byName {
		rest = append(rest, AudienceStatus{AudienceState: st})
	}
	slices.SortFunc(rest, func(a, b AudienceStatus) int { return cmp.Compare(a.Name, b.Name) })
	return append(out, rest...), nil
}

func definedStatus(a *dsl.Audience, st diff.AudienceState) AudienceStatus {
	st.Name = a.Name
	st = declaredState(a, st)
	return AudienceStatus{
		AudienceState: st,
		Defined:       true,
		Description:   a.Description,
		Schedule:      a.Schedule.String(),
		Definition:    a.Version,
	}
}

// StatusOf returns the status of audience name, defined in ws or only kept
// in the state; an *UnknownAudienceError (with the closest name) when
// neither knows it.
func StatusOf(ws *dsl.Workspace, store *diff.Store, name string) (AudienceStatus, error) {
	all, err := Statuses(ws, store)
	if err != nil {
		return AudienceStatus{}, err
	}
	names := make([]string, len(all))
	for i, s := range all {
		if s.Name == name {
			return s, nil
		}
		names[i] = s.Name
	}
	return AudienceStatus{}, NewUnknownAudienceError(name, names)
}

// ErrNotDefined is returned by SetEnabled for an audience kept in the state
// but deleted from the workspace: there is nothing to compute.
var ErrNotDefined = fmt.Errorf("engine: audience is not defined in the workspace")

// SetEnabled enables or disables audience name of ws in store, as `linkaud
// audiences DIR enable|disable` does without a worker. Disabling also
// accepts an audience only kept in the state. It returns the new status.
func SetEnabled(ws *dsl.Workspace, store *diff.Store, name string, on bool) (AudienceStatus, error) {
	s, err := CheckSetEnabled(ws, store, name, on)
	if err != nil {
		return s, err
	}
	if on {
		err = store.Enable(name)
	} else {
		err = store.Disable(name)
	}
	if err != nil {
		return s, err
	}
	return StatusOf(ws, store, name)
}

// CheckSetEnabled returns the error SetEnabled would, without changing
// anything (`linkaud audiences enable A B C` checks every name first), and
// the audience's status.
func CheckSetEnabled(ws *dsl.Workspace, store *diff.Store, name string, on bool) (AudienceStatus, error) {
	s, err := StatusOf(ws, store, name)
	if err != nil {
		return s, err
	}
	if on && !s.Defined {
		return s, &sentinelError{ErrNotDefined, fmt.Sprintf("audience %s is deleted from the workspace, only its state is kept: define it again, or purge it", name)}
	}
	if a := ws.Audience(name); a != nil && a.Enabled != nil {
		return s, declaredError(a, on)
	}
	return s, nil
}

// ErrPurgeEnabled is returned by Purge for an audience that is defined and
// enabled.
var ErrPurgeEnabled = fmt.Errorf("engine: audience is enabled; disable it before purging")

// Purge deletes what store keeps of audience name — its membership,
// history and activation records — except events already in the outbox or
// dead-letter store, which are still delivered. An audience still defined
// in ws must be disabled first; its next cycle after enabling starts
// afresh, as a new audience's does.
func Purge(ws *dsl.Workspace, store *diff.Store, name string) error {
	s, err := StatusOf(ws, store, name)
	if err != nil {
		return err
	}
	if s.Defined && s.Enabled {
		return &sentinelError{ErrPurgeEnabled, fmt.Sprintf("audience %s is enabled; disable it before purging", name)}
	}
	return store.Purge(name)
}

// sentinelError is a message for people that still matches its sentinel
// with errors.Is.
type sentinelError struct {
	sentinel error
	msg      string
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }
