package diff

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// MembersPage returns at most limit members of aud's current generation
// whose profile key starts with prefix and sorts after after (the last key
// of the previous page; "" for the first), in profile key order, with
// their entity rows, and whether more follow. It seeks rather than scans:
// the cost is the page's, not the audience's, so a console can page
// through millions of members.
func (s *Store) MembersPage(aud, prefix, after string, limit int) (_ []Member, more bool, err error) {
	if err := s.check(); err != nil {
		return nil, false, err
	}
	if limit <= 0 {
		return nil, false, errors.New("diff: MembersPage needs a positive limit")
	}
	defer s.classifyInto(&err)
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return nil, false, err
	}
	if m.PendingApply != 0 {
		// The rows of the current generation are partly still in the
		// delta table; Members moves them (or explains why it cannot).
		return nil, false, fmt.Errorf("diff: audience %s: its last generation's rows are still being moved into place; try again in a moment", aud)
	}
	base := dataPrefix(aud)
	// A text's encoding without its terminator prefixes the encoding of
	// every text that starts with it.
	enc := appendString(nil, prefix)
	lower := append(append([]byte{}, base...), enc[:len(enc)-2]...)
	upper := prefixEnd(lower)
	if after != "" {
		// Past every key of profile after: its member key, then its rows
		// (longer tuples with the member key as a prefix).
		k := prefixEnd(appendString(append([]byte{}, base...), after))
		if k != nil && string(k) > string(lower) {
			lower = k
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, false, err
	}
	defer it.Close()
	var out []Member
	for ok := it.First(); ok; ok = it.Next() {
		elems, err := decodeTuple(it.Key()[len(base):])
		if err != nil {
			return nil, false, err
		}
		if len(elems) == 1 {
			if len(out) == limit {
				return out, true, nil
			}
			out = append(out, Member{Profile: string(elems[0])})
			continue
		}
		if len(out) == 0 || out[len(out)-1].Profile != string(elems[0]) {
			return nil, false, fmt.Errorf("diff: row of %q without its member: %w", elems[0], errBadKey)
		}
		chain := make([]*string, len(elems)-1)
		for i, e := range elems[1:] {
			if e != nil {
				t := string(e)
				chain[i] = &t
			}
		}
		cur := &out[len(out)-1]
		cur.Chains = append(cur.Chains, chain)
	}
	return out, false, it.Error()
}
