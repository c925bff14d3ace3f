package diff

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// OpenReadOnly opens the store in dir for reading only: it never writes to
// dir, so it works on a read-only directory or file system, and while
// another process (a running worker) holds dir. Its writing methods return
// ErrReadOnly. It checks the commit record and reports damage as Open does.
//
// When another process holds dir, Pebble's lock forbids a second handle
// on the files themselves: the store then reads a private snapshot — the
// sstables hard-linked (copied when links are impossible), the MANIFEST,
// OPTIONS and write-ahead logs copied, taken again if Pebble changed the
// MANIFEST meanwhile — in a directory "readonly-PID-…" inside dir (or the
// system's temporary directory when dir is not writable), removed by
// Close. The snapshot holds what was committed when it was taken; cycles
// then in progress show as Computing.
//
// When no process holds dir, the store reads it in place. Cycles a stopped
// process left in progress show as Open's recovery would leave them
// (Failed, "interrupted"), without the recovery being written.
func OpenReadOnly(dir string, opts Options) (*Store, error) {
	opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if _, err := opts.FS.Stat(opts.FS.PathJoin(dir, CommitRecordFile)); err != nil && isNotExist(err) {
		// A state directory of Pebble files must exist; a read-only open
		// never creates one.
		if _, err := opts.FS.Stat(dir); err != nil {
			return nil, classify(dir, err)
		}
	}
	lockPath := opts.FS.PathJoin(dir, "LOCK")
	lock, err := opts.FS.Lock(lockPath)
	switch {
	case err == nil:
		// Nobody else holds it: read in place, keeping the lock so that
		// no writer starts meanwhile.
		o := opts
		o.FS = heldLockFS{opts.FS, lock}
		s, err := open(dir, dir, o, true)
		if err != nil {
			lock.Close()
			return nil, err
		}
		s.opts.FS = opts.FS
		s.lockCloser = lock
		if err := s.loadInterrupted(); err != nil {
			if !opts.Salvage {
				s.Close()
				return nil, classify(dir, err)
			}
			s.openProblem = errors.Join(s.openProblem, classify(dir, err))
		}
		return s, nil
	case isHeld(err):
		return openSnapshot(dir, opts)
	default:
		// The lock file cannot be created or opened for writing: a
		// read-only directory, where no writer can be at work either.
		o := opts
		o.FS = heldLockFS{opts.FS, nopCloser{}}
		s, err := open(dir, dir, o, true)
		if err != nil {
			return nil, err
		}
		s.opts.FS = opts.FS
		if err := s.loadInterrupted(); err != nil {
			if !opts.Salvage {
				s.Close()
				return nil, classify(dir, err)
			}
			s.openProblem = errors.Join(s.openProblem, classify(dir, err))
		}
		return s, nil
	}
}

func isHeld(err error) bool {
	var pe *os.PathError
	return strings.Contains(err.Error(), "lock held by current process") ||
		(!errors.As(err, &pe) && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK) || errors.Is(err, syscall.EACCES)))
}

// heldLockFS hands Pebble a lock the caller already holds (or none, on a
// directory nobody can write).
type heldLockFS struct {
	vfs.FS
	held io.Closer
}

func (f heldLockFS) Lock(string) (io.Closer, error) { return nopCloser{}, nil }

func (f heldLockFS) Unwrap() vfs.FS { return f.FS }

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// loadInterrupted collects the cycles left in progress by a process that
// stopped (a read-only store in place: nobody else runs).
func (s *Store) loadInterrupted() error {
	s.interrupted = map[string]cycleMarker{}
	return s.scan([]byte{tCycle}, func(k, v []byte) error {
		var m cycleMarker
		if len(k) != 9 {
			return errBadKey
		}
		if err := json.Unmarshal(v, &m); err != nil {
			return fmt.Errorf("diff: in-progress cycle record %d: %w", binary.BigEndian.Uint64(k[1:]), err)
		}
		s.interrupted[m.Audience] = m
		return nil
	})
}

// overlay shows an audience as recovery would leave it.
func (s *Store) overlay(st AudienceState) AudienceState {
	if _, ok := s.interrupted[st.Name]; ok {
		if st.Enabled {
			st.Status = Failed
		}
		st.Error = "interrupted: the process stopped during the cycle"
	}
	return st
}

