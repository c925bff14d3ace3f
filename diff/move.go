package diff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
)

// Moving an audience between state directories (`linkaud state move`):
// when shards are added or removed, the audiences whose owner changed take
// their state with them — lifecycle, current generation, activation
// signatures, runs, the events still in the outbox and the dead letters —
// so that the new owner's next cycle diffs against the old generation and
// nothing is sent twice or lost.
//
// Two Pebble databases cannot share a batch, so the move is two synced
// decisions, each atomic in its store, and is idempotent:
//
//  1. to receives everything in one batch, with a marker (tGlobal
//     "moved-in/AUD") holding the source's generation; its outbox messages
//     get to's Seqs (new commit numbers) and keep their messageIds.
//  2. from deletes everything in one batch.
//
// A crash between them leaves the audience in both; running the move
// again sees the marker with the same generation and finishes step 2
// only. Until then the source's shard does not own the audience (it is
// not scheduled there), and its outbox, delivered by either, carries the
// same messageIds, which consumers deduplicate.

// MoveReport counts what MoveAudience carried over.
type MoveReport struct {
	Audience    string
	Generation  uint64
	Rows        int // data rows (members and entity rows)
	Runs        int
	Pending     int // outbox messages
	DeadLetters int
	// Resumed is set when an earlier, interrupted move had already
	// written to, and only the source was left to clear.
	Resumed bool
}

// ErrAudienceExists is returned (wrapped) by MoveAudience when the target
// already holds the audience and it did not come from this move.
var ErrAudienceExists = errors.New("diff: the target state already holds the audience")

func movedInKey(aud string) []byte { return globalKey("moved-in/" + aud) }

// audienceTables are the key spaces that hold an audience's own keys,
// each under the prefix table + audience name.
var audienceTables = []func(string) []byte{dataPrefix, activationPrefix, runPrefix, historyKey}

// MoveAudience moves aud from one store to the other (see above). Both
// must be open read-write, which keeps workers off them while it runs.
func MoveAudience(from, to *Store, aud string) (rep MoveReport, err error) {
	rep.Audience = aud
	if from.dir == to.dir {
		return rep, fmt.Errorf("diff: moving audience %s within one state directory", aud)
	}
	if err := errors.Join(from.checkWrite(), to.checkWrite()); err != nil {
		return rep, err
	}
	defer from.classifyInto(&err)
	defer from.lock(aud)()
	defer to.lock(aud)()
	src, ok, err := from.loadMeta(aud)
	if err != nil {
		return rep, err
	}
	if !ok {
		return rep, fmt.Errorf("diff: %s holds no audience %s", from.dir, aud)
	}
	if src.PendingApply != 0 {
		if _, err := from.rollForward(aud, src); err != nil {
			return rep, err
		}
		if src, _, err = from.loadMeta(aud); err != nil {
			return rep, err
		}
	}
	rep.Generation = src.Generation
	_, exists, err := to.loadMeta(aud)
	if err != nil {
		return rep, err
	}
	if exists {
		mark, marked, err := to.get(movedInKey(aud))
		if err != nil {
			return rep, err
		}
		if !marked || len(mark) != 8 || binary.BigEndian.Uint64(mark) != src.Generation {
			return rep, fmt.Errorf("%w: %s already has audience %s; purge it there first if it is stale (`linkaud audiences purge`)", ErrAudienceExists, to.dir, aud)
		}
		rep.Resumed = true
	} else if err := to.receive(from, aud, src, &rep); err != nil {
		return rep, fmt.Errorf("diff: moving %s into %s: %w", aud, to.dir, err)
	}
	if err := from.release(aud, src); err != nil {
		return rep, fmt.Errorf("diff: removing %s from %s after copying it to %s (run the move again to finish): %w", aud, from.dir, to.dir, err)
	}
	return rep, nil
}

