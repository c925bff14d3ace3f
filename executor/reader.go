package executor

import (
	"sync/atomic"

	"github.com/apache/arrow-go/v18/arrow"
)

// readerState is the array.RecordReader bookkeeping both warehouses'
// readers share: the current batch, the error that ended the stream, and
// the reference count whose last Release frees the statement.
type readerState struct {
	refs    atomic.Int64
	current arrow.RecordBatch
	err     error
	done    bool
}

// fail ends the stream with err; it returns false for Next to return.
func (r *readerState) fail(err error) bool {
	r.err, r.done = err, true
	return false
}

func (r *readerState) RecordBatch() arrow.RecordBatch { return r.current }

// Record implements the deprecated alias of RecordBatch.
func (r *readerState) Record() arrow.RecordBatch { return r.current }

func (r *readerState) Err() error { return r.err }

func (r *readerState) Retain() { r.refs.Add(1) }
