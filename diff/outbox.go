package diff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// The outbox. A cycle stages its events under its own id (tEvent cycle dest
// idx); its final batch adds, per destination, an index entry (tIndex dest
// commit → cycle, remaining) with the next commit number. Only indexed
// events are pending, so a cycle's events appear all at once with the new
// generation, and a message's Seq (commit<<32 | idx) is larger than every
// Seq visible before it, whatever the order cycles of different audiences
// started in.

// indexEntry is the decoded value of an outbox index entry: the cycle the
// events are stored under, how many are still pending, and — so that an
// acknowledgement of the oldest pending run needs no read of the events —
// total, the events the entry was written with (idx 0..total-1; 0 in
// entries written before it was recorded), and first, below which every
// idx is acknowledged. The events are a dense run first..total-1 exactly
// when remaining == total-first.
type indexEntry struct {
	cycle     uint64
	remaining uint64
	first     uint64
	total     uint64
}

// newIndexEntry is the entry of n events stored under cycle, idx 0..n-1.
func newIndexEntry(cycle uint64, n uint64) indexEntry {
	return indexEntry{cycle: cycle, remaining: n, total: n}
}

func decodeIndex(v []byte) (indexEntry, error) {
	if len(v) < 9 {
		return indexEntry{}, errBadValue
	}
	e := indexEntry{cycle: binary.BigEndian.Uint64(v)}
	rest := v[8:]
	var n int
	if e.remaining, n = binary.Uvarint(rest); n <= 0 {
		return indexEntry{}, errBadValue
	}
	rest = rest[n:]
	if len(rest) == 0 {
		return e, nil // written before first and total were
	}
	if e.first, n = binary.Uvarint(rest); n <= 0 {
		return indexEntry{}, errBadValue
	}
	if e.total, n = binary.Uvarint(rest[n:]); n <= 0 || e.first > e.total || e.remaining > e.total-e.first {
		return indexEntry{}, errBadValue
	}
	return e, nil
}

func (e indexEntry) encode() []byte {
	v := binary.AppendUvarint(binary.BigEndian.AppendUint64(nil, e.cycle), e.remaining)
	if e.total == 0 {
		return v
	}
	return binary.AppendUvarint(binary.AppendUvarint(v, e.first), e.total)
}

// dense reports whether the pending events are exactly idx first..total-1.
func (e indexEntry) dense() bool { return e.total > 0 && e.remaining == e.total-e.first }

// Pending returns up to max unacknowledged messages of dest with Seq >
// after, in Seq order. It implements sinks.Outbox.
func (s *Store) Pending(dest string, after uint64, max int) (_ []Message, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	if max <= 0 {
		return nil, nil
	}
	ip := indexPrefix(dest)
	// Only what is on disk: see durableCommit.
	durable := s.durableCommit.Load()
	idxIt, err := s.db.NewIter(&pebble.IterOptions{LowerBound: ip, UpperBound: indexKey(dest, durable+1)})
	if err != nil {
		return nil, err
	}
	defer idxIt.Close()
	evIt, err := s.db.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer evIt.Close()
	afterCommit, afterIdx := splitSeq(after)
	out := make([]Message, 0, min(max, 4096))
	names := interner{}
	var arena payloadArena
	tmpl := s.templates()
	for ok := idxIt.SeekGE(indexKey(dest, afterCommit)); ok && len(out) < max; ok = idxIt.Next() {
		k := idxIt.Key()
		if len(k) != len(ip)+8 {
			return nil, errBadKey
		}
		commit := binary.BigEndian.Uint64(k[len(ip):])
		v, err := idxIt.ValueAndErr()
		if err != nil {
			return nil, err
		}
		e, err := decodeIndex(v)
		if err != nil {
			return nil, err
		}
		var start uint32
		if commit == afterCommit {
			if afterIdx == 1<<32-1 {
				continue
			}
			start = afterIdx + 1
		}
		render, err := tmpl.renderer(e.cycle, dest)
		if err != nil {
			return nil, err
		}
		ep := eventPrefix(e.cycle, dest)
		evIt.SetBounds(eventKey(e.cycle, dest, start), prefixEnd(ep))
		for ok := evIt.First(); ok && len(out) < max; ok = evIt.Next() {
			ek := evIt.Key()
			if len(ek) != len(ep)+4 {
				return nil, errBadKey
			}
			ev, err := evIt.ValueAndErr()
			if err != nil {
				return nil, err
			}
			// Decoded in its place, zeroed by make: a Message holds
			// pointers, and a copy of each into out, or a zero value
			// written there, costs write barriers while a GC runs.
			if len(out) < cap(out) {
				out = out[:len(out)+1]
			} else {
				out = append(out, Message{})
			}
			m := &out[len(out)-1]
			if _, err := decodeMessageWith(ev, m, names, &arena, render); err != nil {
				return nil, err
			}
			m.Seq = makeSeq(commit, binary.BigEndian.Uint32(ek[len(ep):]))
			m.Destination = dest
		}
		if err := evIt.Error(); err != nil {
			return nil, err
		}
	}
	return out, idxIt.Error()
}

