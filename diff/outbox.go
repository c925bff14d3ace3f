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

// indexEntry is the decoded value of an outbox index entry.
type indexEntry struct {
	cycle     uint64
	remaining uint64
}

func decodeIndex(v []byte) (indexEntry, error) {
	if len(v) < 9 {
		return indexEntry{}, errBadValue
	}
	r, n := binary.Uvarint(v[8:])
	if n <= 0 {
		return indexEntry{}, errBadValue
	}
	return indexEntry{cycle: binary.BigEndian.Uint64(v), remaining: r}, nil
}

func (e indexEntry) encode() []byte {
	return binary.AppendUvarint(binary.BigEndian.AppendUint64(nil, e.cycle), e.remaining)
}

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
			var m Message
			if _, err := decodeMessageWith(ev, &m, names); err != nil {
				return nil, err
			}
			m.Seq = makeSeq(commit, binary.BigEndian.Uint32(ek[len(ep):]))
			m.Destination = dest
			out = append(out, m)
		}
		if err := evIt.Error(); err != nil {
			return nil, err
		}
	}
	return out, idxIt.Error()
}

// Ack deletes delivered messages. Every message must be pending (same Seq
// and ID): acknowledging one twice is a delivery bug, reported as
// ErrNotPending with nothing changed. It implements sinks.Outbox.
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
	done := map[uint64]bool{}
	dead := s.lastDS
	now := s.opts.Now().UTC()
	// The stored events are checked through one iterator, in key order: a
	// delivered batch is a run of adjacent keys, so each seek lands in the
	// block the previous one read, where a point lookup per message would
	// open and search the sstables afresh.
	type target struct {
		m   *Message
		key []byte
	}
	targets := make([]target, 0, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		commit, idx := splitSeq(m.Seq)
		e := entries[commit]
		if e == nil {
			v, ok, err := s.get(indexKey(dest, commit))
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %s seq %d (%s)", ErrNotPending, dest, m.Seq, m.ID)
			}
			ie, err := decodeIndex(v)
			if err != nil {
				return err
			}
			e = &ie
			entries[commit] = e
		}
		targets = append(targets, target{m, eventKey(e.cycle, dest, idx)})
	}
	slices.SortStableFunc(targets, func(a, b target) int { return bytes.Compare(a.key, b.key) })
	it, err := s.db.NewIter(nil)
	if err != nil {
		return err
	}
	defer it.Close()
	for i, t := range targets {
		m := t.m
		commit, _ := splitSeq(m.Seq)
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
				return err
			}
		} else if err := it.Error(); err != nil {
			return err
		}
		var stored Message
		if ok {
			if reason != nil {
				_, err = decodeMessage(v, &stored)
			} else {
				stored.ID, err = decodeMessageID(v)
			}
			if err != nil {
				return err
			}
		}
		if !ok || done[m.Seq] || stored.ID != m.ID {
			return fmt.Errorf("%w: %s seq %d (%s)", ErrNotPending, dest, m.Seq, m.ID)
		}
		if e.remaining == 0 {
			return fmt.Errorf("diff: outbox index of %s commit %d: %w", dest, commit, errBadValue)
		}
		done[m.Seq] = true
		if err := b.Delete(t.key, nil); err != nil {
			return err
		}
		e.remaining--
		if reason != nil {
			dead++
			stored.Seq, stored.Destination = m.Seq, dest
			if err := b.Set(deadKey(dest, dead), encodeDead(&stored, *reason, now), nil); err != nil {
				return err
			}
		}
	}
	for commit, e := range entries {
		var err error
		if e.remaining == 0 {
			err = b.Delete(indexKey(dest, commit), nil)
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
		e := indexEntry{cycle: cycle, remaining: uint64(next[dest])}
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
