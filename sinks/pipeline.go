package sinks

import (
	"context"
	"sync/atomic"

	"github.com/linkaud/linkaud/diff"
)

// flight is a batch a Pipeliner has started.
type flight struct {
	batch []diff.Message
	wait  func() error
}

// pipeline is Deliver for a Pipeliner. A reader goroutine reads the outbox
// a couple of batches ahead; this goroutine keeps up to InFlight messages
// started (at least one batch), waits for the oldest batch whenever the
// window is full or the outbox is drained, and hands its outcome to the
// acker, which writes the outbox in a goroutine of its own: the sync of one
// acknowledgement overlaps reading and producing the next batches. Outcomes
// reach the outbox in the order the batches were started, so the outbox is
// acknowledged in Seq order, as in the sequential loop: a crash re-sends
// what was in flight or not yet acknowledged, and skips nothing.
//
// After a failure, every batch in flight is waited for and handed to the
// acker (what they delivered is acknowledged); once the acker has written
// all of it, the failed messages of all those batches are retried in Seq
// order, one batch at a time through deliverBatch, before anything new is
// started.
func (l *loop) pipeline(ctx context.Context, p Pipeliner) (err error) {
	window := l.o.InFlight
	if window <= 0 {
		window = p.InFlight()
	}
	a := &acker{l: l, jobs: make(chan ackJob, window/l.o.BatchSize+2), max: max(window, l.o.BatchSize)}
	go a.run()
	l.acks = a
	read, stopReading := l.readAhead()
	var queue []flight
	defer func() {
		stopReading()
		// Nothing started is left in flight when Deliver returns: a
		// later call must not overtake it. What those batches delivered
		// stays in the outbox and is sent again with the same ids.
		for _, f := range queue {
			_ = f.wait()
		}
		l.acks = nil
		if aerr := a.stop(); err == nil {
			err = aerr
		}
	}()
	var (
		started int // messages in queue
		drained bool
	)
	for {
		if a.failed.Load() {
			return nil // the acker's error is returned
		}
		for !drained && (len(queue) == 0 || started < window) {
			send, err := l.next(ctx, read)
			if err != nil {
				return err
			}
			if send == nil {
				drained = true
				break
			}
			if len(send) == 0 {
				continue
			}
			if err := l.o.Limiter.Wait(ctx, send); err != nil {
				return err
			}
			l.st.Sends++
			queue = append(queue, flight{batch: send, wait: p.Start(ctx, send)})
			started += len(send)
		}
		if len(queue) == 0 {
			return nil
		}
		f := queue[0]
		queue = queue[1:]
		started -= len(f.batch)
		o := classify(f.batch, f.wait())
		a.submit(o)
		if len(o.retry) == 0 {
			continue
		}
		// The batches still in flight may hold later messages of the
		// failed messages' profiles, which the destination failed too.
		retry, retryErrs := o.retry, o.retryErrs
		for len(queue) > 0 {
			f := queue[0]
			queue = queue[1:]
			o := classify(f.batch, f.wait())
			a.submit(o)
			retry = append(retry, o.retry...)
			retryErrs = append(retryErrs, o.retryErrs...)
		}
		started = 0
		if err := a.sync(); err != nil {
			return nil // the acker's error is returned
		}
		// The acker is idle until the retries are through: they write
		// the outbox from this goroutine.
		l.acks = nil
		for len(retry) > 0 {
			n := min(len(retry), l.o.BatchSize)
			var errs []error
			if retryErrs != nil {
				errs = retryErrs[:n]
				retryErrs = nil
			}
			if err := l.deliverBatch(ctx, retry[:n], errs); err != nil {
				return err
			}
			retry = retry[n:]
		}
		l.acks = a
	}
}

// readAhead reads the outbox in a goroutine of its own, a couple of batches
// ahead of read, which returns them in Seq order. Reading only reads: what
// to drop, send and acknowledge is still decided by the loop. stop ends the
// goroutine and waits for it.
func (l *loop) readAhead() (read func() ([]diff.Message, error), stop func()) {
	type result struct {
		msgs []diff.Message
		err  error
	}
	results := make(chan result, 2)
	quit := make(chan struct{})
	go func() {
		defer close(results)
		next := l.reader()
		for {
			msgs, err := next()
			select {
			case results <- result{msgs, err}:
			case <-quit:
				return
			}
			if err != nil || len(msgs) == 0 {
				return
			}
		}
	}()
	read = func() ([]diff.Message, error) {
		r, ok := <-results
		if !ok {
			return nil, nil
		}
		return r.msgs, r.err
	}
	stop = func() {
		close(quit)
		for range results {
		}
	}
	return read, stop
}

// acker writes outcomes to the outbox in a goroutine of its own, in the
// order they were submitted. Outcomes that queue up while it writes are
// written together: the plain deliveries of consecutive batches in one
// acknowledgement (one sync), up to max messages. After an outbox failure it
// writes nothing more: the rest stays in the outbox and is sent again.
// Hooks run on its goroutine while it works; sync and stop hand over to the
// caller, so hooks never run concurrently.
type acker struct {
	l    *loop
	jobs chan ackJob
	max  int

	failed atomic.Bool // err is set
	// Owned by run; read by the caller after a barrier.
	st   Stats
	err  error
	left int
}

type ackJob struct {
	o *outcome
	// barrier, when set, is closed once everything before it was written.
	barrier chan struct{}
	stop    bool
}

func (a *acker) submit(o *outcome) { a.jobs <- ackJob{o: o} }

// sync waits until everything submitted is written, adds the acker's counts
// to the loop's, and returns its error.
func (a *acker) sync() error { return a.barrier(false) }

// stop is sync, and ends the goroutine.
func (a *acker) stop() error { return a.barrier(true) }

func (a *acker) barrier(stop bool) error {
	b := make(chan struct{})
	a.jobs <- ackJob{barrier: b, stop: stop}
	<-b
	st := &a.l.st
	st.Delivered += a.st.Delivered
	st.Dropped += a.st.Dropped
	st.DeadLettered += a.st.DeadLettered
	a.st = Stats{}
	if a.err != nil {
		st.Left = a.left
	}
	return a.err
}

func (a *acker) run() {
	var queue []ackJob
	for {
		queue = append(queue[:0], <-a.jobs)
	more:
		for {
			select {
			case j := <-a.jobs:
				queue = append(queue, j)
			default:
				break more
			}
		}
		for i := 0; i < len(queue); {
			j := queue[i]
			if j.barrier != nil {
				close(j.barrier)
				if j.stop {
					return
				}
				i++
				continue
			}
			k, n := i+1, len(j.o.delivered)
			if j.o.onlyDelivered() {
				for k < len(queue) && queue[k].o != nil && queue[k].o.onlyDelivered() && n+len(queue[k].o.delivered) <= a.max {
					n += len(queue[k].o.delivered)
					k++
				}
			}
			if a.err == nil {
				group := make([]*outcome, 0, k-i)
				for _, j := range queue[i:k] {
					group = append(group, j.o)
				}
				if left, err := a.l.apply(group, &a.st); err != nil {
					a.err, a.left = err, len(left)
					a.failed.Store(true)
				}
			}
			i = k
		}
	}
}
