package diff

import (
	"bytes"
	"context"
)

// Compact flushes the memtable and compacts the whole key space, so that
// the state on disk holds each live key once and no compaction is owed.
// The worker never needs it (Pebble compacts in the background); tools
// that measure what one cycle writes start from a compacted state, so that
// debt left by earlier cycles is not billed to the cycle measured.
func (s *Store) Compact(ctx context.Context) (err error) {
	if err := s.checkWrite(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	if err := s.db.Flush(); err != nil {
		return err
	}
	return s.db.Compact(ctx, []byte{0}, bytes.Repeat([]byte{0xff}, 64), true)
}
