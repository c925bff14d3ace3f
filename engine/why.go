package engine

import (
	"context"

	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
	"github.com/linkaud/linkaud/planner/why"
)

// Why explains profile's membership of audience aud on the engine's
// warehouse (`linkaud why`, GET /audiences/{name}/why), with at most
// maxRows rows shown per path step, for a cycle starting now.
func (e *Engine) Why(ctx context.Context, aud, profile string, maxRows int) (*why.Result, error) {
	e.mu.Lock()
	ws, wh := e.ws, e.wh
	e.mu.Unlock()
	a := ws.Audience(aud)
	if a == nil {
		return nil, NewUnknownAudienceError(aud, AudienceNames(ws))
	}
	d, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		return nil, err
	}
	w, err := planner.CompileWhy(a, ws.Graph, d, profile, planner.Options{Now: e.opts.Now().UTC(), Limit: maxRows})
	if err != nil {
		return nil, err
	}
	release, err := executor.Hold(ctx, wh)
	if err != nil {
		return nil, err
	}
	defer release()
	if err := executor.Refresh(ctx, wh); err != nil {
		return nil, err
	}
	return why.Run(ctx, wh, w)
}

// Why is Engine.Why on the worker's engine.
func (w *Worker) Why(ctx context.Context, aud, profile string, maxRows int) (*why.Result, error) {
	return w.e.Why(ctx, aud, profile, maxRows)
}

// DryRun computes the next cycle of one audience on a scratch copy of the
// state (Engine.DryRun): a disabled audience is computed as its first
// cycle after enabling would be, on the copy only.
func (w *Worker) DryRun(ctx context.Context, aud string) (*DryRunReport, error) {
	return w.e.DryRun(ctx, RunOptions{Audiences: []string{aud}, Enable: true})
}