// snapshotPrefix names the snapshot directories of read-only stores.
const snapshotPrefix = "readonly-"

// openSnapshot opens a private snapshot of dir, which another process
// holds.
func openSnapshot(dir string, opts Options) (*Store, error) {
	fs := opts.FS
	// The commit record first: the snapshot, taken after, holds at least
	// what it records.
	rec, err := readRecord(fs, dir)
	if err != nil && !opts.Salvage {
		return nil, classify(dir, err)
	}
	into, link, err := snapshotDir(fs, dir)
	if err != nil {
		return nil, classify(dir, err)
	}
	if err := takeSnapshot(fs, dir, into, link); err != nil {
		_ = fs.RemoveAll(into)
		return nil, classify(dir, err)
	}
	if rec != nil {
		if err := writeRecord(fs, into, rec); err != nil {
			_ = fs.RemoveAll(into)
			return nil, err
		}
	}
	s, err := open(dir, into, opts, true)
	if err != nil {
		_ = fs.RemoveAll(into)
		return nil, err
	}
	return s, nil
}

// snapshotDir makes the directory of a snapshot: inside dir, where
// sstables can be hard-linked, or in the temporary directory, where they
// are copied.
func snapshotDir(fs vfs.FS, dir string) (path string, link bool, err error) {
	for i := 0; i < 100; i++ {
		p := fs.PathJoin(dir, fmt.Sprintf("%s%d-%d", snapshotPrefix, os.Getpid(), time.Now().UnixNano()%1e9+int64(i)))
		if err := fs.MkdirAll(p, 0o755); err == nil {
			return p, true, nil
		} else if !errors.Is(err, os.ErrExist) {
			break
		}
	}
	if fs != vfs.Default {
		return "", false, errors.New("diff: cannot make a snapshot directory")
	}
	p, err := os.MkdirTemp("", "linkaud-state-")
	return p, false, err
}

// errMoved is a snapshot attempt overtaken by the writer: a file gone, or
// the MANIFEST changed while it was copied.
var errMoved = errors.New("diff: the state changed while it was being copied")

// takeSnapshot copies the Pebble files of dir into into, consistently: it
// retries while the writer changes the MANIFEST (a flush, a compaction, an
// ingestion) during the copy.
func takeSnapshot(fs vfs.FS, dir, into string, link bool) error {
	var err error
	for attempt := 0; attempt < 50; attempt++ {
		if attempt > 0 {
			time.Sleep(time.Duration(min(attempt, 10)) * 10 * time.Millisecond)
			if err := clearDir(fs, into); err != nil {
				return err
			}
		}
		if err = snapshotOnce(fs, dir, into, link); !errors.Is(err, errMoved) {
			return err
		}
	}
	return err
}