// Ack deletes delivered messages. Every message must be pending:
// acknowledging one twice is a delivery bug, reported as ErrNotPending with
// nothing changed. So is a wrong ID, checked for every message but those
// inside a run acknowledged in order, checked at its ends (see remove). It
// implements sinks.Outbox.
func (s *Store) Ack(dest string, msgs []Message) error {
	return s.remove(dest, msgs, nil)
}

// DeadLetter moves permanently rejected messages to the dead-letter store
// with the reason. It implements sinks.Outbox.
func (s *Store) DeadLetter(dest string, msgs []Message, reason string) error {
	return s.remove(dest, msgs, &reason)
}

// remove deletes msgs from dest's outbox in one batch, moving them to the
// dead-letter store when reason is set.
//
// Delivery acknowledges in Seq order, so an acknowledgement is almost
// always, per commit, the oldest pending run of the entry's events: that
// run goes with one range deletion, checked against the index entry (dense,
// and the run starts at first) and the IDs at its two ends, without reading
// the events between. Any
// other message — out of order, after a gap, dead-lettered (its stored
// form is kept), or of an entry written before first and total were — is
// read and deleted one by one.
func (s *Store) remove(dest string, msgs []Message, reason *string) (err error) {
	if err := s.checkWrite(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	if len(msgs) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	entries := map[uint64]*indexEntry{}
	entry := func(m *Message) (*indexEntry, error) {
		commit, _ := splitSeq(m.Seq)
		if e := entries[commit]; e != nil {
			return e, nil
		}
		v, ok, err := s.get(indexKey(dest, commit))
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, notPending(dest, m)
		}
		e, err := decodeIndex(v)
		if err != nil {
			return nil, err
		}
		entries[commit] = &e
		return &e, nil
	}
	var it *pebble.Iterator
	defer func() {
		if it != nil {
			it.Close()
		}
	}()
	var slow []*Message
	for i := 0; i < len(msgs); {
		m := &msgs[i]
		e, err := entry(m)
		if err != nil {
			return err
		}
		commit, idx := splitSeq(m.Seq)
		// The run of msgs[i:] with consecutive idx in this commit.
		j := i + 1
		for j < len(msgs) {
			c, x := splitSeq(msgs[j].Seq)
			if c != commit || uint64(x) != uint64(idx)+uint64(j-i) {
				break
			}
			j++
		}
		n := uint64(j - i)
		if reason == nil && e.dense() && uint64(idx) == e.first && e.first+n <= e.total {
			// The run's two ends are read: a run from elsewhere (another
			// store, or shifted) shows there.
			for _, k := range []int{i, j - 1} {
				if err := s.checkStoredID(&it, dest, e.cycle, &msgs[k]); err != nil {
					return err
				}
			}
			if err := b.DeleteRange(eventKey(e.cycle, dest, idx), eventKey(e.cycle, dest, idx+uint32(n)), nil); err != nil {
				return err
			}
			e.first += n
			e.remaining -= n
		} else {
			for k := i; k < j; k++ {
				slow = append(slow, &msgs[k])
			}
		}
		i = j
	}
	dead, err := s.removeEach(b, &it, dest, slow, entries, reason)
	if err != nil {
		return err
	}
	for commit, e := range entries {
		var err error
		if e.remaining == 0 {
			err = errors.Join(b.Delete(indexKey(dest, commit), nil), b.Delete(templateKey(e.cycle, dest), nil))
		} else {
			err = b.Set(indexKey(dest, commit), e.encode(), nil)
		}
		if err != nil {
			return err
		}
	}
	if dead != s.lastDS {
		if err := putUint(b, keyDeadCounter, dead); err != nil {
			return err
		}
	}
	// A lost acknowledgement would only mean a redelivery with the same
	// messageId, but a process killed after a pass of many batches would
	// redeliver all of them: one fsync per delivered batch is cheap next
	// to the delivery it records.
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	s.lastDS = dead
	return nil
}

