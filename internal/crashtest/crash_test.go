package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/linkaud/linkaud/internal/crashpoint"
	"github.com/linkaud/linkaud/internal/gen"
)

// The scenario: a generated workspace of this many profiles, computed at
// two steps; step 2 swaps in data generated with another seed, so nearly
// every membership changes (thousands of events per step).
const profiles = 3000

var (
	anchor = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// stepNow[s] is the cycle start of step s (fixed: events are compared
	// byte for byte).
	stepNow = [...]string{1: "2026-03-01T12:00:00Z", 2: "2026-03-01T13:00:00Z"}
	// The audiences of the workspace (gen's three and extraLA's).
	audiences = []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users", "card_transactions"}
)

// extraLA adds to gen's workspace an audience with many result rows (so a
// cycle streams many record batches), two file destinations with small
// batches (many sends and acknowledgements, two destinations delivered at
// once), and activations of every kind.
const extraLA = `
audience card_transactions {
  description "Profiles with card transactions: many result rows"
  match profile -> account -> credit_card -> transaction
}
destination audit { type file path "audit.jsonl" batch_size 200 }
destination crm   { type file path "crm.jsonl"   batch_size 300 }
activation ob_added   { audience outstanding_balance destination audit event entity_added credit_card send_current true }
activation ob_removed { audience outstanding_balance destination audit event entity_removed credit_card }
activation ob_entered { audience outstanding_balance destination audit event audience_entered send_current true }
activation ob_exited  { audience outstanding_balance destination audit event audience_exited }
activation cats_sync  { audience platinum_cat_owners destination crm event audience_membership_changed send_current true }
activation premium_in { audience premium_heavy_users destination crm event audience_entered send_current true }
activation premium_out { audience premium_heavy_users destination crm event audience_exited }
activation tx_entered { audience card_transactions destination audit event audience_entered send_current true }
activation tx_exited  { audience card_transactions destination audit event audience_exited }
`

var (
	linkaudBin   string
	data1, data2 string // generated workspaces, seeds 1 and 2
)

func TestMain(m *testing.M) {
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func setupAndRun(m *testing.M) (int, error) {
	tmp, err := os.MkdirTemp("", "linkaud-crashtest")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmp)
	linkaudBin = filepath.Join(tmp, "linkaud")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow,crashpoints", "-o", linkaudBin, "../../cmd/linkaud")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("building linkaud with crash points: %w", err)
	}
	data1, data2 = filepath.Join(tmp, "seed1"), filepath.Join(tmp, "seed2")
	for i, out := range []string{data1, data2} {
		if _, err := gen.Generate(context.Background(), gen.Options{Profiles: profiles, Out: out, Seed: int64(i + 1), Anchor: anchor}); err != nil {
			return 0, err
		}
	}
	return m.Run(), nil
}

// result is one linkaud process.
type result struct {
	killed bool // by SIGKILL
	code   int
	out    string
	took   time.Duration
}

// linkaud runs the binary in dir. killAfter > 0 sends SIGKILL after that
// long, unless it has exited.
func linkaud(t *testing.T, dir string, env []string, killAfter time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(linkaudBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	r := result{out: out.String(), took: time.Since(began)}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
			r.killed = true
		} else {
			r.code = ee.ExitCode()
		}
	case err != nil:
		t.Fatal(err)
	}
	return r
}

// must runs linkaud and fails the test unless it exits 0.
func must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	r := linkaud(t, dir, nil, 0, args...)
	if r.killed || r.code != 0 {
		t.Fatalf("linkaud %s: exit %d, killed %v:\n%s", strings.Join(args, " "), r.code, r.killed, r.out)
	}
	return r.out
}

// setup makes a fresh workspace with step 1's data, every audience enabled.
func setup(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	if err := os.CopyFS(ws, os.DirFS(data1)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "crashtest.la"), []byte(extraLA), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range audiences {
		must(t, dir, "audiences", "ws", "enable", a)
	}
	return dir
}

// toStep2 swaps in step 2's data files.
func toStep2(t *testing.T, dir string) {
	t.Helper()
	d := filepath.Join(dir, "ws", "data")
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(d, os.DirFS(filepath.Join(data2, "data"))); err != nil {
		t.Fatal(err)
	}
}

func runArgs(step int) []string {
	return []string{"run", "ws", "--now", stepNow[step], "--log-level", "error", "--no-timings"}
}

