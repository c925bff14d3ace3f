package diff

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Stranded messages: an outbox or dead letters whose destination the
// workspace no longer defines (renamed, deleted) are never delivered. The
// methods below move them to another destination or drop them, on an
// operator's word: each is one batch, a decision of the store (an epoch).

// MoveOutbox moves every pending message of from to the end of to's
// outbox, in order, with their messageIds (new Seqs). It returns how many
// moved.
func (s *Store) MoveOutbox(from, to string) (int, error) {
	if from == to {
		return 0, fmt.Errorf("diff: moving the outbox of %s onto itself", from)
	}
	return s.rewriteOutbox(from, &to)
}

// DropOutbox deletes every pending message of dest. It returns how many
// were dropped.
func (s *Store) DropOutbox(dest string) (int, error) {
	return s.rewriteOutbox(dest, nil)
}

func (s *Store) rewriteOutbox(from string, to *string) (_ int, err error) {
	if err := s.checkWrite(); err != nil {
		return 0, err
	}
	defer s.classifyInto(&err)
	s.mu.Lock()
	defer s.mu.Unlock()
	type entry struct {
		commit uint64
		e      indexEntry
	}
	var entries []entry
	ip := indexPrefix(from)
	err = s.scan(ip, func(k, v []byte) error {
		if len(k) != len(ip)+8 {
			return errBadKey
		}
		e, err := decodeIndex(v)
		if err != nil {
			return err
		}
		entries = append(entries, entry{binary.BigEndian.Uint64(k[len(ip):]), e})
		return nil
	})
	if err != nil || len(entries) == 0 {
		return 0, err
	}
	b := s.db.NewBatch()
	defer b.Close()
	cycle := s.lastCycle + 1
	var idx uint32
	n := 0
	tmpl := s.templates()
	for _, en := range entries {
		ep := eventPrefix(en.e.cycle, from)
		render, err := tmpl.renderer(en.e.cycle, from)
		if err != nil {
			return 0, err
		}
		err = s.scan(ep, func(k, v []byte) error {
			n++
			if err := b.Delete(k, nil); err != nil {
				return err
			}
			if to == nil {
				return nil
			}
			// Another cycle's, without the template: whole.
			w, err := wholeMessage(v, render)
			if err != nil {
				return err
			}
			if err := b.Set(eventKey(cycle, *to, idx), w, nil); err != nil {
				return err
			}
			idx++
			return nil
		})
		if err != nil {
			return 0, err
		}
		if err := errors.Join(b.Delete(indexKey(from, en.commit), nil), b.Delete(templateKey(en.e.cycle, from), nil)); err != nil {
			return 0, err
		}
	}
	commit := s.lastCommit
	if to != nil && idx > 0 {
		commit++
		if err := checkCommit(commit); err != nil {
			return 0, err
		}
		e := newIndexEntry(cycle, uint64(idx))
		if err := errors.Join(
			b.Set(indexKey(*to, commit), e.encode(), nil),
			putUint(b, keyCycleCounter, cycle),
			putUint(b, keyCommitCounter, commit),
		); err != nil {
			return 0, err
		}
	}
	if err := s.commitEpoch(b, nil); err != nil {
		return 0, err
	}
	if to != nil && idx > 0 {
		s.lastCycle = cycle
		s.setLastCommit(commit)
	}
	return n, nil
}

// MoveDeadLetters moves the dead letters of from (those whose ID is in
// ids, when ids is non-nil) to the dead-letter store of to, where `retry`
// can send them. It returns how many moved.
func (s *Store) MoveDeadLetters(from, to string, ids []string) (int, error) {
	if from == to {
		return 0, fmt.Errorf("diff: moving the dead letters of %s onto themselves", from)
	}
	return s.rewriteDead(from, &to, ids)
}

// DropDeadLetters deletes the dead letters of dest (every destination when
// ""; those whose ID is in ids, when ids is non-nil). It returns how many
// were dropped.
func (s *Store) DropDeadLetters(dest string, ids []string) (int, error) {
	return s.rewriteDead(dest, nil, ids)
}

func (s *Store) rewriteDead(from string, to *string, ids []string) (_ int, err error) {
	if err := s.checkWrite(); err != nil {
		return 0, err
	}
	defer s.classifyInto(&err)
	dls, err := s.selectDeadLetters(from, ids)
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
	dead := s.lastDS
	n := 0
	for _, d := range dls {
		key := deadKey(d.Destination, d.Ref)
		v, ok, err := s.get(key)
		if err != nil {
			return 0, err
		}
		if !ok {
			continue // moved or retried since the listing
		}
		n++
		if err := b.Delete(key, nil); err != nil {
			return 0, err
		}
		if to != nil {
			dead++
			if err := b.Set(deadKey(*to, dead), v, nil); err != nil {
				return 0, err
			}
		}
	}
	if n == 0 {
		return 0, nil
	}
	if dead != s.lastDS {
		if err := putUint(b, keyDeadCounter, dead); err != nil {
			return 0, err
		}
	}
	if err := s.commitEpoch(b, nil); err != nil {
		return 0, err
	}
	s.lastDS = dead
	return n, nil
}

// DeadLetterCounts returns the number of dead letters per destination, for
// destinations with any (keys only: no message is decoded).
func (s *Store) DeadLetterCounts() (_ map[string]int64, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	out := map[string]int64{}
	err = s.scan([]byte{tDead}, func(k, _ []byte) error {
		d, _, err := decodeDeadKey(k)
		if err != nil {
			return err
		}
		out[d]++
		return nil
	})
	return out, err
}