// checkStoredID returns ErrNotPending unless m is stored under its Seq (in
// the cycle of its index entry) with its ID, reading with *it (opened on
// first use).
func (s *Store) checkStoredID(it **pebble.Iterator, dest string, cycle uint64, m *Message) error {
	i, err := s.iter(it)
	if err != nil {
		return err
	}
	_, idx := splitSeq(m.Seq)
	key := eventKey(cycle, dest, idx)
	if !i.SeekGE(key) || !bytes.Equal(i.Key(), key) {
		if err := i.Error(); err != nil {
			return err
		}
		return notPending(dest, m)
	}
	v, err := i.ValueAndErr()
	if err != nil {
		return err
	}
	id, err := decodeMessageID(v)
	if err != nil {
		return err
	}
	if id != m.ID {
		return notPending(dest, m)
	}
	return nil
}

// iter returns *it, opening an iterator over the store into it on first
// use: remove's two ways of checking messages share one.
func (s *Store) iter(it **pebble.Iterator) (*pebble.Iterator, error) {
	if *it == nil {
		i, err := s.db.NewIter(nil)
		if err != nil {
			return nil, err
		}
		*it = i
	}
	return *it, nil
}

// notPending is the error for m, which is not pending in dest's outbox.
func notPending(dest string, m *Message) error {
	return fmt.Errorf("%w: %s seq %d (%s)", ErrNotPending, dest, m.Seq, m.ID)
}

