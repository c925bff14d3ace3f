//go:build crashpoints

package crashpoint

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/sinks"
)

// Enabled reports whether crash points are compiled in.
const Enabled = true

type crashState struct {
	mu     sync.Mutex
	point  string // the point to crash at, "" for none
	at     int    // at its at-th hit
	counts map[string]int
	trace  *os.File
}

var state = func() *crashState {
	s := &crashState{counts: map[string]int{}}
	if v := os.Getenv(EnvPoint); v != "" {
		name, n, _ := strings.Cut(v, ":")
		if !slices.Contains(Points, name) {
			fmt.Fprintf(os.Stderr, "crashpoint: %s=%q: unknown point; known: %s\n", EnvPoint, v, strings.Join(Points, ", "))
			os.Exit(2)
		}
		s.point, s.at = name, 1
		if n != "" {
			at, err := strconv.Atoi(n)
			if err != nil || at < 1 {
				fmt.Fprintf(os.Stderr, "crashpoint: %s=%q: want NAME or NAME:N with N >= 1\n", EnvPoint, v)
				os.Exit(2)
			}
			s.at = at
		}
	}
	if f := os.Getenv(EnvTrace); f != "" {
		fh, err := os.OpenFile(f, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			fmt.Fprintf(os.Stderr, "crashpoint: %v\n", err)
			os.Exit(2)
		}
		s.trace = fh
	}
	return s
}()

// Hit counts a hit of point name and, when it is the configured N-th hit,
// kills the process with SIGKILL: no deferred function, no flush, no
// Pebble close runs, as when the machine loses power mid-cycle (except
// that the page cache survives).
func Hit(name string) {
	s := state
	if s.trace == nil && s.point != name {
		return
	}
	s.mu.Lock()
	s.counts[name]++
	n := s.counts[name]
	if s.trace != nil {
		// One unbuffered append per hit: the trace must be complete up to
		// the moment of a kill.
		_, _ = s.trace.WriteString(name + "\n")
	}
	if name == s.point && n == s.at {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never resumed: SIGKILL cannot be caught
	}
	s.mu.Unlock()
}

// FS wraps fs (nil: vfs.Default) so that every write and fsync of a file
// first hits pebble.write or pebble.sync.
func FS(fs vfs.FS) vfs.FS {
	if fs == nil {
		fs = vfs.Default
	}
	return errorfs.Wrap(fs, errorfs.InjectorFunc(func(op errorfs.Op) error {
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileWriteAt:
			Hit("pebble.write")
		case errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo:
			Hit("pebble.sync")
		}
		return nil
	}))
}

// Rows wraps a result stream: cycle.batch for every record it yields,
// cycle.streamed once at its end.
func Rows(rr array.RecordReader) array.RecordReader { return &rows{RecordReader: rr} }

type rows struct {
	array.RecordReader
	done bool
}

func (r *rows) Next() bool {
	ok := r.RecordReader.Next()
	switch {
	case ok:
		Hit("cycle.batch")
	case !r.done:
		r.done = true
		Hit("cycle.streamed")
	}
	return ok
}

// Destination wraps d: deliver.send before each Send, deliver.sent after a
// Send that succeeded. Batcher and Resumer are kept.
func Destination(d sinks.Destination) sinks.Destination {
	w := &dest{d: d}
	if r, ok := d.(sinks.Resumer); ok {
		return &resumerDest{dest: w, r: r}
	}
	return w
}

type dest struct{ d sinks.Destination }

func (w *dest) Send(ctx context.Context, batch []diff.Message) error {
	Hit("deliver.send")
	err := w.d.Send(ctx, batch)
	if err == nil {
		Hit("deliver.sent")
	}
	return err
}

func (w *dest) Close() error { return w.d.Close() }

func (w *dest) MaxBatch() int {
	if b, ok := w.d.(sinks.Batcher); ok {
		return b.MaxBatch()
	}
	return 0
}

type resumerDest struct {
	*dest
	r sinks.Resumer
}

func (w *resumerDest) Committed(ctx context.Context) (uint64, string, bool, error) {
	return w.r.Committed(ctx)
}

// Outbox wraps ob: deliver.acked after each acknowledgement.
func Outbox(ob sinks.Outbox) sinks.Outbox { return &outbox{ob} }

type outbox struct{ sinks.Outbox }

func (o *outbox) Ack(dest string, msgs []diff.Message) error {
	err := o.Outbox.Ack(dest, msgs)
	Hit("deliver.acked")
	return err
}
