package engine

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
)

// With Options.CheckColumns, the engine asks the warehouse about the
// tables, columns and types each audience uses — what `check --warehouse`
// prints — before anything runs, so that a misspelt column or a text column
// tested with `is true` is a positioned diagnostic, not a cycle failing on
// the warehouse's message about SQL the user never wrote:
//
//   - at Open, an audience that does not fit fails its cycles with those
//     diagnostics, recorded as any failed cycle (Failed, a run in its
//     history); the others run;
//   - at Reload, a workspace with an audience that does not fit is
//     refused (*ColumnCheckError) and the old definitions keep running.
//
// A cycle that fails on a binding error later (the warehouse changed) is
// explained the same way (explain.go). Audiences that read a load that
// failed are left to fail with the load's reason.

// ColumnCheckError is a workspace that does not fit its warehouse, refused
// by Reload. It is a user error (the workspace's to fix).
type ColumnCheckError struct {
	Diags dsl.Diagnostics
	msg   string
}

func (e *ColumnCheckError) Error() string { return e.msg }

// errUnfit is what the failure of an audience that does not fit wraps.
var errUnfit = errors.New("engine: the audience does not fit the warehouse")

// unfitAudiences checks every audience of ws against wh and returns the
// failure of each that does not fit, by name.
func unfitAudiences(ctx context.Context, ws *dsl.Workspace, wh executor.Warehouse) (map[string]error, error) {
	var failed executor.LoadErrors
	if err := executor.Refresh(ctx, wh); err != nil && !errors.As(err, &failed) {
		return nil, err
	}
	cols := newColumnCache(wh)
	out := map[string]error{}
	for _, a := range ws.Audiences {
		if failed.For(dsl.TablesRead(ws.Graph, a)) != nil {
			continue
		}
		diags := dsl.CheckAudienceColumns(ctx, ws.Graph, a, cols)
		if diags.HasErrors() {
			out[a.Name] = explained(ws, a, diags, errUnfit)
		}
	}
	return out, nil
}

// columnCheckError is the refusal of a reload: every unfit audience's
// diagnostics, in workspace order.
func columnCheckError(ws *dsl.Workspace, unfit map[string]error) error {
	if len(unfit) == 0 {
		return nil
	}
	var diags dsl.Diagnostics
	var b strings.Builder
	b.WriteString("the workspace does not fit the warehouse (check --warehouse says the same):")
	for _, a := range ws.Audiences {
		if ee, ok := unfit[a.Name].(*explainedError); ok {
			diags = append(diags, ee.diags...)
		}
	}
	diags = slices.DeleteFunc(diags, func(d *dsl.Diagnostic) bool { return d.Severity != dsl.Error })
	diags.Sort()
	diags = slices.CompactFunc(diags, func(a, b *dsl.Diagnostic) bool { return a.Error() == b.Error() })
	var r strings.Builder
	dsl.Render(&r, diags, dsl.Sources(ws.Files))
	b.WriteString("\n" + strings.TrimRight(r.String(), "\n"))
	return &ColumnCheckError{Diags: diags, msg: b.String()}
}

// columnCache asks the warehouse about each table once for a check of
// several audiences.
type columnCache struct {
	wh    executor.Warehouse
	typer dsl.ColumnTyper
	cols  map[string]cachedColumns
	types map[string]cachedTypes
}

type cachedColumns struct {
	cols []string
	err  error
}

type cachedTypes struct {
	cols []dsl.ColumnType
	err  error
}

// newColumnCache is a dsl.ColumnLister over wh, and a dsl.ColumnTyper when
// wh reports types.
func newColumnCache(wh executor.Warehouse) dsl.ColumnLister {
	c := &columnCache{wh: wh, cols: map[string]cachedColumns{}, types: map[string]cachedTypes{}}
	if t, ok := wh.(dsl.ColumnTyper); ok {
		c.typer = t
		return &typedColumnCache{c}
	}
	return c
}

func (c *columnCache) Columns(ctx context.Context, t dsl.TableName) ([]string, error) {
	k := t.String()
	if r, ok := c.cols[k]; ok {
		return r.cols, r.err
	}
	cols, err := c.wh.Columns(ctx, t)
	c.cols[k] = cachedColumns{cols, err}
	return cols, err
}

type typedColumnCache struct{ *columnCache }

func (c *typedColumnCache) ColumnTypes(ctx context.Context, t dsl.TableName) ([]dsl.ColumnType, error) {
	k := t.String()
	if r, ok := c.types[k]; ok {
		return r.cols, r.err
	}
	cols, err := c.typer.ColumnTypes(ctx, t)
	c.types[k] = cachedTypes{cols, err}
	return cols, err
}