// removeEach deletes msgs one by one into b, each checked to be stored
// under its Seq with its ID (and moved to the dead-letter store when reason
// is set), updating their index entries (already loaded into entries). It
// returns the dead-letter counter after them.
func (s *Store) removeEach(b *pebble.Batch, itp **pebble.Iterator, dest string, msgs []*Message, entries map[uint64]*indexEntry, reason *string) (uint64, error) {
	dead := s.lastDS
	if len(msgs) == 0 {
		return dead, nil
	}
	now := s.opts.Now().UTC()
	done := map[uint64]bool{}
	tmpl := s.templates()
	// The stored events are checked through one iterator, in key order: a
	// delivered batch is a run of adjacent keys, so each seek lands in the
	// block the previous one read, where a point lookup per message would
	// open and search the sstables afresh.
	type target struct {
		m   *Message
		key []byte
	}
	targets := make([]target, 0, len(msgs))
	for _, m := range msgs {
		commit, idx := splitSeq(m.Seq)
		targets = append(targets, target{m, eventKey(entries[commit].cycle, dest, idx)})
	}
	slices.SortStableFunc(targets, func(a, b target) int { return bytes.Compare(a.key, b.key) })
	it, err := s.iter(itp)
	if err != nil {
		return 0, err
	}
	for i, t := range targets {
		m := t.m
		commit, idx := splitSeq(m.Seq)
		e := entries[commit]
		// A batch's keys are adjacent: step to the next key, and seek only
		// where there is a gap.
		var ok bool
		if i > 0 && it.Valid() && it.Next() && bytes.Compare(it.Key(), t.key) >= 0 {
			ok = bytes.Equal(it.Key(), t.key)
		} else {
			ok = it.SeekGE(t.key) && bytes.Equal(it.Key(), t.key)
		}
		var v []byte
		if ok {
			if v, err = it.ValueAndErr(); err != nil {
				return 0, err
			}
		} else if err := it.Error(); err != nil {
			return 0, err
		}
		var stored Message
		if ok {
			if reason != nil {
				// The dead-letter store keeps whole messages.
				var render renderFunc
				if render, err = tmpl.renderer(e.cycle, dest); err == nil {
					_, err = decodeMessageWith(v, &stored, nil, nil, render)
				}
			} else {
				stored.ID, err = decodeMessageID(v)
			}
			if err != nil {
				return 0, err
			}
		}
		// Below first it went with a range deletion, of an earlier call
		// or of this one (not yet on the store the iterator reads).
		if !ok || uint64(idx) < e.first || done[m.Seq] || stored.ID != m.ID {
			return 0, notPending(dest, m)
		}
		if e.remaining == 0 {
			return 0, fmt.Errorf("diff: outbox index of %s commit %d: %w", dest, commit, errBadValue)
		}
		done[m.Seq] = true
		if err := b.Delete(t.key, nil); err != nil {
			return 0, err
		}
		e.remaining--
		if uint64(idx) == e.first {
			// Everything below idx+1 is gone now; the gaps above, if
			// any, are still told by remaining < total-first.
			e.first++
		}
		if reason != nil {
			dead++
			stored.Seq, stored.Destination = m.Seq, dest
			if err := b.Set(deadKey(dest, dead), encodeDead(&stored, *reason, now), nil); err != nil {
				return 0, err
			}
		}
	}
	return dead, nil
}

// DeadLetter is a message a destination rejected permanently.
type DeadLetter struct {
	// Message is the message as it was in the outbox (Seq its Seq there).
	Message
	Reason string
	At     time.Time
	// Ref identifies the entry in the dead-letter store.
	Ref uint64
}

func encodeDead(m *Message, reason string, at time.Time) []byte {
	v := encodeMessage(nil, m)
	v = binary.AppendUvarint(v, uint64(len(reason)))
	v = append(v, reason...)
	v = binary.BigEndian.AppendUint64(v, uint64(at.UnixNano()))
	return binary.BigEndian.AppendUint64(v, m.Seq)
}

func decodeDead(v []byte, d *DeadLetter) error {
	rest, err := decodeMessage(v, &d.Message)
	if err != nil {
		return err
	}
	l, n := binary.Uvarint(rest)
	if n <= 0 || uint64(len(rest)-n) < l+16 {
		return errBadValue
	}
	d.Reason = string(rest[n : n+int(l)])
	rest = rest[n+int(l):]
	d.At = time.Unix(0, int64(binary.BigEndian.Uint64(rest))).UTC()
	d.Seq = binary.BigEndian.Uint64(rest[8:])
	return nil
}

// DeadLetters lists the dead-letter store of dest (every destination when
// dest is ""), by destination, oldest first.
func (s *Store) DeadLetters(dest string) (_ []DeadLetter, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	p := []byte{tDead}
	if dest != "" {
		p = deadPrefix(dest)
	}
	var out []DeadLetter
	err = s.scan(p, func(k, v []byte) error {
		d, n, err := decodeDeadKey(k)
		if err != nil {
			return err
		}
		dl := DeadLetter{Ref: n}
		if err := decodeDead(v, &dl); err != nil {
			return err
		}
		dl.Destination = d
		out = append(out, dl)
		return nil
	})
	return out, err
}

