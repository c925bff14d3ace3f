package faults

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// fullDisk is a file system that runs out of space: once the bytes written
// through it reach a budget, writes fail with ENOSPC after writing what
// still fit, as write(2) on a full disk does. Everything else (creating
// files, syncing what was written, reading) keeps working.
type fullDisk struct {
	vfs.FS
	mu      sync.Mutex
	limited bool
	left    int64 // bytes that still fit, when limited
	written int64 // bytes written in all
	refused int   // writes that failed for want of space
}

func newFullDisk(fs vfs.FS) *fullDisk { return &fullDisk{FS: fs} }

// limit leaves n more bytes of space.
func (d *fullDisk) limit(n int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limited, d.left = true, n
}

// free lifts the limit, as an operator deleting files would.
func (d *fullDisk) free() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.limited = false
}

func (d *fullDisk) counts() (written int64, refused int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.written, d.refused
}

// take returns how many of n bytes fit.
func (d *fullDisk) take(n int) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.limited {
		n = int(min(int64(n), d.left))
		d.left -= int64(n)
	}
	d.written += int64(n)
	return n
}

func (d *fullDisk) refuse() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.refused++
}

func (d *fullDisk) wrap(name string, f vfs.File, err error) (vfs.File, error) {
	if err != nil {
		return nil, err
	}
	return &fullFile{File: f, d: d, name: name}, nil
}

func (d *fullDisk) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.Create(name, c)
	return d.wrap(name, f, err)
}

func (d *fullDisk) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	f, err := d.FS.OpenReadWrite(name, c, opts...)
	return d.wrap(name, f, err)
}

func (d *fullDisk) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := d.FS.ReuseForWrite(oldname, newname, c)
	return d.wrap(newname, f, err)
}

func (d *fullDisk) GetDiskUsage(path string) (vfs.DiskUsage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	u := vfs.DiskUsage{AvailBytes: 1 << 40, TotalBytes: 1<<40 + uint64(d.written), UsedBytes: uint64(d.written)}
	if d.limited {
		u.AvailBytes = uint64(max(d.left, 0))
		u.TotalBytes = u.AvailBytes + u.UsedBytes
	}
	return u, nil
}

func (d *fullDisk) Unwrap() vfs.FS { return d.FS }

var _ vfs.FS = (*fullDisk)(nil)

type fullFile struct {
	vfs.File
	d    *fullDisk
	name string
}

