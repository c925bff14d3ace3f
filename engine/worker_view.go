package engine

import (
	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// Workspace is the workspace the worker runs now (the last one loaded).
func (w *Worker) Workspace() *dsl.Workspace { return w.e.Workspace() }

// Store is the worker's state, for reads (history, members, dead letters).
func (w *Worker) Store() *diff.Store { return w.e.Store() }

// RetryDeadLetters moves dead letters of dest (every destination when "";
// those with the given messageIds, or all) back into the outbox, as
// `linkaud deadletters retry` does, and starts a delivery pass of the
// destinations that got them back.
func (w *Worker) RetryDeadLetters(dest string, ids []string) (int, error) {
	n, err := RetryDeadLetters(w.e.Store(), dest, ids)
	if err != nil || n == 0 {
		return n, err
	}
	w.mu.Lock()
	var kick []*deliverer
	for name, d := range w.dests {
		if dest == "" || name == dest {
			kick = append(kick, d)
		}
	}
	w.mu.Unlock()
	for _, d := range kick {
		d.kickNow()
	}
	return n, nil
}
