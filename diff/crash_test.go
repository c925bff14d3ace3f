package diff_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// crashScenario is an audience with activations of every kind and two
// generations that differ in every way events see: profiles exit and
// enter, cards are added and removed, values change.
type crashScenario struct {
	aud    *dsl.Audience
	acts   []*dsl.Activation
	layout diff.Layout
	types  []arrow.DataType
	gen1   [][]any
	gen2   [][]any
	start1 time.Time
	start2 time.Time
}

func newCrashScenario() *crashScenario {
	account := &dsl.Entity{Name: "account", Key: "id"}
	card := &dsl.Entity{Name: "credit_card", Key: "id"}
	s0 := &dsl.Step{Entity: account, Level: 2}
	s1 := &dsl.Step{Entity: card, Level: 3}
	aud := &dsl.Audience{
		Name: "cards", Version: "v1",
		Primary: &dsl.Path{Steps: []*dsl.Step{s0, s1}},
		Enrich: []*dsl.ColumnRef{
			{Source: dsl.SourceStep, Step: s1, StepIndex: 1, Entity: card, Column: "balance"},
			{Source: dsl.SourceTrait, Entity: &dsl.Entity{Name: "profile", Key: "id"}, Column: "email"},
		},
	}
	dest := func(n string) *dsl.Destination { return &dsl.Destination{Name: n, Type: "file"} }
	acts := []*dsl.Activation{
		{Name: "added", Audience: aud, Destination: dest("braze"), Event: dsl.EntityAdded, Entity: card, EntityStep: 1},
		{Name: "removed", Audience: aud, Destination: dest("braze"), Event: dsl.EntityRemoved, Entity: card, EntityStep: 1},
		{Name: "entered", Audience: aud, Destination: dest("hook"), Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true},
		{Name: "exited", Audience: aud, Destination: dest("hook"), Event: dsl.AudienceExited, EntityStep: -1},
		{Name: "sync", Audience: aud, Destination: dest("crm"), Event: dsl.AudienceMembershipChanged, EntityStep: -1},
	}
	sc := &crashScenario{
		aud: aud, acts: acts, layout: diff.LayoutOf(aud),
		types:  []arrow.DataType{arrow.BinaryTypes.String, arrow.BinaryTypes.String},
		start1: time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		start2: time.Date(2026, 11, 28, 11, 0, 0, 0, time.UTC),
	}
	// The emails are long so that a cycle's writes span several WAL
	// blocks and sstable blocks: TestInjectedFailures fails each of those
	// operations in turn, and events stored compactly left a cycle of
	// short values only two to four of them.
	pad := strings.Repeat("x", 400)
	row := func(p, a, c, bal string) []any {
		return []any{p, a, c, bal, p + "." + pad + "@example.com"}
	}
	for p := range 120 {
		id := fmt.Sprintf("u%03d", p)
		sc.gen1 = append(sc.gen1, row(id, "a"+id, "c"+id+"-1", "Outstanding"), row(id, "a"+id, "c"+id+"-2", "Outstanding"))
	}
	for p := 10; p < 130; p++ {
		id := fmt.Sprintf("u%03d", p)
		switch {
		case p < 30: // a card paid off
			sc.gen2 = append(sc.gen2, row(id, "a"+id, "c"+id+"-1", "Outstanding"))
		case p < 50: // a new card
			sc.gen2 = append(sc.gen2, row(id, "a"+id, "c"+id+"-1", "Outstanding"), row(id, "a"+id, "c"+id+"-2", "Outstanding"),
				row(id, "a"+id, "c"+id+"-3", "Outstanding"))
		case p < 60: // a value changes
			sc.gen2 = append(sc.gen2, row(id, "a"+id, "c"+id+"-1", "Overdue"), row(id, "a"+id, "c"+id+"-2", "Outstanding"))
		default:
			sc.gen2 = append(sc.gen2, row(id, "a"+id, "c"+id+"-1", "Outstanding"), row(id, "a"+id, "c"+id+"-2", "Outstanding"))
		}
	}
	return sc
}

func (sc *crashScenario) cycle(t testing.TB, s *diff.Store, rows [][]any, start time.Time) (*diff.CycleResult, error) {
	rr := buildReader(t, sc.layout, sc.types, rows, 16)
	defer rr.Release()
	return s.Cycle(context.Background(), diff.CycleInput{
		Audience: sc.aud, Layout: sc.layout, Activations: sc.acts, Rows: rr, Start: start,
	})
}

