package diff

import (
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Defaults of Options.
const (
	// DefaultMaxEventBytes is Segment's event size cap.
	DefaultMaxEventBytes = 32 << 10
	// DefaultFinalBatchBytes bounds the row changes a cycle keeps in memory
	// to commit in its final batch; beyond it the changes are staged.
	DefaultFinalBatchBytes = 16 << 20
	// DefaultStageBatchBytes is the size at which staged writes (events,
	// staged row changes, the roll-forward) are committed.
	DefaultStageBatchBytes = 4 << 20
	// DefaultHistoryRuns is how many runs per audience the history keeps.
	DefaultHistoryRuns = 50
	// DefaultCacheBytes is the Pebble block cache size.
	DefaultCacheBytes = 64 << 20
	// DefaultMemTableBytes is the Pebble memtable size: large enough that a
	// cycle of a few million changed rows flushes a handful of times.
	DefaultMemTableBytes = 32 << 20
	// DefaultFlushInterval is how long committed state may live only in
	// the write-ahead log before a commit flushes it to an sstable.
	DefaultFlushInterval = time.Minute
)

// NoCap as Options.MaxEventBytes sends events of any size.
const NoCap = -1

// Options configure a Store. The zero value is usable: EnsureDefaults fills
// every zero field with the default its comment names.
type Options struct {
	// FS is the file system the store lives on; default vfs.Default. Tests
	// use vfs.NewMem, vfs.NewCrashableMem, or errorfs to inject faults.
	FS vfs.FS
	// Logger receives the store's logs (recovery, dropped events,
	// duplicates); default slog.Default(). Pebble's own logs go there too.
	Logger *slog.Logger
	// MaxEventBytes caps one event's JSON payload; default
	// DefaultMaxEventBytes; NoCap for none. An event over the cap is not
	// written to the outbox: it is logged by messageId and counted in
	// CycleResult.Oversize.
	MaxEventBytes int
	// FinalBatchBytes bounds the membership changes a cycle holds in memory
	// and commits together with the new generation; default
	// DefaultFinalBatchBytes. A larger change is staged and rolled forward
	// after the switch (see doc.go).
	FinalBatchBytes int
	// StageBatchBytes is the size of the intermediate batches that stage
	// events and large changes; default DefaultStageBatchBytes.
	StageBatchBytes int
	// HistoryRuns is how many runs per audience are kept; default
	// DefaultHistoryRuns.
	HistoryRuns int
	// CacheBytes is the Pebble block cache size; default DefaultCacheBytes.
	CacheBytes int64
	// MemTableBytes is the Pebble memtable size; default
	// DefaultMemTableBytes.
	MemTableBytes uint64
	// Now tells the time of dead-lettering and of recovery records; default
	// time.Now. (A cycle's events carry the cycle start, CycleInput.Start.)
	Now func() time.Time
	// FlushInterval bounds how long committed state lives only in
	// Pebble's write-ahead log: a decision committed that long after the
	// last flush starts one (in the background), and Close flushes.
	// Default DefaultFlushInterval.
	FlushInterval time.Duration
	// Fatal is called when Pebble can no longer trust the state in this
	// process (a failed write-ahead log write or sync: a full disk, an
	// I/O error). It must not return: the process has to stop, and the
	// next Open recovers from the last synced state. Default: panic. The
	// CLI prints one line and exits 2.
	Fatal func(error)
	// Salvage opens a damaged state as far as it opens, for the state
	// tools (Verify, Export, Backup): a commit record newer than the state
	// and damage met while opening are kept for Verify to report
	// (Store.OpenProblem) instead of refusing the open. Only with
	// OpenReadOnly.
	Salvage bool
	// Pebble, when set, is called last on the Pebble options, for tuning
	// the defaults do not cover (tests use it to install a logger whose
	// Fatalf panics).
	Pebble func(*pebble.Options)
}

// EnsureDefaults fills zero fields with their defaults and returns o.
func (o *Options) EnsureDefaults() *Options {
	if o.FS == nil {
		o.FS = vfs.Default
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.MaxEventBytes == 0 {
		o.MaxEventBytes = DefaultMaxEventBytes
	}
	if o.FinalBatchBytes == 0 {
		o.FinalBatchBytes = DefaultFinalBatchBytes
	}
	if o.StageBatchBytes == 0 {
		o.StageBatchBytes = DefaultStageBatchBytes
	}
	if o.HistoryRuns == 0 {
		o.HistoryRuns = DefaultHistoryRuns
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = DefaultCacheBytes
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = DefaultMemTableBytes
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = DefaultFlushInterval
	}
	if o.Fatal == nil {
		o.Fatal = func(err error) { panic(err) }
	}
	return o
}

// Validate reports every invalid setting at once.
func (o *Options) Validate() error {
	var errs []error
	if o.MaxEventBytes < 0 && o.MaxEventBytes != NoCap {
		errs = append(errs, fmt.Errorf("diff: MaxEventBytes %d: positive, or NoCap", o.MaxEventBytes))
	}
	if o.FinalBatchBytes < 0 {
		errs = append(errs, fmt.Errorf("diff: FinalBatchBytes %d is negative", o.FinalBatchBytes))
	}
	if o.StageBatchBytes < 0 {
		errs = append(errs, fmt.Errorf("diff: StageBatchBytes %d is negative", o.StageBatchBytes))
	}
	if o.HistoryRuns < 0 {
		errs = append(errs, fmt.Errorf("diff: HistoryRuns %d is negative", o.HistoryRuns))
	}
	if o.CacheBytes < 0 {
		errs = append(errs, fmt.Errorf("diff: CacheBytes %d is negative", o.CacheBytes))
	}
	if o.MemTableBytes > 0 && o.MemTableBytes < 1<<20 {
		errs = append(errs, fmt.Errorf("diff: MemTableBytes %d is below 1 MiB", o.MemTableBytes))
	}
	if o.FlushInterval < 0 {
		errs = append(errs, fmt.Errorf("diff: FlushInterval %s is negative", o.FlushInterval))
	}
	return errors.Join(errs...)
}

// Options returns the options the store was opened with, defaults filled.
func (s *Store) Options() Options { return s.opts }
