package engine

import (
	"context"
	"sync"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/crashpoint"
	"github.com/linkaud/linkaud/planner"
)

// lookup is the cycle's diff.Lookup: the current values of removed
// entities, read from the entity's table by key (planner.Lookup), one
// statement per batch of keys.
func lookup(wh executor.Warehouse, ws *dsl.Workspace, a *dsl.Audience) diff.Lookup {
	return func(ctx context.Context, step int, keys []string) (array.RecordReader, error) {
		crashpoint.Hit("cycle.lookup")
		d, err := planner.ForWarehouse(ws.Warehouse)
		if err != nil {
			return nil, err
		}
		var cols []string
		for _, r := range a.Enrich {
			if r.Source == dsl.SourceStep && r.StepIndex == step {
				cols = append(cols, r.Column)
			}
		}
		sql, err := planner.Lookup(a.Primary.Steps[step].Entity, cols, keys, d)
		if err != nil {
			return nil, err
		}
		return wh.Query(ctx, sql, executor.QueryOptions{Tag: a.Name})
	}
}

// releasingReader releases the result stream as soon as it ends, rather
// than when the cycle does: the stream holds a warehouse connection, which
// the cycle's lookups need when every other one is taken.
type releasingReader struct {
	array.RecordReader
	once sync.Once
	err  error
	done bool
}

func (r *releasingReader) Next() bool {
	if r.done {
		return false
	}
	if r.RecordReader.Next() {
		return true
	}
	r.done = true
	r.err = r.RecordReader.Err()
	r.once.Do(r.RecordReader.Release)
	return false
}

func (r *releasingReader) Err() error {
	if r.done {
		return r.err
	}
	return r.RecordReader.Err()
}

func (r *releasingReader) RecordBatch() arrow.RecordBatch {
	if r.done {
		return nil
	}
	return r.RecordReader.RecordBatch()
}

func (r *releasingReader) Record() arrow.RecordBatch { return r.RecordBatch() }

func (r *releasingReader) Release() { r.once.Do(r.RecordReader.Release) }
