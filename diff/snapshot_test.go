package diff_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
)

// committedView is what a snapshot must agree on with the writer: the
// generation, the members and every pending message (the status aside: a
// cycle in progress shows as Computing in a snapshot).
func committedView(s *diff.Store) (string, int, error) {
	snap, err := tryTake(s)
	if err != nil {
		return "", 0, err
	}
	gen, _, _ := strings.Cut(strings.SplitN(snap.status, "gen=", 2)[1], " ")
	return "generation " + gen + "\n" + snap.members + snap.outbox, strings.Count(snap.outbox, "\n"), nil
}

// snapshotWriter drives a store the way a worker does: cycles (a new
// generation and its events, one synced batch) and acknowledgements of
// half of a destination's outbox (another synced batch), optionally flushing now and
// then so that Pebble rotates and recycles its write-ahead logs and
// rewrites its MANIFEST under the snapshots.
type snapshotWriter struct {
	sc *crashScenario
	s  *diff.Store
	op int
}

func (w *snapshotWriter) step(t testing.TB, flushEvery int) error {
	w.op++
	if w.op%3 == 0 {
		// One destination per step: each Ack is a commit of its own.
		dest := []string{"braze", "crm", "hook"}[w.op/3%3]
		msgs, err := w.s.Pending(dest, 0, 1<<20)
		if err != nil {
			return err
		}
		if err := w.s.Ack(dest, msgs[:len(msgs)/2]); err != nil {
			return err
		}
	} else {
		rows := w.sc.gen2
		if w.op%2 == 1 {
			rows = w.sc.gen1
		}
		if _, err := w.sc.cycle(t, w.s, rows, w.sc.start2.Add(time.Duration(w.op)*time.Minute)); err != nil {
			return err
		}
	}
	if flushEvery > 0 && w.op%flushEvery == 0 {
		return w.s.Flush()
	}
	return nil
}

// readSnapshot opens dir read-only while the writer holds it (a private
// snapshot), and returns its view, then backs that store up and returns
// the backup's view too, with the backup report's pending count.
func readSnapshot(t *testing.T, dir string, o diff.Options) (snap, backup string, pending int, reported int64) {
	t.Helper()
	r, err := diff.OpenReadOnly(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	snap, pending, err = committedView(r)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "backup")
	rep, err := r.Backup(out)
	if err != nil {
		t.Fatal(err)
	}
	b, err := diff.Open(out, o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	backup, _, err = committedView(b)
	if err != nil {
		t.Fatal(err)
	}
	return snap, backup, pending, rep.Pending
}

// A read-only open of a store another handle holds (a worker's, as
// `audiences list`, `outbox list` or `state backup` do while it runs) reads
// a private snapshot; that snapshot, and a backup taken from it, must hold
// everything the writer committed before the snapshot began: a cycle's
// generation, members and events, and its acknowledgements, while they
// live only in the write-ahead log and the memtable (the writer idle, no
// flush yet), and while the writer keeps committing, flushing, rotating
// and recycling its logs.
func TestSnapshotHoldsWhatWasCommitted(t *testing.T) {
	o := crashOptions(nil, false)
	o.FS = nil
	// The writer counts the write-ahead logs Pebble recycles (an obsolete
	// log renamed and overwritten from its start: what a snapshot must not
	// copy half-old).
	var recycled atomic.Int64
	wo := o
	wo.Pebble = func(po *pebble.Options) {
		l := *po.EventListener
		created := l.WALCreated
		l.WALCreated = func(info pebble.WALCreateInfo) {
			if info.RecycledFileNum != 0 {
				recycled.Add(1)
			}
			if created != nil {
				created(info)
			}
		}
		po.EventListener = &l
	}
	sc := newCrashScenario()
	dir := filepath.Join(t.TempDir(), "state")
	s, err := diff.Open(dir, wo)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	w := &snapshotWriter{sc: sc, s: s}

	// The writer idle between commits: each snapshot holds exactly the
	// last commit, which lives in the log and the memtable only.
	for range 6 {
		if err := w.step(t, 0); err != nil {
			t.Fatal(err)
		}
		want, wantPending, err := committedView(s)
		if err != nil {
			t.Fatal(err)
		}
		if m := s.Metrics(); m.Flush.Count != 0 || m.MemTable.Size == 0 {
			t.Fatalf("after op %d: %d flushes, memtable of %d bytes: the state is not in the log alone, so this no longer tests its tail", w.op, m.Flush.Count, m.MemTable.Size)
		}
		snap, backup, pending, reported := readSnapshot(t, dir, o)
		if snap != want {
			t.Fatalf("after op %d, a snapshot differs from what the writer committed (%d pending events; the snapshot has %d):\n%s", w.op, wantPending, pending, firstDiff(snap, want))
		}
		if backup != want || reported != int64(wantPending) {
			t.Fatalf("after op %d, the backup (reporting %d pending events) differs from what the writer committed (%d pending):\n%s", w.op, reported, wantPending, firstDiff(backup, want))
		}
	}

	// The writer busy: each snapshot holds one of the states it committed,
	// never one older than the last committed before the snapshot began.
	var (
		mu      sync.Mutex
		history []string // each state the writer committed, in order
	)
	first, _, err := committedView(s)
	if err != nil {
		t.Fatal(err)
	}
	history = append(history, first)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond): // leave the CPU to the reader now and then
			}
			if err := w.step(t, 4); err != nil {
				t.Error(err)
				return
			}
			v, _, err := committedView(s)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			history = append(history, v)
			mu.Unlock()
		}
	})
	type seen struct {
		before         int // states committed before the snapshot began
		snap, backup   string
		pending        int
		reportedBackup int64
	}
	var seens []seen
	for range 12 {
		mu.Lock()
		before := len(history)
		mu.Unlock()
		snap, backup, pending, reported := readSnapshot(t, dir, o)
		seens = append(seens, seen{before, snap, backup, pending, reported})
	}
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}
	if flushes := s.Metrics().Flush.Count; flushes < 3 || recycled.Load() == 0 {
		t.Fatalf("%d flushes and %d logs recycled while the snapshots were taken: the logs did not rotate under them", flushes, recycled.Load())
	}
	for i, sn := range seens {
		at := -1
		for k := len(history) - 1; k >= 0; k-- {
			if history[k] == sn.snap {
				at = k
				break
			}
		}
		switch {
		case at < 0:
			t.Fatalf("snapshot %d holds a state the writer never committed:\n%s", i, firstDiff(sn.snap, history[sn.before-1]))
		case at < sn.before-1:
			t.Fatalf("snapshot %d holds the writer's state %d, but state %d was committed before it began:\n%s", i, at, sn.before-1, firstDiff(sn.snap, history[sn.before-1]))
		case sn.backup != sn.snap || sn.reportedBackup != int64(sn.pending):
			t.Fatalf("the backup of snapshot %d (reporting %d pending events) differs from it (%d pending):\n%s", i, sn.reportedBackup, sn.pending, firstDiff(sn.backup, sn.snap))
		}
	}
	t.Logf("%d snapshots and backups while the writer committed %d states, flushed %d times and recycled %d logs: each held the last state committed before it began, or a later one",
		len(seens), len(history), s.Metrics().Flush.Count, recycled.Load())
}