// snapshot is what a store holds, as far as users can see: the status,
// the members and their chains, and every pending message.
type snapshot struct {
	status  string
	members string
	outbox  string
}

func take(t testing.TB, s *diff.Store) snapshot {
	t.Helper()
	st, err := s.State("cards")
	if err != nil {
		t.Fatal(err)
	}
	var m strings.Builder
	err = s.Members("cards", func(mb diff.Member) error {
		fmt.Fprintf(&m, "%s", mb.Profile)
		for _, c := range mb.Chains {
			for _, k := range c {
				fmt.Fprintf(&m, " %s", *k)
			}
			m.WriteString(";")
		}
		m.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	var o strings.Builder
	for _, dest := range []string{"braze", "crm", "hook"} {
		msgs, err := s.Pending(dest, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, msg := range msgs {
			fmt.Fprintf(&o, "%s %d %s %s %s\n", dest, msg.Seq, msg.ID, msg.Event, msg.Payload)
		}
	}
	return snapshot{
		status:  fmt.Sprintf("%s gen=%d members=%d rows=%d", st.Status, st.Generation, st.Members, st.Rows),
		members: m.String(),
		outbox:  o.String(),
	}
}

// crashOptions keep the Pebble footprint small (many stores are opened)
// and, when staged, force cycle 2 through the staged path.
func crashOptions(fs vfs.FS, staged bool) diff.Options {
	o := diff.Options{
		FS:            fs,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
		CacheBytes:    1 << 20,
		MemTableBytes: 1 << 20,
	}
	if staged {
		o.FinalBatchBytes = 2 << 10
		o.StageBatchBytes = 1 << 10
	}
	return o
}

// baseline runs cycle 1 on a new crashable file system, flushes it to
// sstables (so that cycle 2 reads files), and closes the store.
func (sc *crashScenario) baseline(t testing.TB, staged bool) *vfs.MemFS {
	fs := vfs.NewCrashableMem()
	s, err := diff.Open("state", crashOptions(fs, staged))
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Enable("cards"); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.cycle(t, s, sc.gen1, sc.start1); err != nil {
		t.Fatal(err)
	}
	if err := s.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return fs
}

// expected returns the snapshots after cycle 1 and after cycle 2 of a
// clean run.
func (sc *crashScenario) expected(t testing.TB, staged bool) (snapshot, snapshot) {
	fs := sc.baseline(t, staged)
	s, err := diff.Open("state", crashOptions(fs, staged))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	s1 := take(t, s)
	res, err := sc.cycle(t, s, sc.gen2, sc.start2)
	if err != nil {
		t.Fatal(err)
	}
	if res.Staged != staged {
		t.Fatalf("cycle 2 staged = %t, want %t", res.Staged, staged)
	}
	if res.Events == 0 || res.Entered == 0 || res.Exited == 0 || res.Added == 0 || res.Removed == 0 || res.Changed == 0 {
		t.Fatalf("cycle 2 does not change everything events see: %+v", res.Counts)
	}
	s2 := take(t, s)
	if s1.outbox == "" || s2.outbox == s1.outbox {
		t.Fatal("scenario emits no events")
	}
	return s1, s2
}

// check verifies that a store recovered after a crash holds generation 1
// exactly or generation 2 exactly, never a mix; after generation 1 it runs
// cycle 2 again, which must produce generation 2 exactly as a clean run
// did: same members, same messages with the same ids and Seqs.
func (sc *crashScenario) check(t *testing.T, fs vfs.FS, staged bool, want1, want2 snapshot, what string) (recomputed, rolled, discarded bool) {
	t.Helper()
	var logs bytes.Buffer
	o := crashOptions(fs, staged)
	o.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s, err := diff.Open("state", o)
	rolled = strings.Contains(logs.String(), "rolling a committed cycle forward")
	discarded = strings.Contains(logs.String(), "discarding an interrupted cycle")
	if err != nil {
		t.Fatalf("%s: reopening: %v", what, err)
	}
	defer s.Close()
	// Nothing of an interrupted cycle survives recovery: no staged rows,
	// no in-progress record, no event outside the outbox.
	keys, err := diff.TableKeys(s)
	if err != nil {
		t.Fatal(err)
	}
	backlog, err := s.Backlogs()
	if err != nil {
		t.Fatal(err)
	}
	pending := 0
	for _, n := range backlog {
		pending += int(n)
	}
	if keys[diff.TableDelta] != 0 || keys[diff.TableCycle] != 0 || keys[diff.TableEvent] != pending || (pending == 0 && keys[diff.TableTemplate] != 0) {
		t.Fatalf("%s: left behind: %d staged rows, %d in-progress records, %d events for %d pending, %d event templates",
			what, keys[diff.TableDelta], keys[diff.TableCycle], keys[diff.TableEvent], pending, keys[diff.TableTemplate])
	}
	// Every compact message has its template, and no template outlives
	// its index entry.
	if v, err := s.Verify(); err != nil || !v.OK() {
		t.Fatalf("%s: verify after reopening: %v %+v", what, err, v)
	}
	got := take(t, s)
	gen1 := got.members == want1.members
	switch {
	case gen1:
		if got.outbox != want1.outbox {
			t.Fatalf("%s: generation 1 is current but the outbox differs:\n%s\nwant:\n%s", what, got.outbox, want1.outbox)
		}
		if !strings.HasPrefix(got.status, "Failed gen=1") && !strings.HasPrefix(got.status, "Live gen=1") {
			t.Fatalf("%s: status %s", what, got.status)
		}
		if _, err := sc.cycle(t, s, sc.gen2, sc.start2); err != nil {
			t.Fatalf("%s: cycle 2 again: %v", what, err)
		}
		got = take(t, s)
		recomputed = true
	case got.members != want2.members:
		t.Fatalf("%s: members are neither generation's:\n%s", what, got.members)
	}
	if got != want2 {
		t.Fatalf("%s: generation 2 differs from a clean run:\n%+v\nwant:\n%+v", what, got, want2)
	}
	return recomputed, rolled, discarded
}

// TestCrashPoints stops the process, in effect, before every file system
// operation of cycle 2 (a crash clone keeps only what was synced by then)
// and checks each state recovers to generation 1 or 2 exactly.
func TestCrashPoints(t *testing.T) {
	sc := newCrashScenario()
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			want1, want2 := sc.expected(t, staged)
			fs := sc.baseline(t, staged)
			var (
				mu     sync.Mutex
				clones []*vfs.MemFS
				ops    []string
				armed  bool
			)
			rng := rand.New(rand.NewPCG(1, 2))
			inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
				mu.Lock()
				defer mu.Unlock()
				if armed {
					// Before the op: only synced data, or some unsynced
					// data too (torn writes), alternately.
					cfg := vfs.CrashCloneCfg{}
					if len(clones)%2 == 1 {
						cfg = vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rng}
					}
					clones = append(clones, fs.CrashClone(cfg))
					ops = append(ops, fmt.Sprintf("%v %s", op.Kind, op.Path))
				}
				return nil
			})
			s, err := diff.Open("state", crashOptions(errorfs.Wrap(fs, inj), staged))
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			armed = true
			mu.Unlock()
			if _, err := sc.cycle(t, s, sc.gen2, sc.start2); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			armed = false
			// And crashes right after the cycle returned, with more or less
			// of what was written since the last sync (the roll-forward of
			// a staged cycle) on disk.
			for _, pct := range []int{0, 10, 30, 50, 70, 90, 100} {
				clones = append(clones, fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: pct, RNG: rng}))
				ops = append(ops, fmt.Sprintf("nothing: after the cycle, %d%% of unsynced data kept", pct))
			}
			mu.Unlock()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			recomputed, rolled, discarded := 0, 0, 0
			for i, c := range clones {
				re, ro, di := sc.check(t, c, staged, want1, want2, fmt.Sprintf("crash before op %d (%s)", i, ops[i]))
				if re {
					recomputed++
				}
				if ro {
					rolled++
				}
				if di {
					discarded++
				}
			}
			t.Logf("%d crash points: %d recovered generation 1 and recomputed (%d discarding what the cycle had staged), %d recovered generation 2 (%d by rolling staged changes forward)",
				len(clones), recomputed, discarded, len(clones)-recomputed, rolled)
			if staged && rolled == 0 {
				t.Error("no crash point interrupted a roll-forward")
			}
			if recomputed == 0 || recomputed == len(clones) {
				t.Fatalf("crash points do not straddle the switch: %d of %d before", recomputed, len(clones))
			}
		})
	}
}