// receive writes aud's state, read from src, into s in one batch.
func (s *Store) receive(src *Store, aud string, m *audMeta, rep *MoveReport) error {
	b := s.db.NewBatch()
	defer b.Close()
	// Keys of an earlier move that crashed before its batch (none in
	// practice: a batch is all or nothing) or of a purge: start clean.
	for _, p := range audienceTables {
		if err := b.DeleteRange(p(aud), prefixEnd(p(aud)), nil); err != nil {
			return err
		}
	}
	for i, p := range audienceTables {
		err := src.scan(p(aud), func(k, v []byte) error {
			switch i {
			case 0:
				rep.Rows++
			case 2:
				rep.Runs++
			}
			return b.Set(k, v, nil)
		})
		if err != nil {
			return err
		}
	}
	mv, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := b.Set(metaKey(aud), mv, nil); err != nil {
		return err
	}
	if err := b.Set(movedInKey(aud), binary.BigEndian.AppendUint64(nil, m.Generation), nil); err != nil {
		return err
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	cycle, commit, dead := s.lastCycle, s.lastCommit, s.lastDS
	// The outbox: per destination, aud's pending messages in Seq order,
	// appended to s's outbox as one commit.
	pend, err := src.audiencePending(aud)
	if err != nil {
		return err
	}
	for _, dp := range pend {
		cycle++
		commit++
		if err := checkCommit(commit); err != nil {
			return err
		}
		for i, v := range dp.values {
			if err := b.Set(eventKey(cycle, dp.dest, uint32(i)), v, nil); err != nil {
				return err
			}
		}
		e := newIndexEntry(cycle, uint64(len(dp.values)))
		if err := b.Set(indexKey(dp.dest, commit), e.encode(), nil); err != nil {
			return err
		}
		rep.Pending += len(dp.values)
	}
	dls, err := src.audienceDead(aud)
	if err != nil {
		return err
	}
	for _, d := range dls {
		dead++
		if err := b.Set(deadKey(d.dest, dead), d.value, nil); err != nil {
			return err
		}
	}
	rep.DeadLetters = len(dls)
	if err := errors.Join(putUint(b, keyCycleCounter, cycle), putUint(b, keyCommitCounter, commit), putUint(b, keyDeadCounter, dead)); err != nil {
		return err
	}
	gens := map[string]uint64{aud: m.Generation}
	if err := s.commitEpoch(b, gens); err != nil {
		return err
	}
	s.lastCycle, s.lastDS = cycle, dead
	s.setLastCommit(commit)
	return nil
}

// release deletes aud's state, its pending messages and its dead letters
// from s in one batch.
func (s *Store) release(aud string, m *audMeta) error {
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range audienceTables {
		if err := b.DeleteRange(p(aud), prefixEnd(p(aud)), nil); err != nil {
			return err
		}
	}
	if err := b.Delete(metaKey(aud), nil); err != nil {
		return err
	}
	entries, err := s.audienceIndex(aud)
	if err != nil {
		return err
	}
	for _, en := range entries {
		ep := eventPrefix(en.cycle, en.dest)
		if err := b.DeleteRange(ep, prefixEnd(ep), nil); err != nil {
			return err
		}
		if err := errors.Join(b.Delete(indexKey(en.dest, en.commit), nil), b.Delete(templateKey(en.cycle, en.dest), nil)); err != nil {
			return err
		}
	}
	dls, err := s.audienceDead(aud)
	if err != nil {
		return err
	}
	for _, d := range dls {
		if err := b.Delete(d.key, nil); err != nil {
			return err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitEpoch(b, map[string]uint64{aud: 0})
}

// outboxEntry is one index entry of s's outbox.
type outboxEntry struct {
	dest          string
	commit, cycle uint64
}

// audienceIndex returns the outbox index entries whose messages belong to
// aud, in (destination, commit) order. A cycle is one audience's, so the
// first message of an entry tells.
func (s *Store) audienceIndex(aud string) ([]outboxEntry, error) {
	var out []outboxEntry
	err := s.scan([]byte{tIndex}, func(k, v []byte) error {
		dest, _, n, err := decodeElem(k[1:])
		if err != nil || len(k) != 1+n+8 {
			return errBadKey
		}
		e, err := decodeIndex(v)
		if err != nil {
			return err
		}
		ep := eventPrefix(e.cycle, string(dest))
		var first []byte
		if err := s.scan(ep, func(_, v []byte) error {
			first = bytes.Clone(v)
			return errStopScan
		}); err != nil && err != errStopScan {
			return err
		}
		if first == nil {
			return nil
		}
		var msg Message
		if err := decodeHeader(first, &msg); err != nil {
			return err
		}
		if msg.Audience == aud {
			out = append(out, outboxEntry{dest: string(dest), commit: binary.BigEndian.Uint64(k[1+n:]), cycle: e.cycle})
		}
		return nil
	})
	return out, err
}

// destPending is one destination's pending messages of an audience, whole
// (version 1), in Seq order.
type destPending struct {
	dest   string
	values [][]byte
}

func (s *Store) audiencePending(aud string) ([]destPending, error) {
	entries, err := s.audienceIndex(aud)
	if err != nil {
		return nil, err
	}
	var out []destPending
	tmpl := s.templates()
	for _, en := range entries {
		if len(out) == 0 || out[len(out)-1].dest != en.dest {
			out = append(out, destPending{dest: en.dest})
		}
		dp := &out[len(out)-1]
		render, err := tmpl.renderer(en.cycle, en.dest)
		if err != nil {
			return nil, err
		}
		err = s.scan(eventPrefix(en.cycle, en.dest), func(_, v []byte) error {
			// The messages move to another cycle, without their template.
			w, err := wholeMessage(v, render)
			if err != nil {
				return err
			}
			dp.values = append(dp.values, bytes.Clone(w))
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

type deadEntry struct {
	dest       string
	key, value []byte
}

func (s *Store) audienceDead(aud string) ([]deadEntry, error) {
	var out []deadEntry
	err := s.scan([]byte{tDead}, func(k, v []byte) error {
		dest, _, _, err := decodeElem(k[1:])
		if err != nil {
			return errBadKey
		}
		var d DeadLetter
		if err := decodeDead(v, &d); err != nil {
			return err
		}
		if d.Audience == aud {
			out = append(out, deadEntry{dest: string(dest), key: bytes.Clone(k), value: bytes.Clone(v)})
		}
		return nil
	})
	return out, err
}

// errStopScan ends a scan early; it is not an error.
var errStopScan = errors.New("stop")