// generations reads each audience's current generation.
func generations(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out := must(t, dir, "audiences", "ws", "list", "--json")
	gens := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var a struct {
			Name       string `json:"name"`
			Generation uint64 `json:"generation"`
			Members    int64  `json:"members"`
		}
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("audiences list: %v: %s", err, line)
		}
		gens[a.Name] = a.Generation
	}
	return gens
}

// resumeArgs is the command that completes step, as an operator (or the
// worker) would after a crash: run the audiences whose cycle of this step
// did not commit (which delivers too); if all committed, deliver the
// outbox. Running all of them again would make an extra generation, and
// messageIds (derived from the generation) would then differ from a clean
// run's from the next change on.
func resumeArgs(t *testing.T, dir string, step int) []string {
	t.Helper()
	args := runArgs(step)
	var behind []string
	gens := generations(t, dir)
	for _, a := range audiences {
		if gens[a] < uint64(step) {
			behind = append(behind, "-a", a)
		}
	}
	if len(behind) == 0 {
		return append(args, "--deliver-only")
	}
	return append(args, behind...)
}

// finish completes step after a kill; afterwards every audience is at
// generation step and the outbox is empty.
func finish(t *testing.T, dir string, step int) {
	t.Helper()
	out := must(t, dir, resumeArgs(t, dir, step)...)
	if strings.Contains(out, "left in the outbox") {
		t.Fatalf("finishing step %d left events in the outbox:\n%s", step, out)
	}
	for a, g := range generations(t, dir) {
		if g != uint64(step) {
			t.Fatalf("after finishing step %d, %s is at generation %d", step, a, g)
		}
	}
}