func decodeDeadKey(k []byte) (dest string, ref uint64, err error) {
	d, _, n, err := decodeElem(k[1:])
	if err != nil {
		return "", 0, err
	}
	if len(k) != 1+n+8 {
		return "", 0, errBadKey
	}
	return string(d), binary.BigEndian.Uint64(k[1+n:]), nil
}

// selectDeadLetters returns the dead letters of dest (every destination
// when ""), only those whose ID is in ids when ids is non-nil.
func (s *Store) selectDeadLetters(dest string, ids []string) ([]DeadLetter, error) {
	dls, err := s.DeadLetters(dest)
	if err != nil || ids == nil {
		return dls, err
	}
	return slices.DeleteFunc(dls, func(d DeadLetter) bool { return !slices.Contains(ids, d.ID) }), nil
}

// RetryDeadLetters moves dead letters back to the end of their
// destination's outbox, with new Seqs and their original messageIds: of
// dest (every destination when ""), and only those whose ID is in ids when
// ids is non-nil. It returns how many moved.
func (s *Store) RetryDeadLetters(dest string, ids []string) (_ int, err error) {
	if err := s.checkWrite(); err != nil {
		return 0, err
	}
	defer s.classifyInto(&err)
	dls, err := s.selectDeadLetters(dest, ids)
	if err != nil {
		return 0, err
	}
	if len(dls) == 0 {
		return 0, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	b := s.db.NewBatch()
	defer b.Close()
	cycle := s.lastCycle + 1
	commit := s.lastCommit
	next := map[string]uint32{}
	var dests []string
	moved := 0
	for _, d := range dls {
		// Another retry may have moved it since the listing.
		if _, ok, err := s.get(deadKey(d.Destination, d.Ref)); err != nil {
			return 0, err
		} else if !ok {
			continue
		}
		moved++
		idx, ok := next[d.Destination]
		if !ok {
			dests = append(dests, d.Destination)
		}
		next[d.Destination] = idx + 1
		m := d.Message
		if err := errors.Join(
			b.Set(eventKey(cycle, d.Destination, idx), encodeMessage(nil, &m), nil),
			b.Delete(deadKey(d.Destination, d.Ref), nil),
		); err != nil {
			return 0, err
		}
	}
	for _, dest := range dests {
		commit++
		if err := checkCommit(commit); err != nil {
			return 0, err
		}
		e := newIndexEntry(cycle, uint64(next[dest]))
		if err := b.Set(indexKey(dest, commit), e.encode(), nil); err != nil {
			return 0, err
		}
	}
	if moved == 0 {
		return 0, nil
	}
	if err := errors.Join(putUint(b, keyCycleCounter, cycle), putUint(b, keyCommitCounter, commit)); err != nil {
		return 0, err
	}
	if err := s.commitEpoch(b, nil); err != nil {
		return 0, err
	}
	s.lastCycle = cycle
	s.setLastCommit(commit)
	return moved, nil
}

// Backlog returns the number of pending messages of dest.
func (s *Store) Backlog(dest string) (int64, error) {
	all, err := s.backlogs(indexPrefix(dest))
	return all[dest], err
}

// Backlogs returns the number of pending messages per destination, for
// destinations with any.
func (s *Store) Backlogs() (map[string]int64, error) {
	return s.backlogs([]byte{tIndex})
}

func (s *Store) backlogs(prefix []byte) (_ map[string]int64, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	out := map[string]int64{}
	err = s.scan(prefix, func(k, v []byte) error {
		d, _, _, err := decodeElem(k[1:])
		if err != nil {
			return err
		}
		e, err := decodeIndex(v)
		if err != nil {
			return err
		}
		out[string(d)] += int64(e.remaining)
		return nil
	})
	return out, err
}