// firstDiff shows the first line where got and want differ.
func firstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := range max(len(g), len(w)) {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl {
			return fmt.Sprintf("line %d: got %q, want %q (%d lines, want %d)", i+1, gl, wl, len(g), len(w))
		}
	}
	return "(the same)"
}

// racingFS runs a step of the writer right after the n-th listing of the
// state directory has read its names: the writer moves at the worst
// moment for a snapshot, deterministically.
type racingFS struct {
	vfs.FS
	dir   string
	lists int
	at    int
	step  func()
}

func (f *racingFS) List(dir string) ([]string, error) {
	names, err := f.FS.List(dir)
	if dir == f.dir {
		if f.lists++; f.lists == f.at && f.step != nil {
			f.step()
		}
	}
	return names, err
}

// The writer flushes, ingests staged sstables (linked into the directory,
// some as flushable ingestions that only the write-ahead log names until
// they are flushed), commits and acknowledges between the steps of a
// snapshot: between its first listing and the sizes it reads, between its
// second listing and its copies, and before its last check. Each snapshot
// opens (no sstable the copied MANIFEST or logs name is missing) and holds
// a state the writer went through: from before the step, after it, or,
// for a staged cycle, committed with its rows not yet moved into place.
func TestSnapshotRacesTheWriter(t *testing.T) {
	sc := newCrashScenario()
	wo := crashOptions(nil, true) // changes staged as sstables, ingested
	wo.FS = nil
	dir := filepath.Join(t.TempDir(), "state")
	s, err := diff.Open(dir, wo)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	// A change below FinalBatchBytes goes through a batch (the memtable
	// then holds rows of the audience), the next large one is ingested
	// over them: a flushable ingestion.
	small := slices.Clone(sc.gen1)
	small[0] = slices.Clone(small[0])
	small[0][3] = "Overdue"
	if err := s.Enable("other"); err != nil {
		t.Fatal(err)
	}
	other := false
	cycle := func(rows [][]any) func() error {
		return func() error {
			if _, err := sc.cycle(t, s, rows, time.Now()); err != nil {
				return err
			}
			// The last batch of a staged cycle, which marks its rows
			// moved into place, is not synced (recovery moves them
			// again): the next decision syncs it, as the worker's next
			// acknowledgement would. Until then a snapshot may show the
			// rows still being moved (Members refuses to read them).
			other = !other
			if other {
				return s.Disable("other")
			}
			return s.Enable("other")
		}
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"a first cycle, ingested", cycle(sc.gen1)},
		{"a small change, a batch", cycle(small)},
		{"a large change, ingested over the memtable", cycle(sc.gen2)},
		{"a small change, a batch", cycle(sc.gen1)},
		{"a large change, ingested over the memtable", cycle(sc.gen2)},
		{"an acknowledgement", func() error {
			msgs, err := s.Pending("hook", 0, 1<<20)
			if err != nil {
				return err
			}
			return s.Ack("hook", msgs[:len(msgs)/2])
		}},
		{"a flush", s.Flush},
	}
	ro := crashOptions(nil, false)
	newer, moving := 0, 0
	for at := 1; at <= 3; at++ {
		for _, st := range steps {
			before, err := raceView(s)
			if err != nil {
				t.Fatal(err)
			}
			var after view
			fs := &racingFS{FS: vfs.Default, dir: dir, at: at, step: func() {
				if err := st.do(); err != nil {
					t.Error(err)
				}
				var err error
				if after, err = raceView(s); err != nil {
					t.Error(err)
				}
			}}
			ro.FS = fs
			r, err := diff.OpenReadOnly(dir, ro)
			if err != nil {
				t.Fatalf("%s after listing %d of a snapshot: %v", st.name, at, err)
			}
			got, err := raceView(r)
			if err != nil {
				t.Fatalf("%s after listing %d of a snapshot, reading it: %v", st.name, at, err)
			}
			out := filepath.Join(t.TempDir(), "backup")
			rep, err := r.Backup(out)
			if err != nil {
				t.Fatalf("%s after listing %d of a snapshot, its backup: %v", st.name, at, err)
			}
			r.Close()
			if t.Failed() {
				t.FailNow()
			}
			switch {
			case got == before:
			case got == after:
				newer++
			case got.members == "" && got.committed == after.committed:
				moving++ // committed, its rows still to be moved into place
			default:
				t.Fatalf("%s after listing %d of a snapshot: it holds a state the writer never went through:\n%s", st.name, at, firstDiff(got.committed, after.committed))
			}
			if rep.Pending != int64(got.pending) {
				t.Fatalf("%s after listing %d of a snapshot: the backup reports %d pending events, the snapshot holds %d", st.name, at, rep.Pending, got.pending)
			}
		}
	}
	if m := s.Metrics(); m.Flush.AsIngestCount == 0 || m.Ingest.Count == 0 {
		t.Fatalf("%d ingestions, %d of them flushable: the test no longer races them", m.Ingest.Count, m.Flush.AsIngestCount)
	}
	t.Logf("%d snapshots raced a writer's step: %d held its result, %d its cycle committed with the rows still to move, the others the state before; %d ingestions, %d flushable",
		3*len(steps), newer, moving, s.Metrics().Ingest.Count, s.Metrics().Flush.AsIngestCount)
}

