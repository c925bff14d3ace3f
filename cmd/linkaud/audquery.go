package main

import (
	"context"
	"errors"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
)

// audienceQuery is what the commands that query one audience without
// state (preview, why) start from: the checked workspace, the audience,
// the cycle start, the warehouse with the audience's loads refreshed, and
// its dialect.
type audienceQuery struct {
	ws  *dsl.Workspace
	a   *dsl.Audience
	now time.Time
	wh  executor.Warehouse
	d   planner.Dialect
}

// openAudienceQuery loads dir, finds the audience named name and opens the
// warehouse; the caller closes q.wh.
func openAudienceQuery(ctx context.Context, dir, name, now string) (*audienceQuery, error) {
	ws, err := loadWorkspace(dir, dsl.Options{})
	if err != nil {
		return nil, err
	}
	a, err := findAudience(ws, name)
	if err != nil {
		return nil, err
	}
	start, err := cycleStart(now)
	if err != nil {
		return nil, err
	}
	d, err := planner.ForWarehouse(ws.Warehouse)
	if err != nil {
		return nil, infraError(err)
	}
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		return nil, infraError(err)
	}
	if err := executor.RefreshFor(ctx, wh, dsl.TablesRead(ws.Graph, a)); err != nil {
		wh.Close()
		var failed executor.LoadErrors
		if errors.As(err, &failed) {
			return nil, userError(err)
		}
		return nil, infraError(err)
	}
	return &audienceQuery{ws: ws, a: a, now: start, wh: wh, d: d}, nil
}
