package diff

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/sstable"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("diff: store closed")
	// ErrDisabled is returned by Cycle for an audience that is not enabled.
	ErrDisabled = errors.New("diff: audience is disabled")
	// ErrReadOnly is returned by the writing methods of a store opened
	// with OpenReadOnly.
	ErrReadOnly = errors.New("diff: the state is open read-only")
	// ErrNotPending is returned by Ack and DeadLetter for a message that is
	// not in the outbox (already acknowledged, or never there).
	ErrNotPending = errors.New("diff: message is not pending")
)

// Status is the lifecycle state of an audience.
type Status int

const (
	// Disabled is the state of a new audience, and of one disabled since:
	// it is not computed.
	Disabled Status = iota
	// Computing is the state of an enabled audience while a cycle runs, and
	// until its first cycle completes.
	Computing
	// Live is the state of an enabled audience whose last cycle succeeded.
	Live
	// Failed is the state of an enabled audience whose last cycle failed;
	// AudienceState.Error says why.
	Failed
)

var statusText = [...]string{"Disabled", "Computing", "Live", "Failed"}

func (s Status) String() string {
	if s < 0 || int(s) >= len(statusText) {
		return fmt.Sprintf("Status(%d)", int(s))
	}
	return statusText[s]
}

// MarshalText implements encoding.TextMarshaler.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Status) UnmarshalText(b []byte) error {
	for i, t := range statusText {
		if string(b) == t {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("diff: unknown status %q", b)
}

// AudienceState is what the store knows of one audience.
type AudienceState struct {
	Name    string
	Enabled bool
	Status  Status
	// Error is the last cycle's error when Status is Failed.
	Error string
	// Generation is the number of the current generation; 0 before the
	// first successful cycle.
	Generation uint64
	// Version is the definition version the current generation was
	// computed from.
	Version string
	// Members and Rows count the current generation's profiles and
	// (profile, entity chain) rows.
	Members, Rows int64
	// Runs is the number of cycles run, failed ones included.
	Runs uint64
	// LastRun is the start of the last cycle; LastSuccess of the last
	// successful one.
	LastRun, LastSuccess time.Time
}

// audMeta is the stored state of an audience (tMeta), as JSON: small, read
// and written once per cycle.
type audMeta struct {
	Enabled     bool      `json:"enabled"`
	Status      Status    `json:"status"`
	Error       string    `json:"error,omitempty"`
	Generation  uint64    `json:"generation"`
	Version     string    `json:"version,omitempty"`
	Layout      *Layout   `json:"layout,omitempty"`
	Members     int64     `json:"members"`
	Rows        int64     `json:"rows"`
	Runs        uint64    `json:"runs"`
	LastRun     time.Time `json:"last_run,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	// PendingApply is a staged cycle whose row changes are part of the
	// current generation but not yet moved into the data table.
	PendingApply uint64 `json:"pending_apply,omitempty"`
}

func (m *audMeta) state(name string) AudienceState {
	return AudienceState{
		Name: name, Enabled: m.Enabled, Status: m.Status, Error: m.Error,
		Generation: m.Generation, Version: m.Version, Members: m.Members, Rows: m.Rows,
		Runs: m.Runs, LastRun: m.LastRun, LastSuccess: m.LastSuccess,
	}
}

// cycleMarker records a cycle in progress (tCycle): whatever it staged is
// garbage if the process stops before the cycle's final batch.
type cycleMarker struct {
	Audience string    `json:"audience"`
	Run      uint64    `json:"run"`
	Start    time.Time `json:"start"`
}

// Store is the differ's Pebble state: per audience the current generation
// (members and entity rows) and lifecycle; the event outbox per
// destination; the dead-letter store. Open one per state directory; it is
// safe for concurrent use (cycles of one audience are serialized, cycles of
// different audiences run concurrently).
type Store struct {
	db  *pebble.DB
	dir string
	// tmplCache holds the event templates the outbox's readers read.
	tmplCache templateCache
	// stageWriter configures the sstables of staged changes like the
	// store's own.
	stageWriter sstable.WriterOptions
	opts        Options
	log         *slog.Logger
	// readOnly stores (OpenReadOnly) refuse every write; snapshot is the
	// private copy one reads when another process holds dir ("" when it
	// reads dir itself).
	readOnly bool
	snapshot string
	// lockCloser releases the lock of a read-only store reading dir in
	// place.
	lockCloser io.Closer
	// interrupted are the cycles a stopped process left in progress, by
	// audience, shown by a read-only store as recovery would leave them.
	interrupted map[string]cycleMarker
	health      health
	dedup       dedup
	// openProblem is what a salvaging open found wrong (Options.Salvage).
	openProblem error

	// mu serializes the allocation of counters with the commit of the batch
	// that persists them, so counters on disk only grow and outbox commit
	// numbers are visible in order. It also guards the outbox index, the
	// epoch, the generations of the commit record and the last flush.
	mu                            sync.Mutex
	lastCycle, lastCommit, lastDS uint64
	// durableCommit is lastCommit once the batch that wrote it is on disk.
	// Pebble makes a synced batch readable before its sync completes, so
	// delivery reads the outbox only up to here: an event sent from a
	// batch a crash then lost would be computed again, under the same
	// messageId with other bytes.
	durableCommit atomic.Uint64
	epoch         uint64
	gens          map[string]uint64
	lastFlush     time.Time
	sinceFlush    int

	locksMu sync.Mutex
	locks   map[string]*sync.Mutex

	// writeFailed is set once a write failed for I/O reasons (see
	// noteFailure).
	writeFailed atomic.Bool

	closed atomic.Bool
}

// Open opens (creating if needed) the store in dir, finishing or discarding
// what a previous process left half done: a cycle interrupted before its
// final batch is discarded (its audience is marked Failed), a committed
// cycle whose staged changes were not yet rolled forward is rolled forward.
//
// Open refuses, at once and without retrying, a state older than its
// commit record (*RollbackError), damaged files (*CorruptionError), a
// directory another process holds (ErrLocked) and one it cannot write
// (ErrUnwritable).
func Open(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := probeWritable(opts.FS, dir); err != nil {
		return nil, classify(dir, err)
	}
	return open(dir, dir, opts, false)
}

// open opens the Pebble database in path (dir itself, or a snapshot of it)
// and checks it against its commit record.
func open(dir, path string, opts Options, readOnly bool) (*Store, error) {
	s := &Store{dir: dir, opts: opts, log: opts.Logger, readOnly: readOnly, locks: map[string]*sync.Mutex{}}
	if path != dir {
		s.snapshot = path
	}
	rec, err := readRecord(opts.FS, path)
	if err != nil {
		if !(readOnly && opts.Salvage) {
			return nil, classify(dir, err)
		}
		s.openProblem, rec = err, nil
	}
	po := &pebble.Options{
		FS:                 opts.FS,
		CacheSize:          opts.CacheBytes,
		MemTableSize:       opts.MemTableBytes,
		Logger:             pebbleLogger{opts.Logger, opts.Fatal, &s.dedup, &s.writeFailed},
		EventListener:      s.health.listener(dir, opts.Logger, &s.dedup),
		FormatMajorVersion: pebble.FormatNewest,
		ReadOnly:           readOnly,
	}
	// The differ reads in key order — the merge against N-1, delivery
	// through the outbox — so blocks larger than Pebble's 4 KiB default
	// cost fewer reads, decompressions and cache entries per row
	// (BenchmarkOutboxDrain: about a quarter less CPU per message).
	po.Levels[0].BlockSize = blockBytes
	// Acknowledgements are range deletions, and every new iterator (each
	// Pending call) fragments all of the memtable's range deletions again
	// once one was added: delivering a large outbox without flushes is
	// quadratic in its acknowledgements. Flushed, they are fragmented once
	// per sstable. It also frees the delivered outbox's space sooner.
	po.FlushDelayDeleteRange = flushDelayDeleteRange
	if opts.Pebble != nil {
		opts.Pebble(po)
	}
	db, err := pebble.Open(path, po)
	if err != nil {
		return nil, openError(dir, err)
	}
	s.db = db
	s.lastFlush = time.Now()
	fail := func(err error) (*Store, error) {
		db.Close()
		return nil, classify(dir, err)
	}
	if err := errors.Join(s.loadEpoch(rec), s.loadCounters()); err != nil {
		if !(readOnly && opts.Salvage) {
			return fail(err)
		}
		s.openProblem = classify(dir, err)
	}
	if readOnly {
		return s, nil
	}
	defaulted := po.Clone()
	defaulted.EnsureDefaults()
	s.stageWriter = defaulted.MakeWriterOptions(0, db.TableFormat())
	if err := s.clearStaging(); err != nil {
		return fail(fmt.Errorf("diff: clearing %s: %w", stagingDir, err))
	}
	removeStaleSnapshots(opts.FS, dir)
	if err := s.recover(); err != nil {
		return fail(err)
	}
	if rec == nil || rec.Epoch != s.epoch || !maps.Equal(rec.Generations, s.gens) {
		if rec == nil && s.epoch > 0 {
			s.log.Warn("the commit record was missing; written again from the state", "dir", dir, "epoch", s.epoch)
		}
		if err := writeRecord(opts.FS, dir, s.record()); err != nil {
			return fail(err)
		}
	}
	if err := s.health.check(); err != nil {
		return fail(err)
	}
	return s, nil
}

// openError classifies a failure of pebble.Open: the lock held by another
// process, damage, permissions.
func openError(dir string, err error) error {
	var pe *os.PathError
	switch {
	case strings.Contains(err.Error(), "lock held by current process"),
		!errors.As(err, &pe) && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)):
		return fmt.Errorf("%w: %s", ErrLocked, dir)
	}
	err = classify(dir, err)
	if errors.Is(err, ErrCorrupt) || errors.Is(err, ErrUnwritable) || errors.Is(err, ErrDiskFull) || isNotExist(err) {
		return err
	}
	// Pebble refuses files it cannot make sense of (a damaged OPTIONS or
	// MANIFEST) with errors not all marked as corruption.
	return &CorruptionError{Dir: dir, File: corruptFile(err), Err: err}
}

// probeWritable fails at once when dir exists and cannot be written, rather
// than let Pebble find out in a flush it retries forever.
func probeWritable(fs vfs.FS, dir string) error {
	if _, err := fs.Stat(dir); err != nil {
		if isNotExist(err) {
			return nil // Pebble creates it, or says why it cannot
		}
		return err
	}
	probe := fs.PathJoin(dir, ".linkaud-write-probe")
	f, err := fs.Create(probe, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	return errors.Join(f.Close(), fs.Remove(probe))
}

// Close closes the store, flushing what lives only in the write-ahead log
// to an sstable first. It must not be called while other methods run.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return ErrClosed
	}
	if !s.readOnly && s.health.checkWrite() == nil && !s.writeFailed.Load() {
		if err := s.db.Flush(); err != nil {
			s.log.Warn("flushing the state before closing failed; the write-ahead log keeps it", "dir", s.dir, "error", oneLine(err))
		}
	}
	for msg, n := range s.dedup.repeats() {
		s.log.Warn("a Pebble error repeated", "error", msg, "times", n)
	}
	err := s.db.Close()
	if s.lockCloser != nil {
		s.lockCloser.Close()
	}
	if s.snapshot != "" {
		_ = s.opts.FS.RemoveAll(s.snapshot)
	}
	return classify(s.dir, err)
}

// Flush flushes the memtable to disk (tests use it to move state into
// sstables).
func (s *Store) Flush() error {
	if err := s.checkWrite(); err != nil {
		return err
	}
	s.mu.Lock()
	s.lastFlush = time.Now()
	s.mu.Unlock()
	return s.fail(s.db.Flush())
}

// blockBytes is the target size of the state's sstable blocks, the
// staged ones included (the writer options come from level 0's).
const blockBytes = 32 << 10

// flushDelayDeleteRange bounds how long a range deletion (an
// acknowledgement) stays in the memtable; see open.
const flushDelayDeleteRange = time.Second

// flushEvery is the most generations committed between two flushes,
// however fast they come.
const flushEvery = 100

// maybeFlush starts a background flush when the last one is older than
// Options.FlushInterval or flushEvery generations ago, so that committed
// state does not live in the write-ahead log alone for long. The caller
// holds s.mu.
func (s *Store) maybeFlush() {
	s.sinceFlush++
	if (time.Since(s.lastFlush) < s.opts.FlushInterval && s.sinceFlush < flushEvery) || s.writeFailed.Load() {
		return
	}
	s.lastFlush, s.sinceFlush = time.Now(), 0
	if _, err := s.db.AsyncFlush(); err != nil {
		s.log.Warn("starting a flush of the state failed", "error", oneLine(err))
	}
}

// Metrics returns Pebble's metrics (bytes written, compactions, …).
func (s *Store) Metrics() *pebble.Metrics { return s.db.Metrics() }

// OpenProblem is what a salvaging open (Options.Salvage) found wrong: a
// rollback, damage met reading the audiences; nil otherwise.
func (s *Store) OpenProblem() error { return s.openProblem }

// Dir is the state directory.
func (s *Store) Dir() string { return s.dir }

// check returns why the store cannot be read: closed, or damage found.
func (s *Store) check() error {
	if s.closed.Load() {
		return ErrClosed
	}
	return s.health.check()
}

// checkWrite returns why the store cannot be written: closed, read-only,
// damaged, or a background write failure (a full disk).
func (s *Store) checkWrite() error {
	if s.closed.Load() {
		return ErrClosed
	}
	if s.readOnly {
		return ErrReadOnly
	}
	return s.health.checkWrite()
}

func (s *Store) lock(aud string) func() {
	s.locksMu.Lock()
	m := s.locks[aud]
	if m == nil {
		m = &sync.Mutex{}
		s.locks[aud] = m
	}
	s.locksMu.Unlock()
	m.Lock()
	return m.Unlock
}

func (s *Store) get(key []byte) ([]byte, bool, error) {
	v, c, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	out := bytes.Clone(v)
	return out, true, c.Close()
}

func (s *Store) getUint(key []byte) (uint64, error) {
	v, ok, err := s.get(key)
	if err != nil || !ok {
		return 0, err
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("diff: counter %q: %w", key, errBadKey)
	}
	return binary.BigEndian.Uint64(v), nil
}

func putUint(b *pebble.Batch, key []byte, v uint64) error {
	return b.Set(key, binary.BigEndian.AppendUint64(nil, v), nil)
}

// setLastCommit records commit as the last outbox commit number, after
// the synced batch that wrote it returned. The caller holds s.mu.
func (s *Store) setLastCommit(commit uint64) {
	s.lastCommit = commit
	s.durableCommit.Store(commit)
}

func (s *Store) loadCounters() error {
	var err error
	if s.lastCycle, err = s.getUint(keyCycleCounter); err != nil {
		return err
	}
	if s.lastCommit, err = s.getUint(keyCommitCounter); err != nil {
		return err
	}
	s.durableCommit.Store(s.lastCommit)
	s.lastDS, err = s.getUint(keyDeadCounter)
	return err
}

func (s *Store) loadMeta(aud string) (*audMeta, bool, error) {
	v, ok, err := s.get(metaKey(aud))
	if err != nil || !ok {
		return &audMeta{}, false, err
	}
	m := &audMeta{}
	if err := json.Unmarshal(v, m); err != nil {
		return nil, false, fmt.Errorf("diff: state of audience %s: %w", aud, err)
	}
	return m, true, nil
}

func putMeta(b *pebble.Batch, aud string, m *audMeta) error {
	v, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return b.Set(metaKey(aud), v, nil)
}

// scan calls fn for each key with the prefix, in order. Key and value are
// valid only during the call.
func (s *Store) scan(prefix []byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err == nil {
			err = fn(it.Key(), v)
		}
		if err != nil {
			it.Close()
			return err
		}
	}
	return errors.Join(it.Error(), it.Close())
}

// recover discards interrupted cycles and rolls committed staged ones
// forward (see Open).
func (s *Store) recover() error {
	type interrupted struct {
		id uint64
		m  cycleMarker
	}
	var cycles []interrupted
	err := s.scan([]byte{tCycle}, func(k, v []byte) error {
		var m cycleMarker
		if len(k) != 9 {
			return errBadKey
		}
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("diff: in-progress cycle record: %w", err)
		}
		cycles = append(cycles, interrupted{binary.BigEndian.Uint64(k[1:]), m})
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range cycles {
		msg := "interrupted: the process stopped during the cycle"
		s.log.Warn("discarding an interrupted cycle", "audience", c.m.Audience, "run", c.m.Run, "started", c.m.Start)
		if err := s.abandon(c.id, c.m, errors.New(msg), nil); err != nil {
			return err
		}
	}
	var pending []string
	err = s.scan([]byte{tMeta}, func(k, v []byte) error {
		var m audMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("diff: audience state: %w", err)
		}
		if m.PendingApply != 0 {
			t, _, _, err := decodeElem(k[1:])
			if err != nil {
				return err
			}
			pending = append(pending, string(t))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, aud := range pending {
		m, _, err := s.loadMeta(aud)
		if err != nil {
			return err
		}
		s.log.Info("rolling a committed cycle forward", "audience", aud, "generation", m.Generation)
		if _, err := s.rollForward(aud, m); err != nil {
			return err
		}
	}
	return nil
}

// abandon discards what cycle id staged and records the failure: status
// Failed with the error, a failed run in the history. rec, when non-nil,
// is the run record to store (with the counts so far). The caller holds
// the audience lock, or is Open (nothing else runs yet).
func (s *Store) abandon(id uint64, mk cycleMarker, cause error, rec *RunRecord) error {
	m, _, err := s.loadMeta(mk.Audience)
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	dp := deltaPrefix(id)
	ep := eventCyclePrefix(id)
	tp := templateCyclePrefix(id)
	if err := errors.Join(
		b.DeleteRange(dp, prefixEnd(dp), nil),
		b.DeleteRange(ep, prefixEnd(ep), nil),
		b.DeleteRange(tp, prefixEnd(tp), nil),
		b.Delete(cycleKey(id), nil),
	); err != nil {
		return err
	}
	if m.Enabled {
		m.Status = Failed
	}
	m.Error = cause.Error()
	if rec == nil {
		rec = &RunRecord{Run: mk.Run, Start: mk.Start, Generation: m.Generation}
	}
	rec.OK = false
	rec.Error = cause.Error()
	if err := putMeta(b, mk.Audience, m); err != nil {
		return err
	}
	if err := s.putRun(b, mk.Audience, rec); err != nil {
		return err
	}
	if err := s.putHistory(b, mk.Audience, rec, m.Members); err != nil {
		return err
	}
	return b.Commit(pebble.Sync)
}

// Enable makes an audience eligible for cycles. A new audience is Computing
// until its first cycle completes; one with a generation returns to Live
// (or Failed, if its last cycle failed).
func (s *Store) Enable(aud string) error {
	return s.setEnabled(aud, true)
}

// Disable stops an audience's cycles; its membership is kept, and the next
// cycle after Enable diffs against it.
func (s *Store) Disable(aud string) error {
	return s.setEnabled(aud, false)
}

func (s *Store) setEnabled(aud string, on bool) (err error) {
	if err := s.checkWrite(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	defer s.lock(aud)()
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return err
	}
	if m.Enabled == on {
		return nil
	}
	m.Enabled = on
	switch {
	case !on:
		m.Status = Disabled
	case m.Error != "":
		m.Status = Failed
	case m.Generation > 0:
		m.Status = Live
	default:
		m.Status = Computing
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := putMeta(b, aud, m); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitEpoch(b, nil)
}

// State returns what the store knows of aud; an audience it has never seen
// is Disabled with no generation.
func (s *Store) State(aud string) (_ AudienceState, err error) {
	if err := s.check(); err != nil {
		return AudienceState{}, err
	}
	defer s.classifyInto(&err)
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return AudienceState{}, err
	}
	return s.overlay(m.state(aud)), nil
}

// Audiences returns the state of every audience the store holds, by name;
// audiences deleted from the workspace stay until purged.
func (s *Store) Audiences() (_ []AudienceState, err error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	defer s.classifyInto(&err)
	var out []AudienceState
	err = s.scan([]byte{tMeta}, func(k, v []byte) error {
		name, _, _, err := decodeElem(k[1:])
		if err != nil {
			return err
		}
		var m audMeta
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("diff: state of audience %s: %w", name, err)
		}
		out = append(out, s.overlay(m.state(string(name))))
		return nil
	})
	return out, err
}

// Purge deletes everything the store holds for aud except messages already
// in the outbox or the dead-letter store, which are still delivered.
func (s *Store) Purge(aud string) (err error) {
	if err := s.checkWrite(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	defer s.lock(aud)()
	b := s.db.NewBatch()
	defer b.Close()
	for _, p := range [][]byte{dataPrefix(aud), activationPrefix(aud), runPrefix(aud)} {
		if err := b.DeleteRange(p, prefixEnd(p), nil); err != nil {
			return err
		}
	}
	if err := b.Delete(historyKey(aud), nil); err != nil {
		return err
	}
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return err
	}
	if m.PendingApply != 0 {
		dp := deltaPrefix(m.PendingApply)
		if err := b.DeleteRange(dp, prefixEnd(dp), nil); err != nil {
			return err
		}
	}
	if err := b.Delete(metaKey(aud), nil); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commitEpoch(b, map[string]uint64{aud: 0})
}

// Member is one profile of a generation and its entity rows.
type Member struct {
	Profile string
	// Chains are the (key_0, …, key_n-1) rows of the profile, in order;
	// nil entries are NULL keys (the chain stops). A member with no entity
	// row has none.
	Chains [][]*string
}

// Members calls fn for each member of aud's current generation, in profile
// key order.
func (s *Store) Members(aud string, fn func(Member) error) (err error) {
	if err := s.check(); err != nil {
		return err
	}
	defer s.classifyInto(&err)
	defer s.lock(aud)()
	m, _, err := s.loadMeta(aud)
	if err != nil {
		return err
	}
	if m.PendingApply != 0 {
		if s.readOnly {
			return fmt.Errorf("diff: audience %s: its last generation's rows are still being moved into place; read it again once the worker has finished (or open the state read-write): %w", aud, ErrReadOnly)
		}
		if _, err := s.rollForward(aud, m); err != nil {
			return err
		}
	}
	p := dataPrefix(aud)
	var cur *Member
	err = s.scan(p, func(k, _ []byte) error {
		elems, err := decodeTuple(k[len(p):])
		if err != nil {
			return err
		}
		if len(elems) == 1 {
			if cur != nil {
				if err := fn(*cur); err != nil {
					return err
				}
			}
			cur = &Member{Profile: string(elems[0])}
			return nil
		}
		if cur == nil || cur.Profile != string(elems[0]) {
			return fmt.Errorf("diff: row of %q without its member: %w", elems[0], errBadKey)
		}
		chain := make([]*string, len(elems)-1)
		for i, e := range elems[1:] {
			if e != nil {
				t := string(e)
				chain[i] = &t
			}
		}
		cur.Chains = append(cur.Chains, chain)
		return nil
	})
	if err == nil && cur != nil {
		err = fn(*cur)
	}
	return err
}

var _ io.Closer = (*Store)(nil)
