package sinktest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/sinks"
)

// Target is one destination under test and handles on its far side. The
// fault injectors are optional; cases needing one the destination lacks are
// skipped.
type Target struct {
	Dest sinks.Destination
	// Received returns the messageIds the far side holds, in arrival order,
	// duplicates included.
	Received func(t testing.TB) []string
	// Fail makes the far side fail the next n deliveries in a way worth
	// retrying (HTTP 503, a retriable broker error).
	Fail func(n int)
	// Throttle makes the far side answer the next n deliveries with "slow
	// down" (HTTP 429 with Retry-After).
	Throttle func(n int)
	// Reject makes the far side permanently refuse the next delivery (HTTP
	// 400, a record the broker rejects).
	Reject func()
	// Outage takes the far side down; restore brings it back with what it
	// had received.
	Outage func(t testing.TB) (restore func())
	// Options adjusts the delivery options of every case, e.g. a batch
	// limit.
	Options func(*sinks.DeliverOptions)
}

// FastOptions are delivery options for tests: millisecond backoffs, no rate
// limit.
func FastOptions() sinks.DeliverOptions {
	return sinks.DeliverOptions{
		MinBackoff:  time.Millisecond,
		MaxBackoff:  20 * time.Millisecond,
		RateLimit:   sinks.Unlimited,
		MaxThrottle: time.Minute,
	}
}

const dest = "under_test"

// Run runs the shared named cases every destination's tests run, in the
// manner of Benthos's integration stream tests. open must return a new
// destination whose far side starts empty.
func Run(t *testing.T, open func(t *testing.T) *Target) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := open(t)
			t.Cleanup(func() {
				if err := tg.Dest.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			if c.needs != nil && !c.needs(tg) {
				t.Skip("destination has no fault injector for this case")
			}
			c.run(t, tg)
		})
	}
}

func (tg *Target) opts() sinks.DeliverOptions {
	o := FastOptions()
	if tg.Options != nil {
		tg.Options(&o)
	}
	return o
}

type testCase struct {
	name  string
	needs func(*Target) bool
	run   func(t *testing.T, tg *Target)
}

