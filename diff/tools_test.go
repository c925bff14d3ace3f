package diff_test

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// realStore opens the crash scenario's store in a temporary directory on
// disk, generation 1 committed, and returns it with its directory.
func realStore(t *testing.T) (*crashScenario, *diff.Store, string) {
	t.Helper()
	sc := newCrashScenario()
	dir := filepath.Join(t.TempDir(), "state")
	o := crashOptions(nil, false)
	o.FS = nil
	s, err := diff.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.cycle(t, s, sc.gen1, sc.start1); err != nil {
		t.Fatal(err)
	}
	return sc, s, dir
}

// While a store is open (its directory locked), OpenReadOnly reads a
// snapshot: consistent, whatever the writer does meanwhile, and removed
// when closed.
func TestReadOnlySnapshotWhileWriting(t *testing.T) {
	sc, s, dir := realStore(t)
	defer s.Close()
	want1 := take(t, s)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Go(func() {
		// The writer: cycles back and forth, flushing, so the MANIFEST
		// moves under the snapshots.
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			rows := sc.gen2
			if i%2 == 1 {
				rows = sc.gen1
			}
			if _, err := sc.cycle(t, s, rows, sc.start2.Add(time.Duration(i)*time.Minute)); err != nil {
				t.Error(err)
				return
			}
			if err := s.Flush(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	o := crashOptions(nil, false)
	o.FS = nil
	for range 15 {
		r, err := diff.OpenReadOnly(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		st, err := r.State("cards")
		if err != nil {
			t.Fatal(err)
		}
		got, err := tryTake(r)
		if err != nil {
			t.Fatal(err)
		}
		// Generation parity tells which rows it holds.
		if st.Generation%2 == 1 && got.members != want1.members {
			t.Fatalf("snapshot at generation %d holds other members than generation 1's", st.Generation)
		}
		if _, err := r.Cycle(context.Background(), diff.CycleInput{}); !errors.Is(err, diff.ErrReadOnly) {
			t.Fatalf("Cycle on a read-only store: %v", err)
		}
		r.Close()
	}
	close(stop)
	wg.Wait()
	if m, _ := filepath.Glob(filepath.Join(dir, "readonly-*")); len(m) > 0 {
		t.Fatalf("snapshots left: %v", m)
	}
}

// Backup (a checkpoint, copied), Restore (refused over a live or existing
// state without Replace) and Export round trip.
func TestBackupRestoreExport(t *testing.T) {
	sc, s, dir := realStore(t)
	if _, err := sc.cycle(t, s, sc.gen2, sc.start2); err != nil {
		t.Fatal(err)
	}
	want := take(t, s)
	out := filepath.Join(t.TempDir(), "backup")
	rep, err := s.Backup(out)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Epoch != 3 || rep.Audiences != 1 || rep.Pending == 0 {
		t.Fatalf("backup report %+v", rep)
	}
	if _, err := s.Backup(out); err == nil {
		t.Fatal("a backup over an existing directory")
	}
	o := diff.RestoreOptions{Options: crashOptions(nil, false)}
	o.FS = nil
	if _, err := diff.Restore(out, dir, o); !errors.Is(err, diff.ErrLocked) {
		t.Fatalf("restore over a live state: %v", err)
	}
	// Change the state, then put the backup back.
	if _, err := sc.cycle(t, s, sc.gen1, sc.start2.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if _, err := diff.Restore(out, dir, o); err == nil || !strings.Contains(err.Error(), "already holds a state") {
		t.Fatalf("restore over a state without Replace: %v", err)
	}
	o.Replace = true
	replaced, err := diff.Restore(out, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(replaced, diff.CommitRecordFile)); err != nil {
		t.Fatalf("the replaced state is not kept aside: %v", err)
	}
	r, err := diff.Open(dir, o.Options)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if got := take(t, r); got != want {
		t.Fatalf("restored state differs:\n%+v\nwant:\n%+v", got, want)
	}
	exp := filepath.Join(t.TempDir(), "export")
	er, err := r.Export(exp)
	if err != nil {
		t.Fatal(err)
	}
	if er.Audiences != 1 || er.Members == 0 || er.Pending != int64(strings.Count(want.outbox, "\n")) || len(er.Damage) != 0 {
		t.Fatalf("export report %+v (want %d pending)", er, strings.Count(want.outbox, "\n"))
	}
	f, err := os.Open(filepath.Join(exp, "outbox.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	for sc := bufio.NewScanner(f); sc.Scan(); n++ {
		if !strings.Contains(sc.Text(), `"message_id":"la-`) || !strings.Contains(sc.Text(), `"payload":{`) {
			t.Fatalf("outbox line %q", sc.Text())
		}
	}
	if int64(n) != er.Pending {
		t.Fatalf("%d lines for %d pending", n, er.Pending)
	}
}

// The commit record: ahead of the state is a refusal; missing is written
// again; damaged is a refusal.
func TestCommitRecord(t *testing.T) {
	sc, s, dir := realStore(t)
	o := crashOptions(nil, false)
	o.FS = nil
	rec := filepath.Join(dir, diff.CommitRecordFile)
	gen1, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	// Keep the Pebble files of generation 1, commit generation 2.
	s.Close()
	old := filepath.Join(t.TempDir(), "old")
	if err := os.CopyFS(old, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	s, err = diff.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.cycle(t, s, sc.gen2, sc.start2); err != nil {
		t.Fatal(err)
	}
	s.Close()
	gen2, err := os.ReadFile(rec)
	if err != nil {
		t.Fatal(err)
	}
	if string(gen1) == string(gen2) {
		t.Fatal("the record did not change with the generation")
	}
	// Generation 1's files under generation 2's record: refused.
	if err := os.WriteFile(filepath.Join(old, diff.CommitRecordFile), gen2, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = diff.Open(old, o)
	var re *diff.RollbackError
	if !errors.As(err, &re) || !errors.Is(err, diff.ErrCorrupt) || len(re.Audiences) != 1 || re.Audiences[0] != "cards (generation 1 of 2)" {
		t.Fatalf("open of a rolled-back state: %v", err)
	}
	if _, err := diff.OpenReadOnly(old, o); !errors.As(err, &re) {
		t.Fatalf("read-only open of a rolled-back state: %v", err)
	}
	so := o
	so.Salvage = true
	r, err := diff.OpenReadOnly(old, so)
	if err != nil {
		t.Fatalf("salvage open: %v", err)
	}
	v, err := r.Verify()
	r.Close()
	if err != nil || v.OK() || !strings.Contains(strings.Join(v.Problems, "\n"), "older than what was committed") {
		t.Fatalf("verify of a rolled-back state: %+v, %v", v, err)
	}
	// A missing record is written again from the state.
	if err := os.Remove(rec); err != nil {
		t.Fatal(err)
	}
	s, err = diff.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	if b, err := os.ReadFile(rec); err != nil || string(b) != string(gen2) {
		t.Fatalf("the record written again: %q, %v; want %q", b, err, gen2)
	}
	// A damaged record is refused.
	b := []byte(strings.Replace(string(gen2), `"epoch":3`, `"epoch":9`, 1))
	if err := os.WriteFile(rec, b, 0o644); err != nil {
		t.Fatal(err)
	}
	var ce *diff.CorruptionError
	if _, err := diff.Open(dir, o); !errors.As(err, &ce) || ce.File != diff.CommitRecordFile {
		t.Fatalf("open with a damaged record: %v", err)
	}
}

// Stranded outboxes and dead letters move or go, on request.
func TestMoveAndDrop(t *testing.T) {
	_, s, _ := realStore(t)
	defer s.Close()
	pending, err := s.Pending("hook", 0, 1000)
	if err != nil || len(pending) == 0 {
		t.Fatal(pending, err)
	}
	n, err := s.MoveOutbox("hook", "hook2")
	if err != nil || n != len(pending) {
		t.Fatalf("MoveOutbox = %d, %v; want %d", n, err, len(pending))
	}
	moved, err := s.Pending("hook2", 0, 1000)
	if err != nil || len(moved) != len(pending) {
		t.Fatal(moved, err)
	}
	for i := range moved {
		if moved[i].ID != pending[i].ID || string(moved[i].Payload) != string(pending[i].Payload) || moved[i].Destination != "hook2" {
			t.Fatalf("moved message %d: %+v, was %+v", i, moved[i], pending[i])
		}
	}
	if left, _ := s.Pending("hook", 0, 1000); len(left) != 0 {
		t.Fatalf("%d left behind", len(left))
	}
	if err := s.DeadLetter("hook2", moved[:3], "400 bad request"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.MoveDeadLetters("hook2", "hook3", []string{moved[0].ID}); err != nil || n != 1 {
		t.Fatalf("MoveDeadLetters = %d, %v", n, err)
	}
	counts, err := s.DeadLetterCounts()
	if err != nil || counts["hook2"] != 2 || counts["hook3"] != 1 {
		t.Fatalf("DeadLetterCounts = %v, %v", counts, err)
	}
	if n, err := s.DropDeadLetters("", nil); err != nil || n != 3 {
		t.Fatalf("DropDeadLetters = %d, %v", n, err)
	}
	if n, err := s.DropOutbox("hook2"); err != nil || n != len(pending)-3 {
		t.Fatalf("DropOutbox = %d, %v", n, err)
	}
	if b, err := s.Backlogs(); err != nil || len(b) != 0 {
		t.Fatalf("Backlogs = %v, %v", b, err)
	}
	v, err := s.Verify()
	if err != nil || !v.OK() {
		t.Fatalf("verify after the moves: %+v, %v", v, err)
	}
}

// Many small cycles in a row do not leave the state in the write-ahead
// log alone: a flush comes every 100 generations at most.
func TestCyclesFlushed(t *testing.T) {
	sc, s, _ := realStore(t)
	defer s.Close()
	before := s.Metrics().Flush.Count
	for i := range 250 {
		rows := sc.gen2
		if i%2 == 1 {
			rows = sc.gen1
		}
		if _, err := sc.cycle(t, s, rows, sc.start2.Add(time.Duration(i)*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Metrics().Flush.Count-before < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d flushes in 250 cycles", s.Metrics().Flush.Count-before)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
