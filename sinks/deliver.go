package sinks

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"github.com/cenkalti/backoff/v5"

	"github.com/linkaud/linkaud/diff"
)

// Outbox is the part of the event outbox delivery needs (implemented by
// *diff.Store). For a Pipeliner destination Deliver calls Pending
// concurrently with Ack and DeadLetter; the writes come one at a time.
type Outbox interface {
	// Pending returns up to max unacknowledged messages of dest with Seq > after, in Seq order.
	Pending(dest string, after uint64, max int) ([]diff.Message, error)
	// Ack deletes delivered messages.
	Ack(dest string, msgs []diff.Message) error
	// DeadLetter moves permanently rejected messages to the dead-letter store with the reason.
	DeadLetter(dest string, msgs []diff.Message, reason string) error
}

// Defaults of DeliverOptions.
const (
	DefaultBatchSize     = 500
	DefaultRateLimit     = 500 // events/s per audience, Segment's limit
	DefaultMaxEventBytes = 32 << 10
	DefaultMaxRetries    = 8
	DefaultMinBackoff    = 500 * time.Millisecond
	DefaultMaxBackoff    = 30 * time.Second
	DefaultMaxThrottle   = 15 * time.Minute
)

// Unlimited as DeliverOptions.RateLimit turns rate limiting off.
var Unlimited = math.Inf(1)

// NoRetries as DeliverOptions.MaxRetries makes a failed batch wait for the
// next Deliver call.
const NoRetries = -1

// DeliverOptions tune Deliver. Zero fields take the defaults named.
type DeliverOptions struct {
	// BatchSize is the most messages per Send; default DefaultBatchSize,
	// lowered to the destination's MaxBatch.
	BatchSize int
	// InFlight is, for a Pipeliner destination, the most messages started
	// and not yet settled (at least one batch); default the destination's
	// InFlight. 1 delivers one batch at a time.
	InFlight int
	// RateLimit is the most events per second per audience; default
	// DefaultRateLimit; Unlimited for none. Ignored when Limiter is set.
	RateLimit float64
	// Limiter carries rate state across Deliver calls (the worker keeps
	// one per destination); default a new one from RateLimit.
	Limiter *RateLimiter
	// MaxEventBytes caps one event's Payload; default
	// DefaultMaxEventBytes; negative for no cap. An event over the cap is
	// not sent: it is logged by messageId, counted in Stats.Dropped, and
	// acknowledged out of the outbox.
	MaxEventBytes int
	// MaxRetries is how many times a failing batch is retried without any
	// progress before Deliver gives up and leaves it in the outbox;
	// default DefaultMaxRetries; NoRetries for none.
	MaxRetries int
	// MinBackoff and MaxBackoff bound the exponential backoff (with
	// jitter) between retries; defaults DefaultMinBackoff, DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxThrottle bounds the total time one Deliver call waits on
	// destinations asking to slow down (HTTP 429); such waits do not spend
	// retries. Default DefaultMaxThrottle.
	MaxThrottle time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger
	// Hooks observe delivery; each may implement any of HookDelivered,
	// HookDropped, HookRetried, HookThrottled, HookDeadLettered.
	Hooks []Hook
}