var cases = []testCase{
	{name: "empty outbox", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		st, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, tg.opts())
		if err != nil || st != (sinks.Stats{}) {
			t.Fatalf("Deliver = %+v, %v; want nothing done", st, err)
		}
		if got := tg.Received(t); len(got) != 0 {
			t.Fatalf("far side received %v", got)
		}
	}},
	{name: "single message", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 1, PerProfile: 1})...)
		deliverAll(t, tg, ob, msgs, tg.opts())
	}},
	{name: "many batches in order", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 37, PerProfile: 6, Audiences: []string{"a1", "a2", "a3"}})...)
		o := tg.opts()
		if o.BatchSize == 0 || o.BatchSize > 23 {
			o.BatchSize = 23
		}
		st := deliverAll(t, tg, ob, msgs, o)
		if dups := len(tg.Received(t)) - len(msgs); dups != 0 {
			t.Errorf("%d duplicates without any failure", dups)
		}
		if st.Sends < len(msgs)/23 {
			t.Errorf("only %d sends for %d messages in batches of 23", st.Sends, len(msgs))
		}
	}},
	{name: "acknowledgement lost redelivers same ids", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 5, PerProfile: 3})...)
		ob.FailAck(errors.New("disk full"))
		if _, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, tg.opts()); err == nil || !strings.Contains(err.Error(), "disk full") {
			t.Fatalf("Deliver with a failing outbox = %v; want the outbox error", err)
		}
		if ob.Len(dest) != len(msgs) {
			t.Fatalf("%d pending after a failed Ack; want all %d", ob.Len(dest), len(msgs))
		}
		deliverAll(t, tg, ob, msgs, tg.opts())
	}},
	{name: "retryable failures recover", needs: func(tg *Target) bool { return tg.Fail != nil }, run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 20, PerProfile: 4})...)
		tg.Fail(3)
		o := tg.opts()
		o.MaxRetries = 10
		st := deliverAll(t, tg, ob, msgs, o)
		if st.Retries == 0 {
			t.Errorf("Stats.Retries = 0 after injected failures: %+v", st)
		}
	}},
	{name: "throttling does not spend retries", needs: func(tg *Target) bool { return tg.Throttle != nil }, run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 10, PerProfile: 3})...)
		tg.Throttle(4)
		o := tg.opts()
		o.MaxRetries = sinks.NoRetries
		st := deliverAll(t, tg, ob, msgs, o)
		if st.Throttled == 0 || st.Retries != 0 {
			t.Errorf("Stats = %+v; want throttle waits and no retries", st)
		}
	}},
	{name: "permanent rejection dead-letters", needs: func(tg *Target) bool { return tg.Reject != nil }, run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 6, PerProfile: 2})...)
		tg.Reject()
		st, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, tg.opts())
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		dead := ob.DeadLetters(dest)
		if len(dead) == 0 || st.DeadLettered != len(dead) {
			t.Fatalf("dead letters %d, Stats %+v; want some", len(dead), st)
		}
		for _, d := range dead {
			if d.Reason == "" {
				t.Errorf("dead letter %s has no reason", d.Msg.ID)
			}
		}
		if st.Delivered+st.DeadLettered != len(msgs) || ob.Len(dest) != 0 {
			t.Errorf("Stats %+v, %d pending; want every message delivered or dead-lettered", st, ob.Len(dest))
		}
		got := map[string]bool{}
		for _, id := range tg.Received(t) {
			got[id] = true
		}
		for _, d := range dead {
			if got[d.Msg.ID] {
				t.Errorf("dead-lettered message %s was also received", d.Msg.ID)
			}
		}
		checkAcked(t, tg, ob, msgs)
	}},
	{name: "outage then recovery", needs: func(tg *Target) bool { return tg.Outage != nil }, run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 15, PerProfile: 4})...)
		restore := tg.Outage(t)
		o := tg.opts()
		o.MaxRetries = 2
		st, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, o)
		if !errors.Is(err, sinks.ErrRetriesExhausted) {
			t.Fatalf("Deliver during an outage = %+v, %v; want ErrRetriesExhausted", st, err)
		}
		if ob.Len(dest) == 0 || st.Left == 0 {
			t.Fatalf("outbox emptied during an outage (Stats %+v)", st)
		}
		restore()
		deliverAll(t, tg, ob, msgs, tg.opts())
	}},
	{name: "oversize events dropped", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		small := ob.Append(dest, Messages(GenOptions{Profiles: 4, PerProfile: 2})...)
		big := ob.Append(dest, Messages(GenOptions{Profiles: 2, PerProfile: 1, Audiences: []string{"big"}, Pad: 4000})...)
		o := tg.opts()
		o.MaxEventBytes = 2000
		st, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, o)
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if st.Dropped != len(big) || st.Delivered != len(small) || ob.Len(dest) != 0 {
			t.Fatalf("Stats %+v, %d pending; want %d dropped, %d delivered, none pending", st, ob.Len(dest), len(big), len(small))
		}
		got := tg.Received(t)
		for _, id := range got {
			for _, b := range big {
				if id == b.ID {
					t.Errorf("oversize message %s was sent", id)
				}
			}
		}
		CheckReceived(t, small, got, small)
	}},
	{name: "cancelled context sends nothing", run: func(t *testing.T, tg *Target) {
		ob := NewOutbox()
		msgs := ob.Append(dest, Messages(GenOptions{Profiles: 3, PerProfile: 2})...)
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		if _, err := sinks.Deliver(ctx, ob, dest, tg.Dest, tg.opts()); !errors.Is(err, context.Canceled) {
			t.Fatalf("Deliver = %v; want context.Canceled", err)
		}
		if ob.Len(dest) != len(msgs) {
			t.Fatalf("%d pending; want all %d", ob.Len(dest), len(msgs))
		}
		if got := tg.Received(t); len(got) != 0 {
			t.Fatalf("far side received %v", got)
		}
	}},
}

// deliverAll runs Deliver until the outbox is empty (at most a few calls, as
// later cycles would) and checks that every message arrived, in per-profile
// order, and that nothing was acknowledged without arriving.
func deliverAll(t *testing.T, tg *Target, ob *Outbox, msgs []diff.Message, o sinks.DeliverOptions) sinks.Stats {
	t.Helper()
	var total sinks.Stats
	for call := 0; ob.Len(dest) > 0; call++ {
		if call == 5 {
			t.Fatalf("%d messages still pending after %d Deliver calls", ob.Len(dest), call)
		}
		st, err := sinks.Deliver(context.Background(), ob, dest, tg.Dest, o)
		total.Delivered += st.Delivered
		total.Recovered += st.Recovered
		total.Dropped += st.Dropped
		total.DeadLettered += st.DeadLettered
		total.Sends += st.Sends
		total.Retries += st.Retries
		total.Throttled += st.Throttled
		if err != nil {
			t.Logf("Deliver call %d: %v", call, err)
		}
	}
	if total.Delivered+total.Recovered != len(msgs) || total.DeadLettered != 0 {
		t.Errorf("Stats %+v; want %d delivered", total, len(msgs))
	}
	checkAcked(t, tg, ob, msgs)
	CheckReceived(t, msgs, tg.Received(t), msgs)
	return total
}

// checkAcked verifies that no message was acknowledged without arriving.
func checkAcked(t *testing.T, tg *Target, ob *Outbox, msgs []diff.Message) {
	t.Helper()
	got := map[string]bool{}
	for _, id := range tg.Received(t) {
		got[id] = true
	}
	for _, m := range ob.Acked(dest) {
		if !got[m.ID] {
			t.Errorf("message %s acknowledged but never arrived", m.ID)
		}
	}
	CheckReceived(t, msgs, tg.Received(t), nil)
}