// TestInjectedFailures fails, in turn, each file system operation on the
// WAL and sstables during cycle 2. A read failure fails the cycle (the
// store carries on: generation 1, no event, status Failed); a write
// failure makes Pebble stop the process (Fatalf panics). Either way, the
// state on disk, after a crash at that point, recovers to generation 1 or
// 2 exactly.
func TestInjectedFailures(t *testing.T) {
	sc := newCrashScenario()
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			want1, want2 := sc.expected(t, staged)
			var failedCycles, panics int
			for i := 1; ; i++ {
				fs := sc.baseline(t, staged)
				var mu sync.Mutex
				armed, n, injected := false, 0, false
				inj := errorfs.InjectorFunc(func(op errorfs.Op) error {
					mu.Lock()
					defer mu.Unlock()
					if !armed || !(strings.HasSuffix(op.Path, ".log") || strings.HasSuffix(op.Path, ".sst")) {
						return nil
					}
					n++
					if n == i {
						injected = true
						return errorfs.ErrInjected
					}
					return nil
				})
				s, err := diff.Open("state", crashOptions(errorfs.Wrap(fs, inj), staged))
				if err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				armed = true
				mu.Unlock()
				cycleErr, panicked := func() (err error, panicked bool) {
					defer func() {
						if r := recover(); r != nil {
							panicked = true
						}
					}()
					_, err = sc.cycle(t, s, sc.gen2, sc.start2)
					return err, false
				}()
				mu.Lock()
				armed = false
				done := !injected
				mu.Unlock()
				what := fmt.Sprintf("failure of op %d", i)
				switch {
				case panicked:
					panics++
					// The process would stop here; the store is abandoned.
				case cycleErr != nil:
					failedCycles++
					got := take(t, s)
					if got.members != want1.members || got.outbox != want1.outbox || !strings.HasPrefix(got.status, "Failed gen=1") {
						t.Fatalf("%s: the cycle failed (%v) but the store moved on: %+v", what, cycleErr, got)
					}
				case !done:
					// Injected into something the cycle survived (a read
					// retried elsewhere, a background job).
				}
				clone := fs.CrashClone(vfs.CrashCloneCfg{})
				if !panicked {
					// A failed background write (the WAL is written
					// asynchronously after NoSync commits) surfaces at Close.
					if err := s.Close(); err != nil && !errors.Is(err, errorfs.ErrInjected) {
						t.Fatalf("%s: close: %v", what, err)
					}
				}
				_, _, _ = sc.check(t, clone, staged, want1, want2, what)
				if done {
					t.Logf("%d operations failed in turn: %d failed cycles, %d fatal storage errors", i-1, failedCycles, panics)
					if failedCycles+panics == 0 {
						t.Fatal("no injected failure reached the cycle")
					}
					return
				}
			}
		})
	}
}

