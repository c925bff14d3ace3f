package sinktest

import (
	"cmp"
	"fmt"
	"slices"
	"sync"

	"github.com/linkaud/linkaud/diff"
)

// Outbox is an in-memory sinks.Outbox with the contract's semantics
// (Pending in Seq order after a cursor, Ack deletes, DeadLetter moves with a
// reason). It stands in for *diff.Store in the sinks tests and records what
// the delivery loop did to it. Safe for concurrent use.
type Outbox struct {
	mu      sync.Mutex
	pending map[string][]diff.Message // sorted by Seq
	nextSeq map[string]uint64
	acked   map[string][][]diff.Message // in Ack order, one slice per call
	dead    map[string][]DeadLetter
	failAck []error // injected Ack failures, consumed one per call
}

// DeadLetter is a message moved to the dead-letter store.
type DeadLetter struct {
	Msg    diff.Message
	Reason string
}

// NewOutbox returns an empty outbox.
func NewOutbox() *Outbox {
	return &Outbox{
		pending: map[string][]diff.Message{},
		nextSeq: map[string]uint64{},
		acked:   map[string][][]diff.Message{},
		dead:    map[string][]DeadLetter{},
	}
}

// Append adds messages to dest's outbox, giving each the next Seq (a Seq set
// by the caller is replaced: Seqs are the outbox's to assign). It returns the
// messages as stored.
func (o *Outbox) Append(dest string, msgs ...diff.Message) []diff.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]diff.Message, len(msgs))
	for i, m := range msgs {
		o.nextSeq[dest]++
		m.Seq = o.nextSeq[dest]
		m.Destination = dest
		o.pending[dest] = append(o.pending[dest], m)
		out[i] = m
	}
	return out
}

// Pending implements sinks.Outbox.
func (o *Outbox) Pending(dest string, after uint64, max int) ([]diff.Message, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	p := o.pending[dest]
	i, _ := slices.BinarySearchFunc(p, after+1, func(m diff.Message, s uint64) int { return cmp.Compare(m.Seq, s) })
	j := min(len(p), i+max)
	return slices.Clone(p[i:j]), nil
}

// Ack implements sinks.Outbox. An injected failure (FailAck) makes it
// change nothing and return the error, as a failed Pebble write would.
func (o *Outbox) Ack(dest string, msgs []diff.Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.failAck) > 0 {
		err := o.failAck[0]
		o.failAck = o.failAck[1:]
		if err != nil {
			return err
		}
	}
	removed, err := o.remove(dest, msgs)
	if err != nil {
		return err
	}
	o.acked[dest] = append(o.acked[dest], removed)
	return nil
}

// DeadLetter implements sinks.Outbox.
func (o *Outbox) DeadLetter(dest string, msgs []diff.Message, reason string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	removed, err := o.remove(dest, msgs)
	if err != nil {
		return err
	}
	for _, m := range removed {
		o.dead[dest] = append(o.dead[dest], DeadLetter{Msg: m, Reason: reason})
	}
	return nil
}

// remove deletes msgs (by Seq) from dest's pending list. Removing a message
// that is not pending is an error: the loop must not acknowledge twice.
func (o *Outbox) remove(dest string, msgs []diff.Message) ([]diff.Message, error) {
	p := o.pending[dest]
	// The loop mostly acknowledges the oldest messages, in order: drop
	// that prefix without a map, and without moving the rest.
	if len(msgs) <= len(p) {
		prefix := true
		for i := range msgs {
			if msgs[i].Seq != p[i].Seq || msgs[i].ID != p[i].ID {
				prefix = false
				break
			}
		}
		if prefix {
			removed := p[:len(msgs):len(msgs)]
			o.pending[dest] = p[len(msgs):]
			return removed, nil
		}
	}
	gone := make(map[uint64]bool, len(msgs))
	removed := make([]diff.Message, 0, len(msgs))
	for _, m := range msgs {
		i, found := slices.BinarySearchFunc(p, m.Seq, func(x diff.Message, s uint64) int { return cmp.Compare(x.Seq, s) })
		if !found || gone[m.Seq] {
			return nil, fmt.Errorf("sinktest: message seq %d (%s) of %s is not pending", m.Seq, m.ID, dest)
		}
		if p[i].ID != m.ID {
			return nil, fmt.Errorf("sinktest: message seq %d has id %s, not %s", m.Seq, p[i].ID, m.ID)
		}
		gone[m.Seq] = true
		removed = append(removed, p[i])
	}
	k := 0
	for k < len(p) && gone[p[k].Seq] {
		k++
	}
	if k == len(gone) {
		o.pending[dest] = p[k:]
	} else {
		o.pending[dest] = slices.DeleteFunc(p, func(x diff.Message) bool { return gone[x.Seq] })
	}
	return removed, nil
}

// FailAck makes the next len(errs) Ack calls fail with errs in turn; a nil
// entry lets its call succeed.
func (o *Outbox) FailAck(errs ...error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failAck = append(o.failAck, errs...)
}

// Len is the number of pending messages of dest.
func (o *Outbox) Len(dest string) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.pending[dest])
}

// PendingAll returns every pending message of dest.
func (o *Outbox) PendingAll(dest string) []diff.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.pending[dest])
}

// Acked returns the messages acknowledged for dest, in acknowledgement order.
func (o *Outbox) Acked(dest string) []diff.Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Concat(o.acked[dest]...)
}

// DeadLetters returns the messages dead-lettered for dest.
func (o *Outbox) DeadLetters(dest string) []DeadLetter {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.dead[dest])
}

// Retry moves dead letters of dest back to the outbox, after everything
// pending, with their messageIds, as diff.Store.RetryDeadLetters does for
// `linkaud deadletters retry`; ids nil retries them all. It returns how
// many it moved.
func (o *Outbox) Retry(dest string, ids []string) (int, error) {
	o.mu.Lock()
	var keep []DeadLetter
	var back []diff.Message
	for _, d := range o.dead[dest] {
		if ids == nil || slices.Contains(ids, d.Msg.ID) {
			back = append(back, d.Msg)
		} else {
			keep = append(keep, d)
		}
	}
	o.dead[dest] = keep
	o.mu.Unlock()
	o.Append(dest, back...)
	return len(back), nil
}