// view is a store's state in three parts: the generation and pending
// messages (committed), the members ("" while a staged cycle's rows are
// still being moved into place, which a read-only store cannot finish)
// and the number of pending messages.
type view struct {
	committed, members string
	pending            int
}

func raceView(s *diff.Store) (view, error) {
	st, err := s.State("cards")
	if err != nil {
		return view{}, err
	}
	v := view{committed: fmt.Sprintf("generation %d\n", st.Generation)}
	for _, dest := range []string{"braze", "crm", "hook"} {
		msgs, err := s.Pending(dest, 0, 1<<20)
		if err != nil {
			return view{}, err
		}
		for _, m := range msgs {
			v.committed += fmt.Sprintf("%s %d %s %s\n", dest, m.Seq, m.ID, m.Payload)
		}
		v.pending += len(msgs)
	}
	var b strings.Builder
	err = s.Members("cards", func(m diff.Member) error {
		b.WriteString(m.Profile)
		for _, c := range m.Chains {
			for _, k := range c {
				b.WriteString(" " + *k)
			}
			b.WriteString(";")
		}
		b.WriteString("\n")
		return nil
	})
	switch {
	case errors.Is(err, diff.ErrReadOnly):
		return v, nil
	case err != nil:
		return view{}, err
	}
	v.members = "members\n" + b.String()
	return v, nil
}
