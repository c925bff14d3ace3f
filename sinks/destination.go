package sinks

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// Destination delivers outbox messages to one external system.
//
// Send hands over one batch and returns only once the destination has
// acknowledged it durably (the broker acked, the HTTP server answered 2xx, the
// file was fsynced) or failed. It returns nil when every message was
// delivered; a *BatchError when messages fared differently; any other error
// when the whole batch failed the same way. Failures are retried unless
// marked Permanent; a Throttled failure asks the caller to wait.
//
// Ordering: a Send must never deliver a message after it failed, without
// marking it Permanent, an earlier message of the same UserID in the same
// batch. Destinations that send a batch in one request, or in requests taken
// in batch order that stop at the first retryable failure, satisfy this.
//
// Delivery is at least once: Send may be given messages it already delivered
// (after a crash before the acknowledgement reached the outbox) and sends
// them again with the same messageId.
//
// Send is never called concurrently with itself; Close is called once,
// after the last Send.
type Destination interface {
	Send(ctx context.Context, batch []diff.Message) error
	Close() error
}

// Batcher is implemented by destinations whose requests hold a bounded number
// of messages (Braze: 75); Deliver never hands them a larger batch.
type Batcher interface {
	MaxBatch() int
}

// Pipeliner is implemented by destinations that can take the next batch
// before the previous one is acknowledged (the Kafka sink without
// transactions: its producer keeps each partition's records in order across
// batches). Deliver then keeps up to InFlight messages started and
// settles the batches — acknowledges, dead-letters, retries — strictly in
// the order it started them, so the outbox is still acknowledged batch by
// batch in Seq order. A destination that is also a Resumer is delivered
// one batch at a time.
type Pipeliner interface {
	Destination
	// Start hands batch over and returns without waiting for the
	// destination; wait blocks until the batch's outcome is known and
	// returns what Send would have returned for it. Deliver starts
	// batches in Seq order, never concurrently with each other or with
	// Send, calls every wait exactly once, in the order the batches were
	// started, and calls Send (for a retry) only once every started
	// batch was waited for.
	//
	// Ordering across batches: once a message has failed without being
	// marked Permanent, no later message of the same UserID, in this
	// batch or a later one started before the failure was waited for,
	// may be delivered: it must fail too (retryably), so that the retry
	// sends them again in Seq order.
	Start(ctx context.Context, batch []diff.Message) (wait func() error)
	// InFlight is how many messages Deliver may keep started and not yet
	// waited for (at least one batch is always started).
	InFlight() int
}

// Resumer is implemented by destinations that record, atomically with each
// delivery, the newest outbox message it covered (the Kafka sink in
// transactional mode writes a progress record in the same transaction).
// After a restart or an ambiguous failure Deliver asks for it and
// acknowledges the messages already delivered instead of sending them again.
type Resumer interface {
	// Committed returns the Seq and ID of the newest message durably
	// delivered; ok is false when the destination has no record.
	Committed(ctx context.Context) (seq uint64, id string, ok bool, err error)
}

// Outcome is what happened to one message of a batch.
type Outcome uint8

const (
	// Delivered: acknowledged by the destination.
	Delivered Outcome = iota
	// Retry: failed in a way a later attempt may fix.
	Retry
	// Reject: failed permanently; the message goes to the dead-letter store.
	Reject
)

func (o Outcome) String() string {
	switch o {
	case Delivered:
		return "delivered"
	case Retry:
		return "retry"
	case Reject:
		return "reject"
	}
	return fmt.Sprintf("Outcome(%d)", uint8(o))
}

// PermanentError marks a failure no retry can fix (an HTTP 400, a record the
// broker refuses): the message goes to the dead-letter store with Err's text
// as the reason.
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string { return e.Err.Error() }
func (e *PermanentError) Unwrap() error { return e.Err }

// Permanent marks err as permanent; nil stays nil.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// ThrottledError is a destination asking the caller to slow down (HTTP 429).
// Deliver waits After and tries again without spending its retry budget.
// After is zero when the destination did not say how long; Deliver then waits
// its current backoff interval.
type ThrottledError struct {
	After time.Duration
	Err   error
}

func (e *ThrottledError) Error() string {
	if e.After > 0 {
		return fmt.Sprintf("%v (retry after %s)", e.Err, e.After)
	}
	return e.Err.Error()
}
func (e *ThrottledError) Unwrap() error { return e.Err }

// Throttled wraps err as a request to wait after before retrying.
func Throttled(after time.Duration, err error) error {
	if err == nil {
		err = errors.New("throttled")
	}
	return &ThrottledError{After: after, Err: err}
}

// BatchError reports the per-message results of a Send that was not wholly
// delivered. Errs has one entry per message of the batch, in batch order: nil
// for a delivered message, otherwise its failure (Permanent, Throttled, or any
// other error for a retryable one).
type BatchError struct {
	Errs []error
}

// NewBatchError returns a BatchError for a batch of n messages, all delivered
// until Fail says otherwise.
func NewBatchError(n int) *BatchError { return &BatchError{Errs: make([]error, n)} }

// Fail records err as the failure of message i.
func (e *BatchError) Fail(i int, err error) { e.Errs[i] = err }

// Failed reports how many messages failed.
func (e *BatchError) Failed() int {
	n := 0
	for _, err := range e.Errs {
		if err != nil {
			n++
		}
	}
	return n
}

// Err returns e, or nil when no message failed, so a Send can end with
// `return be.Err()`.
func (e *BatchError) Err() error {
	if e.Failed() == 0 {
		return nil
	}
	return e
}

func (e *BatchError) Error() string {
	var first error
	for _, err := range e.Errs {
		if err != nil {
			first = err
			break
		}
	}
	return fmt.Sprintf("%d of %d messages failed, first: %v", e.Failed(), len(e.Errs), first)
}

// Unwrap returns the distinct failures, so errors.Is finds a context error.
func (e *BatchError) Unwrap() []error {
	var out []error
	seen := map[error]bool{}
	for _, err := range e.Errs {
		if err != nil && !seen[err] {
			seen[err] = true
			out = append(out, err)
		}
	}
	return out
}

// Classify tells what err, returned by Send or recorded in a BatchError
// for one message, means for that message. A nil error is Delivered.
func Classify(err error) Outcome {
	if err == nil {
		return Delivered
	}
	var p *PermanentError
	if errors.As(err, &p) {
		return Reject
	}
	return Retry
}

// retryAfter reports whether err is a throttling answer, and how long it
// asked to wait.
func retryAfter(err error) (time.Duration, bool) {
	var t *ThrottledError
	if errors.As(err, &t) {
		return t.After, true
	}
	return 0, false
}

// outcomes expands Send's result into one error per message of batch.
func outcomes(n int, err error) []error {
	errs := make([]error, n)
	if err == nil {
		return errs
	}
	var be *BatchError
	if errors.As(err, &be) && len(be.Errs) == n {
		copy(errs, be.Errs)
		return errs
	}
	for i := range errs {
		errs[i] = err
	}
	return errs
}
