package diff

import (
	"fmt"
	"log/slog"

	"github.com/cockroachdb/pebble/v2"
)

// Scratch opens a private copy of the store to compute on and throw away
// (`linkaud run --dry-run`): a Pebble checkpoint (hard links, a moment) in
// a directory inside the state directory, opened read-write. Nothing
// written to the copy reaches the store; a cycle computed on it gets the
// generation, events and messageIds the same cycle would get on the store.
// Close the copy, then call the returned function to remove it; a copy a
// killed process left behind is removed like a read-only snapshot's.
func (s *Store) Scratch() (_ *Store, remove func(), err error) {
	if err := s.checkWrite(); err != nil {
		return nil, nil, err
	}
	fs := s.opts.FS
	dir, _, err := snapshotDir(fs, s.dir)
	if err != nil {
		return nil, nil, s.fail(err)
	}
	remove = func() { _ = fs.RemoveAll(dir) }
	// Checkpoint wants a directory that does not exist yet.
	if err := fs.RemoveAll(dir); err != nil {
		return nil, nil, err
	}
	if err := s.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		remove()
		return nil, nil, s.fail(fmt.Errorf("diff: checkpoint: %w", err))
	}
	o := s.opts
	o.Logger = slog.New(slog.DiscardHandler)
	o.Pebble = nil
	c, err := Open(dir, o)
	if err != nil {
		remove()
		return nil, nil, fmt.Errorf("diff: the scratch copy does not open: %w", err)
	}
	return c, remove, nil
}
