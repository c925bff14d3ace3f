package executor

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"github.com/linkaud/linkaud/dsl"
)

// CheckWorkspace is `linkaud check --warehouse`: each load whose file is
// missing or does not read is an error at the load, and dsl.CheckColumns
// asks about every table, column and type the workspace uses; a table
// whose load failed is said to be so at its uses rather than reported
// missing. The error is the warehouse's (none reached, a refresh that
// failed for another reason than a load).
func CheckWorkspace(ctx context.Context, ws *dsl.Workspace, wh Warehouse) (dsl.Diagnostics, error) {
	var failed LoadErrors
	if err := Refresh(ctx, wh); err != nil && !errors.As(err, &failed) {
		return nil, err
	}
	var diags dsl.Diagnostics
	for _, le := range failed {
		diags = append(diags, &dsl.Diagnostic{Severity: dsl.Error, Subject: le.Load.Range,
			Summary: fmt.Sprintf("load %q: %v", le.Load.Table.String(), le.Err)})
	}
	var lister dsl.ColumnLister = &loadAware{wh: wh, failed: failed}
	if t, ok := wh.(dsl.ColumnTyper); ok {
		lister = &typedLoadAware{loadAware{wh: wh, failed: failed}, t}
	}
	diags = append(diags, dsl.CheckColumns(ctx, ws, lister)...)
	diags.Sort()
	return diags, nil
}

// loadAware answers for the tables of failed loads that their load failed.
type loadAware struct {
	wh     Warehouse
	failed LoadErrors
}

func (l *loadAware) loadFailed(t dsl.TableName) error {
	le, ok := l.failed.For([]dsl.TableName{t}).(LoadErrors)
	if !ok {
		return nil
	}
	p := le[0].Load.Start
	return fmt.Errorf("its load failed (%s:%d:%d)", filepath.Base(p.Filename), p.Line, p.Column)
}

func (l *loadAware) Columns(ctx context.Context, t dsl.TableName) ([]string, error) {
	if err := l.loadFailed(t); err != nil {
		return nil, err
	}
	return l.wh.Columns(ctx, t)
}

type typedLoadAware struct {
	loadAware
	typer dsl.ColumnTyper
}

func (l *typedLoadAware) ColumnTypes(ctx context.Context, t dsl.TableName) ([]dsl.ColumnType, error) {
	if err := l.loadFailed(t); err != nil {
		return nil, err
	}
	return l.typer.ColumnTypes(ctx, t)
}
