package diff

import (
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// pebbleLogger sends Pebble's logs to slog, once per distinct message:
// Pebble retries a failing flush or compaction in a loop (a full disk, a
// directory made read-only), and a log line per attempt would flood the
// logs. Messages that differ only in numbers (file numbers, sizes) count
// as one; repeats are counted and the count is logged when the store
// closes.
//
// Fatalf is called when Pebble can no longer trust its state in this
// process (a failed WAL write or sync): it calls Options.Fatal, which must
// not return (default: panic).
type pebbleLogger struct {
	l     *slog.Logger
	fatal func(error)
	dedup *dedup
	// failed is the store's writeFailed: after a fatal error the
	// write-ahead log is not to be touched again (no flush at Close).
	failed *atomic.Bool
}

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(pebbleMsg(format, args))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	msg := pebbleMsg(format, args)
	if p.dedup.first(msg) {
		p.l.Error(msg)
	}
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := pebbleMsg(format, args)
	p.failed.Store(true)
	p.l.Error(msg)
	p.fatal(errors.New(msg))
	panic(msg) // Options.Fatal must not return
}

// pebbleMsg prefixes Pebble's message with "pebble: " unless it has it
// already (a full disk read "pebble: pebble: fatal commit error: …"), on
// one line: Pebble's errors print stack traces with %+v.
func pebbleMsg(format string, args []any) string {
	msg := fmt.Sprintf(strings.ReplaceAll(format, "%+v", "%v"), args...)
	if i := strings.IndexByte(msg, '\n'); i >= 0 {
		msg = msg[:i]
	}
	return "pebble: " + strings.TrimPrefix(msg, "pebble: ")
}

// dedup remembers the messages logged, by their shape.
type dedup struct {
	mu      sync.Mutex
	counts  map[string]int
	samples map[string]string
}

const dedupMax = 256

var digits = regexp.MustCompile(`[0-9]+`)

// first reports whether msg's shape was not seen before.
func (d *dedup) first(msg string) bool {
	key := digits.ReplaceAllString(msg, "#")
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.counts == nil {
		d.counts, d.samples = map[string]int{}, map[string]string{}
	}
	n, seen := d.counts[key]
	if !seen && len(d.counts) >= dedupMax {
		return false
	}
	d.counts[key] = n + 1
	if !seen {
		d.samples[key] = msg
	}
	return !seen
}

// repeats returns the messages logged more than once, with their counts.
func (d *dedup) repeats() map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]int{}
	for k, n := range d.counts {
		if n > 1 {
			out[d.samples[k]] = n
		}
	}
	return out
}

// health is what Pebble's background work reported: damage found by a
// compaction or a read, and write failures of flushes and compactions
// (permission, space) that make the next writes fail or stall.
type health struct {
	damaged atomic.Pointer[CorruptionError]
	// lastBounds is the end of the key range of the last damaged file
	// reported, where a salvage resumes.
	lastBounds atomic.Pointer[[]byte]
	writeErr   atomic.Pointer[error]
	// lastErr and repeats throttle a background error that repeats at
	// once (Pebble retries a failed flush without a pause).
	mu      sync.Mutex
	lastErr string
	repeats int
}

// listener is the Pebble event listener of a store in dir: it records
// corruption (instead of Pebble's default, a Fatalf) and background write
// failures, logging each distinct one once.
func (h *health) listener(dir string, log *slog.Logger, d *dedup) *pebble.EventListener {
	return &pebble.EventListener{
		DataCorruption: func(info pebble.DataCorruptionInfo) {
			file := ""
			if info.Path != "" {
				file = baseName(info.Path)
			}
			ce := &CorruptionError{Dir: dir, File: file, Err: info.Details}
			if end := info.Bounds.End.Key; end != nil {
				e := slices.Clone(end)
				h.lastBounds.Store(&e)
			}
			if h.damaged.CompareAndSwap(nil, ce) {
				log.Error("the state is damaged", "file", file, "error", oneLine(info.Details))
			}
		},
		BackgroundError: func(err error) {
			cerr := classify(dir, err)
			msg := oneLine(err)
			if d.first("background error: " + msg) {
				log.Error("pebble: background error", "error", msg)
			}
			var ce *CorruptionError
			switch {
			case errors.As(cerr, &ce):
				h.damaged.CompareAndSwap(nil, ce)
			case errors.Is(cerr, ErrUnwritable), errors.Is(cerr, ErrDiskFull):
				h.writeErr.Store(&cerr)
			}
			h.throttle(digits.ReplaceAllString(msg, "#"))
		},
		FlushEnd: func(info pebble.FlushInfo) {
			if info.Err == nil {
				h.writeErr.Store(nil)
			}
		},
	}
}

// throttle slows down a background error that repeats: Pebble retries a
// failed flush at once, in a loop, for as long as the cause lasts.
func (h *health) throttle(shape string) {
	h.mu.Lock()
	if shape == h.lastErr {
		h.repeats++
	} else {
		h.lastErr, h.repeats = shape, 0
	}
	n := h.repeats
	h.mu.Unlock()
	if n > 0 {
		time.Sleep(min(time.Duration(n)*20*time.Millisecond, 200*time.Millisecond))
	}
}

// check returns the damage found so far, if any.
func (h *health) check() error {
	if ce := h.damaged.Load(); ce != nil {
		return ce
	}
	return nil
}

// checkWrite returns the damage found so far, or the last background
// write failure.
func (h *health) checkWrite() error {
	if err := h.check(); err != nil {
		return err
	}
	if p := h.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}

func baseName(path string) string {
	if i := strings.LastIndexAny(path, `/\`); i >= 0 {
		return path[i+1:]
	}
	return path
}