func clearDir(fs vfs.FS, dir string) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := fs.RemoveAll(fs.PathJoin(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// pebbleFileKinds sorts a state directory's names: MANIFEST, OPTIONS,
// markers, write-ahead logs and sstables are Pebble's.
func pebbleFileKind(name string) string {
	switch {
	case strings.HasPrefix(name, "MANIFEST-"):
		return "manifest"
	case strings.HasPrefix(name, "OPTIONS-"):
		return "options"
	case strings.HasPrefix(name, "marker."):
		return "marker"
	case strings.HasSuffix(name, ".log"):
		return "wal"
	case strings.HasSuffix(name, ".sst"), strings.HasSuffix(name, ".blob"):
		return "table"
	}
	return ""
}

// snapshotOnce copies a consistent set of dir's Pebble files into into,
// or returns errMoved when the writer changed the MANIFEST meanwhile. It
// reads sizes before it lists the files they may name: the MANIFEST, up
// to the size seen, names only sstables present when the directory is
// listed after, and the write-ahead logs, up to the sizes seen, only
// sstables a flushable ingestion linked before that listing too. (Sizes
// read after the listing would take in a flush, an ingestion or a
// compaction that named an sstable the listing missed, and the copy would
// not open.) What the logs gain after their size was read is left out: it
// was committed after the snapshot began.
func snapshotOnce(fs vfs.FS, dir, into string, link bool) error {
	names, err := fs.List(dir)
	if err != nil {
		return err
	}
	slices.Sort(names)
	manifest := currentManifest(names)
	if manifest == "" {
		return fmt.Errorf("diff: %s holds no MANIFEST marker", dir)
	}
	size, err := fileSize(fs, fs.PathJoin(dir, manifest))
	if err != nil {
		return moved(err)
	}
	// The logs of that first listing: one created since holds only what
	// was committed after it (Pebble closes a log before it makes the
	// next), and every older one is whole.
	var wals []string
	walSize := map[string]int64{}
	for _, n := range names {
		if pebbleFileKind(n) == "wal" {
			if walSize[n], err = fileSize(fs, fs.PathJoin(dir, n)); err != nil {
				return moved(err)
			}
			wals = append(wals, n)
		}
	}
	if names, err = fs.List(dir); err != nil {
		return err
	}
	slices.Sort(names)
	if currentManifest(names) != manifest {
		return errMoved
	}
	if err := copyFile(fs, fs.PathJoin(dir, manifest), fs.PathJoin(into, manifest), size); err != nil {
		return moved(err)
	}
	for _, n := range names {
		from, to := fs.PathJoin(dir, n), fs.PathJoin(into, n)
		switch pebbleFileKind(n) {
		case "marker":
			f, err := fs.Create(to, vfs.WriteCategoryUnspecified)
			if err != nil {
				return err
			}
			f.Close()
		case "options":
			if err := copyFile(fs, from, to, -1); err != nil {
				return moved(err)
			}
		case "table":
			if link {
				if err := fs.Link(from, to); err == nil {
					continue
				} else if isNotExist(err) {
					return moved(err)
				}
			}
			if err := copyFile(fs, from, to, -1); err != nil {
				return moved(err)
			}
		}
	}
	for _, n := range wals {
		if err := copyFile(fs, fs.PathJoin(dir, n), fs.PathJoin(into, n), walSize[n]); err != nil {
			return moved(err)
		}
	}
	// Consistent only if the MANIFEST did not move on meanwhile.
	after, err := fs.List(dir)
	if err != nil {
		return err
	}
	slices.Sort(after)
	if currentManifest(after) != manifest {
		return errMoved
	}
	if now, err := fileSize(fs, fs.PathJoin(dir, manifest)); err != nil || now != size {
		return errMoved
	}
	return nil
}

func moved(err error) error {
	if isNotExist(err) {
		return errMoved
	}
	return err
}

// currentManifest is the MANIFEST the newest manifest marker names.
func currentManifest(names []string) string {
	best, bestIter := "", -1
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, "marker.manifest.")
		if !ok {
			continue
		}
		iter, target, ok := strings.Cut(rest, ".")
		if !ok {
			continue
		}
		i, err := strconv.Atoi(iter)
		if err == nil && i > bestIter {
			best, bestIter = target, i
		}
	}
	return best
}

func fileSize(fs vfs.FS, path string) (int64, error) {
	st, err := fs.Stat(path)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// copyFile copies from to a new file to, n bytes (-1: all), synced.
func copyFile(fs vfs.FS, from, to string, n int64) error {
	src, err := fs.Open(from)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := fs.Create(to, vfs.WriteCategoryUnspecified)
	if err != nil {
		return err
	}
	var r io.Reader = src
	if n >= 0 {
		r = io.LimitReader(src, n)
	}
	if _, err := io.Copy(dst, r); err != nil {
		dst.Close()
		return err
	}
	return errors.Join(dst.Sync(), dst.Close())
}

// removeStaleSnapshots removes the snapshot directories of read-only
// stores whose process is gone.
func removeStaleSnapshots(fs vfs.FS, dir string) {
	names, err := fs.List(dir)
	if err != nil {
		return
	}
	for _, n := range names {
		rest, ok := strings.CutPrefix(n, snapshotPrefix)
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err != nil || pid <= 0 {
			continue
		}
		if pid != os.Getpid() && syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = fs.RemoveAll(fs.PathJoin(dir, n))
		}
	}
}
