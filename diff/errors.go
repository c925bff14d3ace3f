package diff

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// Refusals. A Store that finds its files damaged, or older than what it
// committed, refuses to go on rather than compute on wrong state: the
// errors below say which file and what to do, and the CLI turns them into
// one line and exit 2.
var (
	// ErrCorrupt is matched (errors.Is) by every error caused by damaged
	// state: a checksum mismatch in a file Pebble reads (*CorruptionError)
	// and a state older than what was committed (*RollbackError).
	ErrCorrupt = errors.New("diff: the state is damaged")
	// ErrRolledBack is matched by *RollbackError.
	ErrRolledBack = errors.New("diff: the state is older than what was committed")
	// ErrLocked is returned by Open when another process holds the state
	// directory (a running worker).
	ErrLocked = errors.New("diff: the state directory is in use by another process")
	// ErrUnwritable is matched by errors of a state directory that cannot
	// be written: permission denied, a read-only file system. Read-only
	// commands use OpenReadOnly, which needs no write access.
	ErrUnwritable = errors.New("diff: the state directory is not writable")
	// ErrDiskFull is matched by errors of a write that failed for want of
	// space (ENOSPC, EDQUOT).
	ErrDiskFull = errors.New("diff: no space left on the state's device")
)

// CorruptionError is a state file whose contents fail their checksum (or
// cannot be decoded): Pebble's sstables, write-ahead logs and MANIFEST are
// checksummed block by block or record by record.
type CorruptionError struct {
	// Dir is the state directory; File the damaged file's name in it
	// ("" when Pebble did not say which).
	Dir, File string
	// Err is Pebble's error.
	Err error
}

func (e *CorruptionError) Error() string {
	where := e.Dir
	if e.File != "" {
		where = filepath.Join(e.Dir, e.File)
	}
	return fmt.Sprintf("the state is damaged: %s: %s", where, oneLine(e.Err))
}

func (e *CorruptionError) Unwrap() error { return e.Err }

// Is makes errors.Is(err, ErrCorrupt) hold.
func (e *CorruptionError) Is(target error) bool { return target == ErrCorrupt }

// RollbackError is a state older than what was committed: the commit
// record (see doc.go, "Rollback detection") names a later commit than the
// one the Pebble files hold, so something was lost — most often the tail
// of a write-ahead log, damaged or deleted, which Pebble reads as a torn
// write and drops without a word.
type RollbackError struct {
	Dir string
	// Recorded is the commit number of the commit record; Found the one
	// in the state.
	Recorded, Found uint64
	// Audiences names the audiences whose committed generation is missing,
	// as "name (generation G of H)".
	Audiences []string
}

func (e *RollbackError) Error() string {
	msg := fmt.Sprintf("the state in %s is older than what was committed: it holds commit %d, but commit %d was recorded in %s",
		e.Dir, e.Found, e.Recorded, CommitRecordFile)
	if len(e.Audiences) > 0 {
		msg += "; missing: " + strings.Join(e.Audiences, ", ")
	}
	return msg + " (a write-ahead log was lost or damaged)"
}

// Is makes errors.Is(err, ErrRolledBack) and errors.Is(err, ErrCorrupt)
// hold.
func (e *RollbackError) Is(target error) bool { return target == ErrRolledBack || target == ErrCorrupt }

// IsCorrupt reports whether err is (or wraps) damaged state: a
// CorruptionError, a RollbackError, or a Pebble corruption error that was
// not classified yet.
func IsCorrupt(err error) bool {
	return err != nil && (errors.Is(err, ErrCorrupt) || pebble.IsCorruptionError(err))
}

// pebbleFile finds the file a Pebble error names: a path, or "file
// 000123" for an sstable.
var (
	pebblePath    = regexp.MustCompile(`(?:^|[\s"(])(/[^\s":;]+\.(?:sst|log|blob)|/[^\s":;]*(?:MANIFEST|OPTIONS)-\d+)`)
	pebbleFileNum = regexp.MustCompile(`\bfile (\d{6,})\b`)
	pebbleName    = regexp.MustCompile(`\b((?:MANIFEST|OPTIONS)-\d{6,}|\d{6,}\.(?:sst|log|blob))\b`)
)

// corruptFile is the name of the damaged file in err's message, or "".
func corruptFile(err error) string {
	msg := err.Error()
	if m := pebblePath.FindStringSubmatch(msg); m != nil {
		return filepath.Base(m[1])
	}
	if m := pebbleName.FindStringSubmatch(msg); m != nil {
		return m[1]
	}
	if m := pebbleFileNum.FindStringSubmatch(msg); m != nil {
		return m[1] + ".sst"
	}
	return ""
}

// oneLine is err's message on one line, without Pebble's key bounds.
func oneLine(err error) string {
	msg := err.Error()
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	if i := strings.Index(msg, "; bounds: "); i >= 0 {
		if j := strings.Index(msg[i:], "; details: "); j >= 0 {
			msg = msg[:i] + ": " + msg[i+j+len("; details: "):]
		} else {
			msg = msg[:i]
		}
	}
	return strings.TrimPrefix(msg, "pebble: ")
}

// classify turns Pebble's errors into the package's: corruption into a
// *CorruptionError naming the file, permission and space errors into
// errors matching ErrUnwritable and ErrDiskFull. Other errors are returned
// as they are.
func classify(dir string, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrCorrupt), errors.Is(err, ErrUnwritable), errors.Is(err, ErrDiskFull), errors.Is(err, ErrLocked):
		return err
	case pebble.IsCorruptionError(err):
		return &CorruptionError{Dir: dir, File: corruptFile(err), Err: err}
	case isPermission(err):
		return &ioError{kind: ErrUnwritable, dir: dir, err: err}
	case isNoSpace(err):
		return &ioError{kind: ErrDiskFull, dir: dir, err: err}
	}
	return err
}

// ioError is a permission or space failure of the state directory.
type ioError struct {
	kind error
	dir  string
	err  error
}

func (e *ioError) Error() string {
	what := "cannot be written"
	if e.kind == ErrDiskFull {
		what = "is on a full disk"
	}
	return fmt.Sprintf("the state directory %s %s: %s", e.dir, what, oneLine(e.err))
}

func (e *ioError) Unwrap() error { return e.err }

func (e *ioError) Is(target error) bool { return target == e.kind }

func isPermission(err error) bool {
	return errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.EPERM)
}

func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT)
}

// fail classifies err for the store's methods.
func (s *Store) fail(err error) error { return classify(s.dir, err) }

// classifyInto classifies *err for a method's deferred return; damage
// found during the call (reported by Pebble's event listener) wins over
// whatever error it caused.
func (s *Store) classifyInto(err *error) {
	if *err == nil {
		return
	}
	defer s.noteFailure(*err)
	if d := s.health.check(); d != nil && !errors.Is(*err, ErrCorrupt) && pebble.IsCorruptionError(*err) {
		*err = d
		return
	}
	*err = classify(s.dir, *err)
}

// noteFailure remembers an I/O failure or damage: Pebble's write-ahead log
// may then be unusable, and rotating it (a flush) would panic, so Close
// and the periodic flush leave it alone.
func (s *Store) noteFailure(err error) {
	var pe *fs.PathError
	var errno syscall.Errno
	if errors.Is(err, ErrDiskFull) || errors.Is(err, ErrUnwritable) || IsCorrupt(err) || errors.As(err, &pe) || errors.As(err, &errno) {
		s.writeFailed.Store(true)
	}
}