func (o DeliverOptions) withDefaults(d Destination) DeliverOptions {
	if o.BatchSize <= 0 {
		o.BatchSize = DefaultBatchSize
	}
	if b, ok := d.(Batcher); ok && b.MaxBatch() > 0 && b.MaxBatch() < o.BatchSize {
		o.BatchSize = b.MaxBatch()
	}
	if o.Limiter == nil {
		if o.RateLimit == 0 {
			o.RateLimit = DefaultRateLimit
		}
		o.Limiter = NewRateLimiter(o.RateLimit)
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = DefaultMaxRetries
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = DefaultMinBackoff
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = DefaultMaxBackoff
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = o.MinBackoff
	}
	if o.MaxThrottle <= 0 {
		o.MaxThrottle = DefaultMaxThrottle
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}

// Stats counts what one Deliver call did.
type Stats struct {
	// Delivered messages were acknowledged by the destination and removed
	// from the outbox.
	Delivered int
	// Recovered messages were found already delivered by a Resumer
	// (a crash between delivery and acknowledgement) and removed without
	// sending them again. Not included in Delivered.
	Recovered int
	// Dropped messages were over the size cap: not sent, removed.
	Dropped int
	// DeadLettered messages were rejected permanently and moved to the
	// dead-letter store.
	DeadLettered int
	// Sends counts calls to Destination.Send.
	Sends int
	// Retries counts failed attempts that were retried after a backoff.
	Retries int
	// Throttled counts waits a destination asked for (HTTP 429).
	Throttled int
	// Left is how many messages of the failing batch were left in the
	// outbox when Deliver gave up; later messages are not counted.
	Left int
}

// Errors Deliver returns when it stops early; the undelivered messages stay
// in the outbox for a later call.
var (
	ErrRetriesExhausted = errors.New("sinks: retries exhausted, messages left in the outbox for a later cycle")
	ErrThrottled        = errors.New("sinks: destination kept throttling, messages left in the outbox for a later cycle")
)

// Deliver sends the pending messages of dest to d until the outbox has none
// left, and returns what it did. It is the one delivery loop of linkaud:
//
//   - messages are read in Seq order, BatchSize at a time;
//   - a message over MaxEventBytes is dropped (logged, counted, acked);
//   - each batch waits for the per-audience rate limit, then is sent;
//   - delivered messages are acknowledged, permanently rejected ones are
//     dead-lettered with the reason, and the retryable rest is sent again
//     after an exponential backoff with jitter — before any later message,
//     so a profile's messages are never delivered past an earlier failed
//     one;
//   - a destination that asks to slow down (HTTP 429, Retry-After) is waited
//     for without spending the retry budget, up to MaxThrottle per call;
//   - when the budget runs out Deliver returns ErrRetriesExhausted (or
//     ErrThrottled) and the messages stay in the outbox for the next cycle;
//   - a destination that halts (a refused credential, an unknown account,
//     a missing topic: HaltedError) stops the call at once with a
//     *DestinationHaltedError (matching ErrHalted); nothing is
//     dead-lettered and everything stays in the outbox.
//
// A Pipeliner destination gets the next batches while earlier ones await
// their acknowledgement, and the outbox is written in a goroutine of its
// own; outcomes are still written in Seq order, batch by batch — batches
// that delivered everything and queue up while the outbox syncs are
// acknowledged together, in one write — and after a failure every batch in
// flight is settled and the failed messages of all of them are retried, in
// Seq order, before anything new is started.
//
// A Resumer destination is asked at the start, and after every failed Send,
// which messages it already committed; those are acknowledged unsent.
//
// Deliver returns the context's error if ctx ends. It must not run
// concurrently for the same dest. It returns only once no batch it started
// is still in flight.
func Deliver(ctx context.Context, ob Outbox, dest string, d Destination, opts DeliverOptions) (Stats, error) {
	l := &loop{
		ob:   ob,
		dest: dest,
		d:    d,
		o:    opts.withDefaults(d),
	}
	l.log = l.o.Logger.With("destination", dest)
	if r, ok := d.(Resumer); ok {
		l.resumer = r
		l.needResume = true
	} else if p, ok := d.(Pipeliner); ok {
		return l.st, l.pipeline(ctx, p)
	}
	read := l.reader()
	for {
		send, err := l.next(ctx, read)
		if err != nil || send == nil {
			return l.st, err
		}
		if err := l.deliverBatch(ctx, send, nil); err != nil {
			return l.st, err
		}
	}
}

type loop struct {
	ob      Outbox
	dest    string
	d       Destination
	resumer Resumer
	// needResume: ask the Resumer before the next send.
	needResume bool
	o          DeliverOptions
	log        *slog.Logger
	st         Stats
	// acks, while pipelining, takes the outbox writes off this goroutine.
	acks *acker
}

// next reads the next batch from the outbox with read, drops what is over
// the size cap, and returns the rest. It returns nil when the outbox has
// nothing more, and an empty non-nil batch when everything read was dropped.
func (l *loop) next(ctx context.Context, read func() ([]diff.Message, error)) ([]diff.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	msgs, err := read()
	if err != nil {
		return nil, fmt.Errorf("sinks: reading the outbox of %s: %w", l.dest, err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	send, err := l.dropOversize(msgs)
	if err != nil {
		return nil, err
	}
	if send == nil {
		send = []diff.Message{}
	}
	return send, nil
}

// reader returns a function reading the outbox batch by batch, in Seq order.
func (l *loop) reader() func() ([]diff.Message, error) {
	var after uint64
	return func() ([]diff.Message, error) {
		msgs, err := l.ob.Pending(l.dest, after, l.o.BatchSize)
		if len(msgs) > 0 {
			after = msgs[len(msgs)-1].Seq
		}
		return msgs, err
	}
}

// dropOversize removes messages over the size cap from the outbox (through
// the acker when pipelining) and returns the others.
func (l *loop) dropOversize(msgs []diff.Message) ([]diff.Message, error) {
	if l.o.MaxEventBytes < 0 {
		return msgs, nil
	}
	over := false
	for i := range msgs {
		if len(msgs[i].Payload) > l.o.MaxEventBytes {
			over = true
			break
		}
	}
	if !over {
		return msgs, nil
	}
	var keep []diff.Message
	o := &outcome{}
	for _, m := range msgs {
		if len(m.Payload) > l.o.MaxEventBytes {
			o.dropped = append(o.dropped, m)
		} else {
			keep = append(keep, m)
		}
	}
	if l.acks != nil {
		l.acks.submit(o)
		return keep, nil
	}
	if _, err := l.apply([]*outcome{o}, &l.st); err != nil {
		return nil, err
	}
	return keep, nil
}

// deliverBatch sends batch until every message is delivered, rejected, or the
// retry budget is spent. failed, when not nil, is the outcome of an attempt
// already made (one error per message of batch, all retryable): the batch
// is sent again only after the backoff that failure calls for.
func (l *loop) deliverBatch(ctx context.Context, batch []diff.Message, failed []error) error {
	bo := &backoff.ExponentialBackOff{
		InitialInterval:     l.o.MinBackoff,
		RandomizationFactor: 0.5,
		Multiplier:          2,
		MaxInterval:         l.o.MaxBackoff,
	}
	bo.Reset()
	var (
		pending   = batch
		retryErrs = failed
		failures  int // consecutive attempts without progress
		throttled time.Duration
	)
	for len(pending) > 0 {
		if retryErrs != nil {
			// An attempt made before this call failed.
		} else if l.needResume {
			// Before the first send, and after any failure, a Resumer
			// says what it already committed: the failure may have hidden
			// a commit (a lost EndTxn answer). Nothing is sent until it
			// could say.
			if err := l.resume(ctx, &pending); err != nil {
				retryErrs = []error{err}
			} else {
				l.needResume = false
				continue
			}
		} else {
			var progress bool
			var err error
			pending, retryErrs, progress, err = l.attempt(ctx, pending)
			if err != nil {
				l.st.Left = len(pending)
				return err
			}
			if len(pending) == 0 {
				return nil
			}
			if progress {
				failures = 0
				bo.Reset()
			}
			l.needResume = l.resumer != nil
		}
		errs := retryErrs
		retryErrs = nil
		firstErr := errs[0]
		if err := ctx.Err(); err != nil {
			l.st.Left = len(pending)
			return err
		}
		if h := haltedIn(errs); h != nil {
			// A refused credential or an unknown account: no retry in
			// this pass can help and no event is to blame. Everything
			// stays in the outbox, in order, for a later pass.
			l.st.Left = len(pending)
			l.log.Warn("destination halted; its events stay in the outbox", "reason", h.Reason, "fix", h.Fix, "messages", len(pending))
			for _, hk := range l.o.Hooks {
				if hk, ok := hk.(HookHalted); ok {
					hk.OnHalted(l.dest, h)
				}
			}
			return &DestinationHaltedError{Dest: l.dest, Waiting: len(pending), Halt: h}
		}
		// Throttled when every failure is a request to slow down.
		var wait time.Duration
		allThrottled := true
		for _, e := range errs {
			after, ok := retryAfter(e)
			if !ok {
				allThrottled = false
			}
			wait = max(wait, after)
		}
		if allThrottled {
			if wait <= 0 {
				wait = bo.NextBackOff()
			}
			if throttled+wait > l.o.MaxThrottle {
				l.st.Left = len(pending)
				return fmt.Errorf("%w: %s asked to wait %s after %s of waiting: %v", ErrThrottled, l.dest, wait, throttled, firstErr)
			}
			throttled += wait
			l.st.Throttled++
			l.log.Info("destination asked to slow down", "wait", wait, "messages", len(pending), "error", firstErr)
			for _, h := range l.o.Hooks {
				if h, ok := h.(HookThrottled); ok {
					h.OnThrottled(l.dest, pending, wait)
				}
			}
		} else {
			failures++
			if l.o.MaxRetries < 0 || failures > l.o.MaxRetries {
				l.st.Left = len(pending)
				return fmt.Errorf("%w: %d messages of %s after %d attempts, last error: %v",
					ErrRetriesExhausted, len(pending), l.dest, failures, firstErr)
			}
			wait = max(wait, bo.NextBackOff())
			l.st.Retries++
			l.log.Warn("delivery failed, retrying", "attempt", failures, "wait", wait,
				"messages", len(pending), "first_message_id", pending[0].ID, "error", firstErr)
			for _, h := range l.o.Hooks {
				if h, ok := h.(HookRetried); ok {
					h.OnRetried(l.dest, pending, failures, wait, firstErr)
				}
			}
		}
		if err := sleep(ctx, wait); err != nil {
			l.st.Left = len(pending)
			return err
		}
	}
	return nil
}

// attempt sends pending once, acknowledges what was delivered, dead-letters
// what was rejected, and returns the messages to retry with their errors.
// progress reports whether anything was delivered or rejected; err is an
// outbox or context failure that ends the call.
func (l *loop) attempt(ctx context.Context, pending []diff.Message) (retry []diff.Message, retryErrs []error, progress bool, err error) {
	if err := l.o.Limiter.Wait(ctx, pending); err != nil {
		return pending, nil, false, err
	}
	l.st.Sends++
	return l.settle(pending, l.d.Send(ctx, pending))
}

// settle acknowledges what of pending sendErr (Send's result) says was
// delivered, dead-letters what was rejected, and returns the messages to
// retry with their errors.
func (l *loop) settle(pending []diff.Message, sendErr error) (retry []diff.Message, retryErrs []error, progress bool, err error) {
	o := classify(pending, sendErr)
	if left, err := l.apply([]*outcome{o}, &l.st); err != nil {
		return append(o.retry, left...), nil, false, err
	}
	return o.retry, o.retryErrs, len(o.delivered) > 0 || len(o.rejected) > 0, nil
}

// outcome is what became of a batch, sorted out for the outbox.
type outcome struct {
	dropped   []diff.Message // over the size cap: removed unsent
	delivered []diff.Message
	rejected  []rejection // by reason, in order of first appearance
	retry     []diff.Message
	retryErrs []error
}

type rejection struct {
	reason string
	msgs   []diff.Message
}

// onlyDelivered reports whether o is a plain delivery, which the acker may
// acknowledge together with its neighbours.
func (o *outcome) onlyDelivered() bool {
	return len(o.dropped) == 0 && len(o.rejected) == 0
}

// classify sorts pending by sendErr (Send's result).
func classify(pending []diff.Message, sendErr error) *outcome {
	if sendErr == nil {
		return &outcome{delivered: pending}
	}
	o := &outcome{}
	errs := outcomes(len(pending), sendErr)
	for i, m := range pending {
		switch Classify(errs[i]) {
		case Delivered:
			o.delivered = append(o.delivered, m)
		case Reject:
			reason := errs[i].Error()
			j := slices.IndexFunc(o.rejected, func(r rejection) bool { return r.reason == reason })
			if j < 0 {
				j = len(o.rejected)
				o.rejected = append(o.rejected, rejection{reason: reason})
			}
			o.rejected[j].msgs = append(o.rejected[j].msgs, m)
		default:
			o.retry = append(o.retry, m)
			o.retryErrs = append(o.retryErrs, errs[i])
		}
	}
	return o
}

// apply writes outcomes to the outbox, in order — the plain deliveries of
// consecutive outcomes in one acknowledgement — tells the hooks, and counts
// in st. On an outbox failure it stops and returns the messages it left.
func (l *loop) apply(os []*outcome, st *Stats) (left []diff.Message, err error) {
	if len(os) > 1 {
		n := 0
		for _, o := range os {
			n += len(o.delivered)
		}
		all := make([]diff.Message, 0, n)
		for _, o := range os {
			all = append(all, o.delivered...)
		}
		if len(all) == 0 {
			return nil, nil
		}
		if err := l.ob.Ack(l.dest, all); err != nil {
			return all, fmt.Errorf("sinks: acknowledging %d delivered messages of %s: %w", len(all), l.dest, err)
		}
		for _, o := range os {
			l.delivered(o.delivered, st)
		}
		return nil, nil
	}
	o := os[0]
	// unwritten lists what is still in the outbox from step i on.
	unwritten := func(i int) []diff.Message {
		var out []diff.Message
		if i == 0 {
			out = append(out, o.dropped...)
		}
		if i <= 1 {
			out = append(out, o.delivered...)
		}
		for _, r := range o.rejected[max(0, i-2):] {
			out = append(out, r.msgs...)
		}
		return out
	}
	if len(o.dropped) > 0 {
		if err := l.ob.Ack(l.dest, o.dropped); err != nil {
			return unwritten(0), fmt.Errorf("sinks: removing %d oversize messages of %s: %w", len(o.dropped), l.dest, err)
		}
		for _, m := range o.dropped {
			l.log.Warn("event over the size cap not sent", "message_id", m.ID, "audience", m.Audience,
				"event", m.Event, "bytes", len(m.Payload), "max_bytes", l.o.MaxEventBytes)
			for _, h := range l.o.Hooks {
				if h, ok := h.(HookDropped); ok {
					h.OnDropped(l.dest, m, len(m.Payload))
				}
			}
		}
		st.Dropped += len(o.dropped)
	}
	if len(o.delivered) > 0 {
		if err := l.ob.Ack(l.dest, o.delivered); err != nil {
			return unwritten(1), fmt.Errorf("sinks: acknowledging %d delivered messages of %s: %w", len(o.delivered), l.dest, err)
		}
		l.delivered(o.delivered, st)
	}
	for i, r := range o.rejected {
		if err := l.ob.DeadLetter(l.dest, r.msgs, r.reason); err != nil {
			return unwritten(2 + i), fmt.Errorf("sinks: dead-lettering %d messages of %s: %w", len(r.msgs), l.dest, err)
		}
		st.DeadLettered += len(r.msgs)
		l.log.Warn("messages rejected by the destination, moved to the dead-letter store",
			"count", len(r.msgs), "first_message_id", r.msgs[0].ID, "reason", r.reason)
		for _, h := range l.o.Hooks {
			if h, ok := h.(HookDeadLettered); ok {
				h.OnDeadLettered(l.dest, r.msgs, r.reason)
			}
		}
	}
	return nil, nil
}

// delivered counts acknowledged messages and tells the hooks.
func (l *loop) delivered(msgs []diff.Message, st *Stats) {
	if len(msgs) == 0 {
		return
	}
	st.Delivered += len(msgs)
	for _, h := range l.o.Hooks {
		if h, ok := h.(HookDelivered); ok {
			h.OnDelivered(l.dest, msgs)
		}
	}
}

// resume asks the Resumer which messages it already committed and
// acknowledges them. The record is trusted only when the message it names
// (Seq and ID) is still pending: otherwise either everything up to it was
// acknowledged already, or the outbox was recreated and its Seqs mean
// something else. Recovered messages are removed from pending.
func (l *loop) resume(ctx context.Context, pending *[]diff.Message) error {
	seq, id, ok, err := l.resumer.Committed(ctx)
	if err != nil {
		return fmt.Errorf("sinks: reading the delivery progress of %s: %w", l.dest, err)
	}
	if !ok || seq == 0 {
		return nil
	}
	probe, err := l.ob.Pending(l.dest, seq-1, 1)
	if err != nil {
		return fmt.Errorf("sinks: reading the outbox of %s: %w", l.dest, err)
	}
	if len(probe) == 0 || probe[0].Seq != seq || probe[0].ID != id {
		return nil
	}
	n := 0
	for {
		msgs, err := l.ob.Pending(l.dest, 0, l.o.BatchSize)
		if err != nil {
			return fmt.Errorf("sinks: reading the outbox of %s: %w", l.dest, err)
		}
		i, _ := slices.BinarySearchFunc(msgs, seq+1, func(m diff.Message, s uint64) int { return cmp.Compare(m.Seq, s) })
		if i == 0 {
			break
		}
		if err := l.ob.Ack(l.dest, msgs[:i]); err != nil {
			return fmt.Errorf("sinks: acknowledging %d already delivered messages of %s: %w", i, l.dest, err)
		}
		for _, h := range l.o.Hooks {
			if h, ok := h.(HookDelivered); ok {
				h.OnDelivered(l.dest, msgs[:i])
			}
		}
		n += i
	}
	if n > 0 {
		l.st.Recovered += n
		l.log.Info("acknowledged messages the destination had already committed", "count", n, "through_seq", seq)
	}
	*pending = slices.DeleteFunc(*pending, func(m diff.Message) bool { return m.Seq <= seq })
	return nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Hook is any value implementing one or more of the Hook* interfaces; Deliver
// finds them by type assertion, as franz-go does. Hooks are called from the
// delivery loop, one at a time (for a Pipeliner destination, those after
// outbox writes from the goroutine writing the outbox): they must be fast
// and must not keep the slices they are given.
type Hook any

// HookDelivered is called with messages acknowledged as delivered.
type HookDelivered interface {
	OnDelivered(dest string, msgs []diff.Message)
}

// HookDropped is called for a message over the size cap.
type HookDropped interface {
	OnDropped(dest string, msg diff.Message, bytes int)
}

// HookRetried is called before a failed batch is retried.
type HookRetried interface {
	OnRetried(dest string, msgs []diff.Message, attempt int, wait time.Duration, err error)
}

// HookThrottled is called before waiting on a destination that asked to
// slow down.
type HookThrottled interface {
	OnThrottled(dest string, msgs []diff.Message, wait time.Duration)
}

// HookHalted is called when a destination halts (see HaltedError).
type HookHalted interface {
	OnHalted(dest string, h *HaltedError)
}

// HookDeadLettered is called with messages moved to the dead-letter store.
type HookDeadLettered interface {
	OnDeadLettered(dest string, msgs []diff.Message, reason string)
}