// hookReader calls hook before handing over batch at (0-based), as a
// process stopped mid-stream would have left things.
type hookReader struct {
	array.RecordReader
	n, at int
	hook  func()
}

func (r *hookReader) Next() bool {
	if r.n == r.at {
		r.hook()
	}
	r.n++
	return r.RecordReader.Next()
}

// TestCrashMidStream stops the process, in effect, in the middle of
// cycle 2's stream after forcing what it staged so far to disk (a flush
// syncs the memtable into sstables): the recovered store must discard the
// staged rows and events and hold generation 1; cycle 2 then runs as a
// clean one.
func TestCrashMidStream(t *testing.T) {
	sc := newCrashScenario()
	for _, staged := range []bool{false, true} {
		t.Run(fmt.Sprintf("staged=%t", staged), func(t *testing.T) {
			want1, want2 := sc.expected(t, staged)
			batches := (len(sc.gen2) + 15) / 16
			discarded := 0
			for at := 1; at < batches; at += 3 {
				fs := sc.baseline(t, staged)
				s, err := diff.Open("state", crashOptions(fs, staged))
				if err != nil {
					t.Fatal(err)
				}
				var clone *vfs.MemFS
				rr := buildReader(t, sc.layout, sc.types, sc.gen2, 16)
				hr := &hookReader{RecordReader: rr, at: at, hook: func() {
					if err := s.Flush(); err != nil {
						t.Error(err)
					}
					clone = fs.CrashClone(vfs.CrashCloneCfg{})
				}}
				_, err = s.Cycle(context.Background(), diff.CycleInput{
					Audience: sc.aud, Layout: sc.layout, Activations: sc.acts, Rows: hr, Start: sc.start2,
				})
				rr.Release()
				if err != nil {
					t.Fatal(err)
				}
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				re, _, di := sc.check(t, clone, staged, want1, want2, fmt.Sprintf("stopped before batch %d", at))
				if !re {
					t.Fatalf("stopped before batch %d: generation 2 survived a crash before its switch", at)
				}
				if di {
					discarded++
				}
			}
			if discarded == 0 {
				t.Fatal("no crash left an in-progress cycle to discard")
			}
			t.Logf("%d mid-stream crashes discarded an in-progress cycle", discarded)
		})
	}
}
