package main

import (
	"context"
	"os"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// checkWarehouse asks the workspace's warehouse that every table and column
// it uses exists. Missing ones are user errors (exit 1); failing to reach
// the warehouse at all is an infrastructure error (exit 2).
func checkWarehouse(ws *dsl.Workspace) error {
	ctx := context.Background()
	wh, err := executor.Open(ctx, ws.Warehouse, executor.Options{})
	if err != nil {
		return infraError(err)
	}
	defer wh.Close()
	diags, err := executor.CheckWorkspace(ctx, ws, wh)
	if err != nil {
		return infraError(err)
	}
	if len(diags) > 0 {
		dsl.Render(os.Stderr, diags, dsl.Sources(ws.Files))
	}
	if diags.HasErrors() {
		return silentExit(exitUser)
	}
	return nil
}

var _ dsl.ColumnLister = executor.Warehouse(nil)
