package diff_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/linkaud/linkaud/diff"
)

// The corruption suite: a state whose files are damaged one way or
// another — a single flipped bit, or a truncation, in a write-ahead log,
// an sstable, the MANIFEST, the OPTIONS file or the commit record, or a
// write-ahead log deleted — must either be refused cleanly (an error
// matching diff.ErrCorrupt or naming what failed, never a panic) or give
// exactly what the undamaged state gives: the same members and status
// after the next cycle, the same pending events, plus at most events that
// were already acknowledged (an acknowledgement lost with a log tail is a
// redelivery under the same messageId, which at-least-once allows).
// Never a silent rollback, never an event a clean run would not send,
// never a missing one without a refusal.
//
// CI runs 240 trials; LINKAUD_CORRUPTION_TRIALS raises the count (`make
// test-corruption`), LINKAUD_CORRUPTION_SEED fixes the seed. The counts by
// outcome are printed.

// corruptionBase is the state the trials damage: generation 1 flushed to
// an sstable, generation 2 and acknowledgements only in the write-ahead
// log, as a worker stopped between flushes leaves it.
type corruptionBase struct {
	sc    *crashScenario
	fs    *vfs.MemFS
	acked map[string]bool // outbox lines acknowledged before the damage
	want  snapshot        // after cycle 3 on the undamaged state
}

var start3 = time.Date(2026, 11, 28, 12, 0, 0, 0, time.UTC)

func corruptionOptions(fs vfs.FS) diff.Options {
	o := crashOptions(fs, false)
	o.FlushInterval = time.Hour // generation 2 stays in the log
	return o
}

func newCorruptionBase(t *testing.T) *corruptionBase {
	sc := newCrashScenario()
	fs := vfs.NewCrashableMem()
	s, err := diff.Open("state", corruptionOptions(fs))
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
	acked := map[string]bool{}
	ack := func(dest string, n int) {
		msgs, err := s.Pending(dest, 0, n)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			acked[fmt.Sprintf("%s %d %s %s %s", dest, m.Seq, m.ID, m.Event, m.Payload)] = true
		}
		if err := s.Ack(dest, msgs); err != nil {
			t.Fatal(err)
		}
	}
	ack("braze", 100)
	if _, err := sc.cycle(t, s, sc.gen2, sc.start2); err != nil {
		t.Fatal(err)
	}
	ack("hook", 50)
	ack("braze", 30)
	// What a process stopped now leaves on disk: everything synced.
	base := fs.CrashClone(vfs.CrashCloneCfg{})
	s.Close()
	b := &corruptionBase{sc: sc, fs: base, acked: acked}
	clean := base.CrashClone(vfs.CrashCloneCfg{})
	got, outcome := b.trial(clean)
	if outcome != "identical" {
		t.Fatalf("the undamaged state: %s", outcome)
	}
	b.want = got
	return b
}

// trial opens the state on fs, runs cycle 3 and reads everything back. It
// returns the snapshot and the outcome: "identical" (to b.want; the caller
// checks), "refused at open", "refused by cycle 3", "refused reading", or
// a failure ("panic: …", "unclean error: …").
func (b *corruptionBase) trial(fs vfs.FS) (got snapshot, outcome string) {
	defer func() {
		if r := recover(); r != nil {
			outcome = fmt.Sprintf("panic: %v", r)
		}
	}()
	o := corruptionOptions(fs)
	fatal := make(chan error, 1)
	o.Fatal = func(err error) {
		fatal <- err
		select {} // Pebble must not go on; the trial is abandoned
	}
	refused := func(when string, err error) string {
		if !diff.IsCorrupt(err) {
			return fmt.Sprintf("unclean error %s: %v", when, err)
		}
		if strings.Contains(err.Error(), "\n") {
			return fmt.Sprintf("refusal on several lines %s: %q", when, err)
		}
		if os.Getenv("LINKAUD_CORRUPTION_VERBOSE") != "" {
			fmt.Printf("  %v\n", err)
		}
		return "refused " + when
	}
	s, err := diff.Open("state", o)
	if err != nil {
		return got, refused("at open", err)
	}
	defer s.Close()
	if _, err := b.sc.cycle(nil, s, b.sc.gen1, start3); err != nil {
		return got, refused("by cycle 3", err)
	}
	got, err = tryTake(s)
	if err != nil {
		return got, refused("reading", err)
	}
	select {
	case err := <-fatal:
		return got, fmt.Sprintf("fatal: %v", err)
	default:
	}
	return got, "identical"
}

// tryTake is take returning errors.
func tryTake(s *diff.Store) (snap snapshot, err error) {
	st, err := s.State("cards")
	if err != nil {
		return snap, err
	}
	var m strings.Builder
	err = s.Members("cards", func(mb diff.Member) error {
		m.WriteString(mb.Profile)
		for _, c := range mb.Chains {
			for _, k := range c {
				m.WriteString(" " + *k)
			}
			m.WriteString(";")
		}
		m.WriteString("\n")
		return nil
	})
	if err != nil {
		return snap, err
	}
	var o strings.Builder
	for _, dest := range []string{"braze", "crm", "hook"} {
		msgs, err := s.Pending(dest, 0, 1<<20)
		if err != nil {
			return snap, err
		}
		for _, msg := range msgs {
			fmt.Fprintf(&o, "%s %d %s %s %s\n", dest, msg.Seq, msg.ID, msg.Event, msg.Payload)
		}
	}
	return snapshot{
		status:  fmt.Sprintf("%s gen=%d members=%d rows=%d", st.Status, st.Generation, st.Members, st.Rows),
		members: m.String(),
		outbox:  o.String(),
	}, nil
}

