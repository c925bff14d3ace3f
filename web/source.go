package web

import (
	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
)

// source is what the console reads: a running worker (*engine.Worker), or
// a workspace and a state opened read-only (`linkaud console`).
type source interface {
	Audiences() ([]engine.AudienceStatus, error)
	Audience(name string, history int) (engine.AudienceStatus, []diff.RunRecord, error)
	Health() []engine.DestinationHealth
	Workspace() *dsl.Workspace
	Store() *diff.Store
}

// actions are what the console's buttons do; only a worker has them.
type actions interface {
	RunNow(name string) error
	Enable(name string) error
	Disable(name string) error
	RetryDeadLetters(dest string, ids []string) (int, error)
}

var (
	_ source  = (*engine.Worker)(nil)
	_ actions = (*engine.Worker)(nil)
	_ source  = stateSource{}
)

// State gives the read-only console the workspace and the state to read
// for a request; an implementation may reopen them now and then to follow
// a worker that holds the state (cmd/linkaud's console does).
type State interface {
	Current() (*dsl.Workspace, *diff.Store)
}

// stateSource reads a workspace and a state without a worker: statuses as
// `linkaud audiences list` shows them (no next run, nothing running).
type stateSource struct {
	st State
}

func (s stateSource) Audiences() ([]engine.AudienceStatus, error) {
	ws, store := s.st.Current()
	return engine.Statuses(ws, store)
}

func (s stateSource) Audience(name string, history int) (engine.AudienceStatus, []diff.RunRecord, error) {
	ws, store := s.st.Current()
	var st engine.AudienceStatus
	var err error
	if a := ws.Audience(name); a != nil && store != nil {
		// One audience's state, not every one's: pages of one audience
		// cost the same among 10 or 10,000.
		var state diff.AudienceState
		if state, err = store.State(name); err != nil {
			return st, nil, err
		}
		state.Name = name
		st = engine.AudienceStatus{AudienceState: state, Defined: true, Description: a.Description,
			Schedule: a.Schedule.String(), Definition: a.Version}
	} else if st, err = engine.StatusOf(ws, store, name); err != nil {
		return st, nil, err
	}
	if history == 0 || store == nil {
		return st, nil, nil
	}
	runs, err := store.Runs(name)
	if len(runs) > history {
		runs = runs[:history]
	}
	return st, runs, err
}

// Health is unknown without a worker: no delivery runs.
func (s stateSource) Health() []engine.DestinationHealth {
	ws, _ := s.st.Current()
	out := make([]engine.DestinationHealth, len(ws.Destinations))
	for i, d := range ws.Destinations {
		out[i] = engine.DestinationHealth{Name: d.Name}
	}
	return out
}

func (s stateSource) Workspace() *dsl.Workspace { ws, _ := s.st.Current(); return ws }
func (s stateSource) Store() *diff.Store        { _, store := s.st.Current(); return store }