func (f *fullFile) Write(p []byte) (int, error) {
	n := f.d.take(len(p))
	w, err := f.File.Write(p[:n])
	if err == nil && n < len(p) {
		f.d.refuse()
		err = &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	return w, err
}

func (f *fullFile) WriteAt(p []byte, off int64) (int, error) {
	n := f.d.take(len(p))
	w, err := f.File.WriteAt(p[:n], off)
	if err == nil && n < len(p) {
		f.d.refuse()
		err = &os.PathError{Op: "write", Path: f.name, Err: syscall.ENOSPC}
	}
	return w, err
}

// diskOutcome is how one run against a full disk ended.
type diskOutcome struct {
	err     error // returned
	stopped any   // the panic: Pebble stops the process on a failed WAL write
}

func (o diskOutcome) String() string {
	switch {
	case o.stopped != nil:
		return fmt.Sprintf("process stopped: %v", o.stopped)
	case o.err != nil:
		return "error: " + o.err.Error()
	}
	return "no failure"
}

// run calls fn, turning a panic into an outcome: Pebble's Fatalf panics
// (diff's logger) when a WAL write fails, where the process would stop.
func run(fn func() error) (o diskOutcome) {
	defer func() {
		if r := recover(); r != nil {
			o.stopped = r
		}
	}()
	o.err = fn()
	return o
}

// diskRig opens engines on a crashable in-memory file system behind a
// fullDisk, and "restarts the process": a crash clone keeps only what was
// synced, and a new engine opens on it.
type diskRig struct {
	t    *testing.T
	f    fixture
	dir  string
	opts engine.Options
	clk  *clock
	mem  *vfs.MemFS
	disk *fullDisk
	e    *engine.Engine
	logs *bytes.Buffer
}

func (r *diskRig) open(mem *vfs.MemFS) {
	r.t.Helper()
	r.mem, r.disk = mem, newFullDisk(mem)
	r.logs = &bytes.Buffer{}
	opts := r.opts
	opts.Store.FS = r.disk
	// Only the cycle's and the acknowledgements' own writes meet the full
	// disk: a background compaction meeting it instead would log and
	// retry, or stop the process from a goroutine no test can recover.
	opts.Store.Pebble = func(o *pebble.Options) { o.DisableAutomaticCompactions = true }
	opts.Logger = slog.New(slog.NewTextHandler(&lockedWriter{w: r.logs}, nil))
	r.e = open(r.t, load(r.t, r.dir), r.clk, opts)
	// Open replays the WAL into a memtable that Pebble flushes in the
	// background; flushing now keeps those writes out of what a point
	// measures.
	if err := r.e.Store().Flush(); err != nil {
		r.t.Fatal(err)
	}
}

// restart abandons the engine as a stopped process would (its warehouse
// and destinations are closed; its state is left as the crash left it) and
// opens a new one on what was synced, with the disk's space freed.
func (r *diskRig) restart() {
	r.t.Helper()
	r.abandon()
	r.open(r.mem.CrashClone(vfs.CrashCloneCfg{}))
}

// abandon closes the engine if it still works; after Pebble's fatal error
// the store is left alone, as the process would have left it.
func (r *diskRig) abandon() {
	if r.e == nil {
		return
	}
	r.disk.free()
	_ = run(func() error { return r.e.Close() })
	r.e = nil
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestDiskFullMidCycle runs cycle 2 on a state directory whose disk fills
// up at points spread over the cycle's writes, for a change committed in
// one batch and for a staged one. Whether the cycle returns an error or
// Pebble stops the process (a failed WAL write is fatal to it), the state
// reopens, once space is freed, on generation 1 exactly — the audience
// Failed with the reason, or Live if the cycle had not yet recorded its
// start — or, if the disk filled after the switch, on generation 2 exactly;
// a cycle run then emits exactly a clean run's events.
func TestDiskFullMidCycle(t *testing.T) {
	f := fixture{profiles: 400}
	total := 0
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			var opts engine.Options
			if staged {
				opts.Store.FinalBatchBytes = 2 << 10
				opts.Store.StageBatchBytes = 1 << 10
			}
			want1, want2 := cleanRun(t, f, opts)
			r := &diskRig{t: t, f: f, dir: f.write(t), opts: opts, clk: &clock{}}
			r.open(vfs.NewCrashableMem())
			mustCompute(t, r.e, r.clk, start1)
			r.abandon()
			base := r.mem
			f.writeData(t, r.dir, f.data(2))

			// A clean cycle 2 tells how much it writes.
			r.open(base.CrashClone(vfs.CrashCloneCfg{}))
			w0, _ := r.disk.counts()
			res := mustCompute(t, r.e, r.clk, start2)
			w1, _ := r.disk.counts()
			if res.Staged != staged {
				t.Fatalf("staged = %t, want %t", res.Staged, staged)
			}
			r.abandon()
			cycleBytes := w1 - w0

			var stopped, failed, succeeded, before, after int
			points := 12
			if testing.Short() {
				points = 4
			}
			for p := range points {
				budget := cycleBytes * int64(p) / int64(points)
				what := fmt.Sprintf("disk full after %d of the cycle's %d bytes", budget, cycleBytes)
				r.open(base.CrashClone(vfs.CrashCloneCfg{}))
				r.disk.limit(budget)
				out := run(func() error { _, err := compute(r.e, r.clk, start2); return err })
				_, refused := r.disk.counts()
				switch {
				case refused == 0:
					t.Fatalf("%s: no write was refused (%v)", what, out)
				case out.stopped == nil && out.err == nil:
					// The disk filled after the switch, in the
					// roll-forward of staged changes (not synced: the
					// next Open redoes it). Generation 2 is current.
					succeeded++
				case out.stopped != nil:
					stopped++
				default:
					failed++
				}
				if out.stopped != nil || out.err != nil {
					if !strings.Contains(out.String()+r.logs.String(), "no space left on device") {
						t.Fatalf("%s: neither the outcome nor the logs name the full disk: %v", what, out)
					}
				}
				if out.stopped == nil && out.err != nil {
					// The process carries on: with space freed, the
					// store works, and holds generation 1, Failed.
					r.disk.free()
					checkFailed(t, r.e.Store(), want1, "no space left on device")
				}
				r.restart()
				got := take(t, r.e.Store())
				switch got.members {
				case want1.members:
					before++
					if !strings.HasPrefix(got.status, "Failed gen=1") && !strings.HasPrefix(got.status, "Live gen=1") {
						t.Fatalf("%s: reopened with status %s", what, got.status)
					}
					if strings.HasPrefix(got.status, "Failed") {
						if st, _ := r.e.Store().State(audience); !strings.Contains(st.Error, "interrupted") {
							t.Fatalf("%s: reopened Failed with %q", what, st.Error)
						}
					}
					w := want1
					w.status = got.status
					if d := diffSnapshots(got, w); d != "" {
						t.Fatalf("%s: reopened on generation 1 but:\n%s", what, d)
					}
					mustCompute(t, r.e, r.clk, start2)
				case want2.members:
					after++
				default:
					t.Fatalf("%s: reopened on members of neither generation", what)
				}
				if d := diffSnapshots(take(t, r.e.Store()), want2); d != "" {
					t.Fatalf("%s: after recovery and a cycle, the state differs from a clean run:\n%s", what, d)
				}
				r.abandon()
				checkLeftovers(t, r.mem, r.e0Dir())
			}
			total += points
			t.Logf("%d points over %d bytes: %d stopped the process, %d failed the cycle, %d filled the disk after the switch; reopened %d times on generation 1, %d on 2",
				points, cycleBytes, stopped, failed, succeeded, before, after)
			if before == 0 {
				t.Fatal("the disk never filled before the switch")
			}
		})
	}
	t.Logf("%d full-disk points in all", total)
}

