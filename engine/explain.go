package engine

import (
	"context"
	"errors"
	"strings"
	"sync"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/planner"
)

// A cycle that fails because the warehouse does not know a table, column
// or function its statement names (a column renamed, a file's header
// changed) would show the warehouse's message about SQL the user never
// wrote, aliases and all. Instead the engine asks the warehouse about what
// the audience reads (dsl.CheckAudienceColumns) and fails the cycle with
// those positioned diagnostics, the same check --warehouse prints.

// explainedError is a failure reworded as diagnostics; errors.Is still sees
// the warehouse's error.
type explainedError struct {
	msg   string
	err   error
	diags dsl.Diagnostics
}

func (e *explainedError) Error() string { return e.msg }
func (e *explainedError) Unwrap() error { return e.err }

// IsReason implements diff.Reason.
func (e *explainedError) IsReason() {}

// explain rewords err when it is a binding failure the column checks can
// place, else returns it as it is.
func explain(ctx context.Context, wh executor.Warehouse, ws *dsl.Workspace, a *dsl.Audience, err error) error {
	if err == nil || !errors.Is(err, executor.ErrUndefined) {
		return err
	}
	var ee *explainedError
	if errors.As(err, &ee) {
		return err
	}
	if ctx.Err() != nil {
		ctx = context.WithoutCancel(ctx)
	}
	diags := dsl.CheckAudienceColumns(ctx, ws.Graph, a, wh)
	if !diags.HasErrors() {
		return err
	}
	return explained(ws, a, diags, err)
}

// explained is err reworded as audience a's diagnostics.
func explained(ws *dsl.Workspace, a *dsl.Audience, diags dsl.Diagnostics, err error) *explainedError {
	var b strings.Builder
	dsl.Render(&b, diags, dsl.Sources(ws.Files))
	return &explainedError{
		msg:   "the warehouse does not have what audience " + a.Name + " reads (check --warehouse says the same):\n" + strings.TrimRight(b.String(), "\n"),
		err:   err,
		diags: diags,
	}
}

// explainingReader rewords the error that ends a result stream.
type explainingReader struct {
	array.RecordReader
	explain func(error) error
	once    sync.Once
	err     error
}

func (r *explainingReader) Err() error {
	err := r.RecordReader.Err()
	if err == nil {
		return nil
	}
	r.once.Do(func() { r.err = r.explain(err) })
	return r.err
}

// IsUserError reports whether err, why a cycle failed, is the workspace's
// to fix rather than the warehouse's or the state's: a load file missing
// or unreadable, a table, column or type the warehouse does not have as
// the workspace uses it, a plan the planner refuses. `linkaud run` exits 1
// for those, 2 for the others.
func IsUserError(err error) bool {
	var (
		load    *executor.LoadError
		ee      *explainedError
		planErr *planner.Error
		cc      *ColumnCheckError
	)
	return errors.As(err, &load) || errors.As(err, &ee) || errors.As(err, &planErr) || errors.As(err, &cc)
}
