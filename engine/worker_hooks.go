package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/apache/arrow-go/v18/arrow/array"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// The engine and the worker report what they do through optional hook
// interfaces, found by type assertion among Options.Hooks (which also
// carries the sinks.Hook* delivery hooks), as franz-go does. Hooks are
// called synchronously from the goroutine doing the work, possibly from
// several at once: they must be fast, safe for concurrent use, and must not
// keep what they are given beyond the call.

// HookRowsRead is told, as a cycle streams result rows from the warehouse,
// how many rows of audience have been read so far (the running total);
// done is true exactly once per cycle, when the stream ended or was
// abandoned. It drives `linkaud run`'s progress bar.
type HookRowsRead interface {
	OnRowsRead(audience string, rows int64, done bool)
}

// HookCycleStarted is called when the worker starts a cycle of audience,
// with how long the run waited for a free slot: zero when one was free as
// it fell due (or was requested), else the time since every slot was
// found busy.
type HookCycleStarted interface {
	OnCycleStarted(audience string, waited time.Duration)
}

// CycleReport describes a finished cycle run by the worker.
type CycleReport struct {
	Audience *dsl.Audience
	// Activations are the audience's activations the cycle wrote events for.
	Activations []*dsl.Activation
	// Result is the cycle's result; nil when Err is set.
	Result *diff.CycleResult
	// Err is why the cycle failed (recorded as Failed in the state).
	Err error
	// Took is the cycle's wall time.
	Took time.Duration
}

// HookCycleDone is called when a cycle run by the worker finished.
type HookCycleDone interface {
	OnCycleDone(r CycleReport)
}

// HookQueue is called whenever the worker's count of running cycles or of
// runs waiting for a slot changes.
type HookQueue interface {
	OnQueue(running, queued int)
}

// HookDeliverPass is called after each delivery pass of a destination by
// the worker, with what sinks.Deliver reported.
type HookDeliverPass interface {
	OnDeliverPass(dest string, st sinks.Stats, err error, took time.Duration)
}

// HookReload is called after each reload attempt: ok is false when the
// workspace was rejected (diagnostics) or could not be applied.
type HookReload interface {
	OnReload(ok bool)
}

// hooksOf returns the hooks of type H.
func hooksOf[H any](hooks []sinks.Hook) []H {
	var out []H
	for _, h := range hooks {
		if h, ok := h.(H); ok {
			out = append(out, h)
		}
	}
	return out
}

// watchRows wraps rows so that the HookRowsRead hooks see the running count
// of rows read; rows itself when there are none.
func (e *Engine) watchRows(audience string, rows array.RecordReader) array.RecordReader {
	hooks := hooksOf[HookRowsRead](e.opts.Hooks)
	if len(hooks) == 0 {
		return rows
	}
	return &countingReader{RecordReader: rows, audience: audience, hooks: hooks}
}

// countingReader counts the rows passing through a RecordReader. The differ
// reads it from its decoding goroutine.
type countingReader struct {
	array.RecordReader
	audience string
	hooks    []HookRowsRead
	rows     atomic.Int64
	once     sync.Once
}

func (r *countingReader) Next() bool {
	if !r.RecordReader.Next() {
		r.finish()
		return false
	}
	n := r.rows.Add(r.RecordReader.RecordBatch().NumRows())
	for _, h := range r.hooks {
		h.OnRowsRead(r.audience, n, false)
	}
	return true
}

func (r *countingReader) finish() {
	r.once.Do(func() {
		for _, h := range r.hooks {
			h.OnRowsRead(r.audience, r.rows.Load(), true)
		}
	})
}

// Release reports the end of the stream too: a failing differ may stop
// reading before the end.
func (r *countingReader) Release() {
	r.finish()
	r.RecordReader.Release()
}

var _ array.RecordReader = (*countingReader)(nil)
