package diff

import (
	"bytes"
	"context"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/objstorage/objstorageprovider"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Large changes are staged as sstables ingested at commit rather than as
// committed batches. A batch's bytes go to the WAL, into the memtable's
// skiplist, and out again when the memtable is flushed; an sstable written
// in key order is written once, compressed, and Pebble links it into the
// LSM. A first cycle with send_current writes an event per member and per
// entity, so this is most of its cost.
//
// The staged keys live under the cycle's id (tDelta cycle …, tEvent cycle
// dest …), invisible until the final batch indexes them, so ingesting them
// before the final batch changes nothing a reader sees; if the process
// stops in between, recovery deletes them with the rest of the abandoned
// cycle (Store.abandon).

// stagingDir is the store's subdirectory for sstables being written; what
// a stopped process left there is removed at Open.
const stagingDir = "staging"

// stageFileBytes is the size at which a stager starts a new sstable.
const stageFileBytes = 64 << 20

var stageFileSeq atomic.Uint64

// stager writes keys in strictly increasing order into sstables in the
// staging directory. The caller's side only checks the order and copies
// entries into chunks; a goroutine of its own builds, compresses and
// writes the sstables, so that on two cores the merge and the sstable
// writing overlap (compressing inline made a first cycle slower than the
// batches it replaced, whose flushes ran in Pebble's background).
type stager struct {
	s    *Store
	last []byte
	cur  *stageChunk

	started bool
	chunks  chan *stageChunk // to the writer
	free    chan *stageChunk // back from the writer, for reuse
	done    chan struct{}    // closed when the writer has stopped
	closed  bool             // chunks is closed

	// Owned by the writer until done is closed.
	w       *sstable.Writer
	paths   []string
	written int64 // bytes of the finished files
	err     error
	failed  atomic.Bool
}

// stageChunk is a run of entries: keys and values back to back in buf.
type stageChunk struct {
	buf  []byte
	ents []stageEntry
}

type stageEntry struct {
	klen, vlen int
	del        bool
}

// stageChunkBytes is the size at which a chunk goes to the writer.
const stageChunkBytes = 1 << 20

func (st *stager) set(key, val []byte) error { return st.add(key, val, false) }

// delete writes a point deletion of key.
func (st *stager) delete(key []byte) error { return st.add(key, nil, true) }

func (st *stager) add(key, val []byte, del bool) error {
	if st.last != nil && bytes.Compare(key, st.last) <= 0 {
		return fmt.Errorf("diff: staged key out of order (%x after %x)", key, st.last)
	}
	if st.failed.Load() {
		return st.stop()
	}
	if !st.started {
		st.start()
	}
	if st.cur == nil {
		st.cur = <-st.free
	}
	c := st.cur
	c.buf = append(append(c.buf, key...), val...)
	c.ents = append(c.ents, stageEntry{len(key), len(val), del})
	st.last = append(st.last[:0], key...)
	if len(c.buf) >= stageChunkBytes {
		st.chunks <- c
		st.cur = nil
	}
	return nil
}

func (st *stager) start() {
	st.started = true
	st.chunks = make(chan *stageChunk, 2)
	st.free = make(chan *stageChunk, 4)
	for range 4 {
		st.free <- &stageChunk{buf: make([]byte, 0, stageChunkBytes+64<<10)}
	}
	st.done = make(chan struct{})
	go st.write()
}

// write is the writer goroutine. After a failure it keeps draining chunks
// so that the caller never blocks; the caller sees the error at its next
// add or at finish.
func (st *stager) write() {
	defer close(st.done)
	for c := range st.chunks {
		if st.err == nil {
			st.err = st.writeChunk(c)
			if st.err != nil {
				st.failed.Store(true)
			}
		}
		c.buf, c.ents = c.buf[:0], c.ents[:0]
		st.free <- c
	}
	if st.err == nil {
		st.err = st.closeFile()
	}
}

func (st *stager) writeChunk(c *stageChunk) error {
	b := c.buf
	for _, e := range c.ents {
		key, val := b[:e.klen], b[e.klen:e.klen+e.vlen]
		b = b[e.klen+e.vlen:]
		if st.w == nil {
			if err := st.openFile(); err != nil {
				return err
			}
		}
		var err error
		if e.del {
			err = st.w.Delete(key)
		} else {
			err = st.w.Set(key, val)
		}
		if err != nil {
			return err
		}
		if st.w.Raw().EstimatedSize() >= stageFileBytes {
			if err := st.closeFile(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *stager) openFile() error {
	fs := st.s.opts.FS
	dir := fs.PathJoin(st.s.dir, stagingDir)
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	path := fs.PathJoin(dir, fmt.Sprintf("stage-%06d.sst", stageFileSeq.Add(1)))
	f, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	st.paths = append(st.paths, path)
	st.w = sstable.NewWriter(objstorageprovider.NewFileWritable(f), st.s.stageWriter)
	return nil
}

func (st *stager) closeFile() error {
	if st.w == nil {
		return nil
	}
	w := st.w
	st.w = nil
	if err := w.Close(); err != nil {
		return err
	}
	meta, err := w.Raw().Metadata()
	if err != nil {
		return err
	}
	st.written += int64(meta.Size)
	return nil
}

// stop hands over the last chunk, waits for the writer and returns its
// error.
func (st *stager) stop() error {
	if !st.started {
		return nil
	}
	if !st.closed {
		if st.cur != nil && len(st.cur.ents) > 0 {
			st.chunks <- st.cur
		}
		st.cur = nil
		st.closed = true
		close(st.chunks)
	}
	<-st.done
	return st.err
}

// finish writes what is left and returns every file written.
func (st *stager) finish() ([]string, error) {
	if err := st.stop(); err != nil {
		return nil, err
	}
	return st.paths, nil
}

// discard abandons the stager: its files are removed (ingested ones are
// already linked into the store, so removing them here is harmless).
func (st *stager) discard() {
	st.stop()
	if st.w != nil {
		st.w.Close()
		st.w = nil
	}
	for _, p := range st.paths {
		st.s.opts.FS.Remove(p)
	}
	st.paths = nil
}

// ingest links staged sstables into the store and removes them from the
// staging directory.
func (s *Store) ingest(ctx context.Context, paths []string) error {
	if len(paths) == 0 {
		return nil
	}
	// An ingestion is durable at once, the cycle's in-progress record
	// (committed without a sync) not yet: sync the WAL first, so that a
	// stop after the ingestion always finds the record that tells
	// recovery to delete what was ingested.
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.LogData([]byte("linkaud: staged changes follow"), nil); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	if err := s.db.Ingest(ctx, paths); err != nil {
		return fmt.Errorf("diff: ingesting staged changes: %w", err)
	}
	for _, p := range paths {
		s.opts.FS.Remove(p)
	}
	return nil
}

// clearStaging removes what a stopped process left half written.
func (s *Store) clearStaging() error {
	return s.opts.FS.RemoveAll(s.opts.FS.PathJoin(s.dir, stagingDir))
}