// compare checks a successful trial against the clean one: same status
// and members; the same pending events, plus acknowledged ones at most.
// It returns the number of acknowledged events pending again, or an error.
func (b *corruptionBase) compare(got snapshot) (redelivered int, err error) {
	if got.status != b.want.status {
		return 0, fmt.Errorf("status %q, want %q", got.status, b.want.status)
	}
	if got.members != b.want.members {
		return 0, errors.New("members differ from the clean run's")
	}
	want := lines(b.want.outbox)
	have := lines(got.outbox)
	for l := range want {
		if !have[l] {
			return 0, fmt.Errorf("event missing: %.120s", l)
		}
	}
	for l := range have {
		if want[l] {
			continue
		}
		if !b.acked[l] {
			return 0, fmt.Errorf("event a clean run does not have: %.120s", l)
		}
		redelivered++
	}
	return redelivered, nil
}

func lines(s string) map[string]bool {
	out := map[string]bool{}
	for l := range strings.SplitSeq(strings.TrimSpace(s), "\n") {
		if l != "" {
			out[l] = true
		}
	}
	return out
}

// damage applies one mutation to a file of fs's state directory and
// describes it.
func damage(t *testing.T, fs *vfs.MemFS, rng *rand.Rand, kind string) string {
	names, err := fs.List("state")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(names)
	var cands []string
	for _, n := range names {
		switch {
		case kind == "wal" && strings.HasSuffix(n, ".log"),
			kind == "sstable" && strings.HasSuffix(n, ".sst"),
			kind == "manifest" && strings.HasPrefix(n, "MANIFEST-"),
			kind == "options" && strings.HasPrefix(n, "OPTIONS-"),
			kind == "record" && n == diff.CommitRecordFile:
			if st, err := fs.Stat("state/" + n); err == nil && st.Size() > 0 {
				cands = append(cands, n)
			}
		}
	}
	if len(cands) == 0 {
		t.Fatalf("no %s file in %v", kind, names)
	}
	name := cands[rng.IntN(len(cands))]
	path := "state/" + name
	f, err := fs.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	var what string
	switch r := rng.IntN(10); {
	case kind == "wal" && r == 0:
		if err := fs.Remove(path); err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s deleted", name)
	case r < 7:
		off := rng.IntN(len(data))
		bit := rng.IntN(8)
		data[off] ^= 1 << bit
		what = fmt.Sprintf("%s: bit %d of byte %d/%d flipped", name, bit, off, len(data))
	default:
		n := rng.IntN(len(data))
		what = fmt.Sprintf("%s: truncated to %d of %d bytes", name, n, len(data))
		data = data[:n]
	}
	out, err := fs.Create(path, vfs.WriteCategoryUnspecified)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := out.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(out.Sync(), out.Close()); err != nil {
		t.Fatal(err)
	}
	return what
}

func envInt(t *testing.T, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

// TestCorruption runs the trials and prints the counts by outcome.
func TestCorruption(t *testing.T) {
	trials := envInt(t, "LINKAUD_CORRUPTION_TRIALS", 240)
	seed := uint64(envInt(t, "LINKAUD_CORRUPTION_SEED", int(time.Now().UnixNano()%1e9)))
	b := newCorruptionBase(t)
	kinds := []string{"wal", "sstable", "manifest", "options", "record", "wal", "sstable"}
	var mu sync.Mutex
	counts := map[string]int{}
	byKind := map[string]map[string]int{}
	redelivered := 0
	for i := range trials {
		rng := rand.New(rand.NewPCG(seed, uint64(i)))
		kind := kinds[i%len(kinds)]
		fs := b.fs.CrashClone(vfs.CrashCloneCfg{})
		what := damage(t, fs, rng, kind)
		got, outcome := b.trial(fs)
		if outcome == "identical" {
			n, err := b.compare(got)
			if err != nil {
				t.Errorf("trial %d (seed %d), %s: opened and ran, but %v", i, seed, what, err)
				outcome = "wrong"
			} else if n > 0 {
				outcome = "identical but for acknowledged events pending again"
				redelivered += n
			}
		} else if !strings.HasPrefix(outcome, "refused") {
			t.Errorf("trial %d (seed %d), %s: %s", i, seed, what, outcome)
			outcome = strings.SplitN(outcome, ":", 2)[0]
		}
		if os.Getenv("LINKAUD_CORRUPTION_VERBOSE") != "" {
			fmt.Printf("trial %d: %s: %s\n", i, what, outcome)
		}
		mu.Lock()
		counts[outcome]++
		if byKind[kind] == nil {
			byKind[kind] = map[string]int{}
		}
		byKind[kind][outcome]++
		mu.Unlock()
	}
	var sum strings.Builder
	fmt.Fprintf(&sum, "corruption: %d trials (seed %d):", trials, seed)
	for _, o := range slices.Sorted(mapsKeys(counts)) {
		fmt.Fprintf(&sum, " %s %d;", o, counts[o])
	}
	fmt.Fprintf(&sum, " %d acknowledged events pending again in all\n", redelivered)
	for _, k := range slices.Sorted(mapsKeys(byKind)) {
		fmt.Fprintf(&sum, "  %s:", k)
		for _, o := range slices.Sorted(mapsKeys(byKind[k])) {
			fmt.Fprintf(&sum, " %s %d;", o, byKind[k][o])
		}
		sum.WriteString("\n")
	}
	fmt.Print(sum.String())
}

func mapsKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}