// delivered reads both destinations' JSONL files: each line must be a
// whole JSON event (no torn line); a messageId seen twice must carry the
// same bytes. It returns the events by messageId and the duplicate count.
func delivered(t *testing.T, dir string) (map[string]string, int) {
	t.Helper()
	events := map[string]string{}
	dups := 0
	for _, name := range []string{"audit.jsonl", "crm.jsonl"} {
		f, err := os.Open(filepath.Join(dir, "ws", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.MessageID == "" {
				t.Fatalf("%s: not a whole event (%v): %q", name, err, sc.Text())
			}
			line := name + " " + sc.Text()
			if prev, ok := events[ev.MessageID]; ok {
				if prev != line {
					t.Fatalf("messageId %s delivered with different contents:\n%s\n%s", ev.MessageID, prev, line)
				}
				dups++
				continue
			}
			events[ev.MessageID] = line
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return events, dups
}

// same fails unless got holds exactly the events of want.
func same(t *testing.T, want, got map[string]string) {
	t.Helper()
	var missing, extra []string
	for id, line := range want {
		if got[id] != line {
			missing = append(missing, line)
		}
	}
	for id, line := range got {
		if want[id] != line {
			extra = append(extra, line)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("delivered events differ from a clean run's: %d missing, %d extra or different\nmissing (first 5): %q\nextra (first 5): %q",
			len(missing), len(extra), missing[:min(5, len(missing))], extra[:min(5, len(extra))])
	}
}

// ref is the clean run: its events, how often each crash point fires per
// step, and how long each step's run takes.
type ref struct {
	events map[string]string
	hits   [3]map[string]int
	took   [3]time.Duration
}

var (
	refOnce sync.Once
	theRef  *ref
)

func reference(t *testing.T) *ref {
	t.Helper()
	refOnce.Do(func() {
		dir := setup(t)
		r := &ref{}
		for step := 1; step <= 2; step++ {
			if step == 2 {
				toStep2(t, dir)
			}
			trace := filepath.Join(dir, fmt.Sprintf("trace%d", step))
			res := linkaud(t, dir, []string{crashpoint.EnvTrace + "=" + trace}, 0, runArgs(step)...)
			if res.killed || res.code != 0 {
				t.Fatalf("clean step %d: exit %d:\n%s", step, res.code, res.out)
			}
			r.took[step] = res.took
			b, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			r.hits[step] = map[string]int{}
			for _, name := range strings.Fields(string(b)) {
				r.hits[step][name]++
			}
			t.Logf("clean step %d: %s; crash point hits %v\n%s", step, res.took.Round(time.Millisecond), r.hits[step], res.out)
		}
		var dups int
		r.events, dups = delivered(t, dir)
		if dups != 0 {
			t.Fatalf("a clean run delivered %d duplicates", dups)
		}
		if len(r.events) < 1000 {
			t.Fatalf("the scenario is too small to mean much: %d events", len(r.events))
		}
		theRef = r
	})
	if theRef == nil {
		t.Fatal("the clean reference run failed (see the first test)")
	}
	return theRef
}

// picks are the hits of a point to crash at, out of n seen in a clean run:
// the first, the middle, the last, and more for the busy Pebble points.
func picks(point string, n int) []int {
	if n == 0 {
		return nil
	}
	p := []int{1, (n + 1) / 2, n}
	if strings.HasPrefix(point, "pebble.") {
		p = append(p, max(1, n/4), max(1, 3*n/4))
	}
	if n > 1 {
		p = append(p, 2)
	}
	slices.Sort(p)
	return slices.Compact(p)
}

// TestCrashPoints kills step 1 or step 2 at the N-th hit of every crash
// point, finishes, and compares the delivered events with a clean run's.
func TestCrashPoints(t *testing.T) {
	r := reference(t)
	var mu sync.Mutex
	killedAt := map[string]int{} // point → kills
	cases, kills, dups := 0, 0, 0
	t.Run("cases", func(t *testing.T) {
		for step := 1; step <= 2; step++ {
			for _, point := range crashpoint.Points {
				for _, n := range picks(point, r.hits[step][point]) {
					if testing.Short() && n != 1 {
						continue
					}
					crash := point + ":" + strconv.Itoa(n)
					t.Run(fmt.Sprintf("step%d/%s", step, crash), func(t *testing.T) {
						t.Parallel()
						dir := setup(t)
						killed := false
						for s := 1; s <= 2; s++ {
							if s == 2 {
								toStep2(t, dir)
							}
							var env []string
							if s == step {
								env = []string{crashpoint.EnvPoint + "=" + crash}
							}
							res := linkaud(t, dir, env, 0, runArgs(s)...)
							switch {
							case res.killed:
								killed = true
								finish(t, dir, s)
							case res.code != 0:
								t.Fatalf("step %d: exit %d:\n%s", s, res.code, res.out)
							}
						}
						got, d := delivered(t, dir)
						same(t, r.events, got)
						if d > 0 {
							t.Logf("%d events delivered twice (same messageId and bytes)", d)
						}
						mu.Lock()
						defer mu.Unlock()
						cases++
						dups += d
						if killed {
							kills++
							killedAt[point]++
						} else {
							t.Logf("%s was not reached in step %d (the Pebble points vary with background work)", crash, step)
						}
					})
				}
			}
		}
	})
	if t.Failed() {
		return
	}
	t.Logf("crash points: %d cases, %d killed a process (by point: %v); %d duplicate deliveries, all with the same messageId and bytes",
		cases, kills, killedAt, dups)
	for _, p := range crashpoint.Points {
		if killedAt[p] == 0 {
			t.Errorf("no case killed the process at %s", p)
		}
	}
}

// TestRandomKills sends SIGKILL from outside after random delays, up to
// three times per step (each restart resumes the step, as finish does),
// then finishes and compares with a clean run.
// LINKAUD_CRASH_RANDOM sets the number of scenarios (default 4).
func TestRandomKills(t *testing.T) {
	r := reference(t)
	scenarios := 4
	if testing.Short() {
		scenarios = 1
	}
	if v := os.Getenv("LINKAUD_CRASH_RANDOM"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("LINKAUD_CRASH_RANDOM=%q: want a positive number", v)
		}
		scenarios = n
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	var kills, attempts atomic.Int64
	t.Run("scenarios", func(t *testing.T) {
		for i := range scenarios {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				dir := setup(t)
				for s := 1; s <= 2; s++ {
					if s == 2 {
						toStep2(t, dir)
					}
					for range 3 {
						// Up to a bit past a clean run's length, so some
						// kills land in delivery and some miss.
						delay := time.Duration(rng.Int64N(int64(r.took[s]) * 6 / 5))
						attempts.Add(1)
						res := linkaud(t, dir, nil, delay, resumeArgs(t, dir, s)...)
						if !res.killed {
							if res.code != 0 {
								t.Fatalf("step %d: exit %d:\n%s", s, res.code, res.out)
							}
							break
						}
						kills.Add(1)
						t.Logf("step %d: killed after %s", s, delay.Round(time.Millisecond))
					}
					finish(t, dir, s)
				}
				got, _ := delivered(t, dir)
				same(t, r.events, got)
			})
		}
	})
	t.Logf("random kills: %d of %d runs killed", kills.Load(), attempts.Load())
}