func (r *diskRig) e0Dir() string { return load(r.t, r.dir).StateDir }

// TestDiskFullMidAck fills the disk while delivery acknowledges batches to
// a file destination, at points spread over the acknowledgements. Pebble
// stops the process at the failed WAL write; after a restart with space
// freed, delivery resumes. The destination then holds every message of the
// outbox, in per-profile order, each at least once: only the batch whose
// acknowledgement was lost is repeated, with the same messageIds.
func TestDiskFullMidAck(t *testing.T) {
	f := fixture{profiles: 400, destination: `type file path "events.jsonl" batch_size 50`}
	_, want2 := cleanRun(t, f, engine.Options{})
	r := &diskRig{t: t, f: f, dir: f.write(t), clk: &clock{}}
	r.open(vfs.NewCrashableMem())
	mustCompute(t, r.e, r.clk, start1)
	f.writeData(t, r.dir, f.data(2))
	mustCompute(t, r.e, r.clk, start2)
	if d := diffSnapshots(take(t, r.e.Store()), want2); d != "" {
		t.Fatal(d)
	}
	outbox := pending(t, r.e.Store())
	r.abandon()
	base := r.mem
	events := filepath.Join(r.dir, "events.jsonl")

	// A clean delivery tells how much the acknowledgements write.
	r.open(base.CrashClone(vfs.CrashCloneCfg{}))
	w0, _ := r.disk.counts()
	if _, err := r.e.Deliver(context.Background(), dest); err != nil {
		t.Fatal(err)
	}
	w1, _ := r.disk.counts()
	r.abandon()
	ackBytes := w1 - w0
	if got := fileIDs(t, events); len(got) != len(outbox) {
		t.Fatalf("a clean delivery wrote %d events for %d", len(got), len(outbox))
	}

	points := 10
	if testing.Short() {
		points = 4
	}
	dupTotal := 0
	for p := range points {
		budget := ackBytes * int64(p) / int64(points)
		what := fmt.Sprintf("disk full after %d of the acknowledgements' %d bytes", budget, ackBytes)
		if err := os.Remove(events); err != nil {
			t.Fatal(err)
		}
		r.open(base.CrashClone(vfs.CrashCloneCfg{}))
		r.disk.limit(budget)
		out := run(func() error { _, err := r.e.Deliver(context.Background(), dest); return err })
		if out.stopped == nil && out.err == nil {
			t.Fatalf("%s: delivery succeeded", what)
		}
		if !strings.Contains(out.String()+r.logs.String(), "no space left on device") {
			t.Fatalf("%s: neither the outcome nor the logs name the full disk: %v", what, out)
		}
		delivered := len(fileIDs(t, events))
		r.restart()
		left := len(pending(t, r.e.Store()))
		if _, err := r.e.Deliver(context.Background(), dest); err != nil {
			t.Fatalf("%s: delivery after the restart: %v", what, err)
		}
		if n := len(pending(t, r.e.Store())); n != 0 {
			t.Fatalf("%s: %d events left", what, n)
		}
		ids := fileIDs(t, events)
		dups := sinktest.CheckReceived(t, outbox, ids, outbox)
		if dups > 50 {
			t.Fatalf("%s: %d duplicates, more than the batch in flight", what, dups)
		}
		if t.Failed() {
			t.Fatalf("%s: the destination does not hold the outbox", what)
		}
		dupTotal += dups
		t.Logf("%s: %s; %d delivered before, %d left after the restart, %d repeated", what, out, delivered, left, dups)
		r.abandon()
	}
	t.Logf("%d full-disk points over %d bytes of acknowledgements; %d repeated deliveries in all, each with its messageId", points, ackBytes, dupTotal)
}
