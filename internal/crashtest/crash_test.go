package crashtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
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
// four steps, the data changing before each: steps 2 and 3 are gen.Mutate
// at mutatePercent (the next hours' data: balances flip, cards close and
// open, plans and emails change, pets move, new events), step 4 swaps in
// data generated with another seed, so nearly every membership changes.
// Every kind of event comes out of it: entered, exited, entity added,
// removed (with the lookup of the removed cards' current values) and
// changed (a due date moved), membership changed.
const (
	profiles      = 3000
	steps         = 4
	mutatePercent = 5
)

var (
	anchor = time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	// stepNow[s] is the cycle start of step s (fixed: events are compared
	// byte for byte).
	stepNow = [steps + 1]string{1: "2026-03-01T12:00:00Z", 2: "2026-03-01T13:00:00Z", 3: "2026-03-01T14:00:00Z", 4: "2026-03-01T15:00:00Z"}
	// mutateSeed[s] is the seed of the mutation that makes step s's data
	// from step s-1's (0: not a mutation).
	mutateSeed = [steps + 1]int64{2: 2, 3: 3}
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
activation ob_changed { audience outstanding_balance destination audit event entity_changed credit_card properties credit_card.due_date }
activation cats_sync  { audience platinum_cat_owners destination crm event audience_membership_changed send_current true }
activation premium_in { audience premium_heavy_users destination crm event audience_entered send_current true }
activation premium_out { audience premium_heavy_users destination crm event audience_exited }
activation tx_entered { audience card_transactions destination audit event audience_entered send_current true }
activation tx_exited  { audience card_transactions destination audit event audience_exited }
`

var (
	linkaudBin string
	tmpRoot    string
	// stepData[s] is a workspace directory whose data/ holds step s's
	// files; template is a workspace with step 1's data, extraLA and
	// every audience enabled, never run.
	stepData [steps + 1]string
	template string
	mutated  [steps + 1]*gen.MutateResult
)

// full selects the long run of `make test-crash`: every crash point at
// every hit picked, on every step, and more random and worker scenarios.
var full = os.Getenv("LINKAUD_CRASH_FULL") != ""

func TestMain(m *testing.M) {
	code, err := setupAndRun(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crashtest:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

func setupAndRun(m *testing.M) (int, error) {
	var err error
	if tmpRoot, err = os.MkdirTemp("", "linkaud-crashtest"); err != nil {
		return 0, err
	}
	defer os.RemoveAll(tmpRoot)
	linkaudBin = filepath.Join(tmpRoot, "linkaud")
	build := exec.Command("go", "build", "-tags", "duckdb_arrow,crashpoints", "-o", linkaudBin, "../../cmd/linkaud")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		return 0, fmt.Errorf("building linkaud with crash points: %w", err)
	}
	ctx := context.Background()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	for s := 1; s <= steps; s++ {
		stepData[s] = filepath.Join(tmpRoot, fmt.Sprintf("data%d", s))
		switch {
		case s == 1:
			_, err = gen.Generate(ctx, gen.Options{Profiles: profiles, Out: stepData[s], Seed: 1, Anchor: anchor, Logger: quiet})
		case mutateSeed[s] != 0:
			if err = os.CopyFS(stepData[s], os.DirFS(stepData[s-1])); err == nil {
				mutated[s], err = gen.Mutate(ctx, gen.MutateOptions{Dir: stepData[s], Percent: mutatePercent, Seed: mutateSeed[s], Logger: quiet})
			}
		default:
			_, err = gen.Generate(ctx, gen.Options{Profiles: profiles, Out: stepData[s], Seed: int64(s), Anchor: anchor, Logger: quiet})
		}
		if err != nil {
			return 0, fmt.Errorf("data of step %d: %w", s, err)
		}
	}
	template = filepath.Join(tmpRoot, "template")
	ws := filepath.Join(template, "ws")
	if err := os.CopyFS(ws, os.DirFS(stepData[1])); err != nil {
		return 0, err
	}
	if err := os.WriteFile(filepath.Join(ws, "crashtest.la"), []byte(extraLA), 0o644); err != nil {
		return 0, err
	}
	for _, a := range audiences {
		cmd := exec.Command(linkaudBin, "audiences", "ws", "enable", a)
		cmd.Dir = template
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("enabling %s: %v\n%s", a, err, out)
		}
	}
	code := m.Run()
	fmt.Println(tally.summary())
	return code, nil
}

// tally counts, over every test of the run, what the summary line reports.
var tally = &counts{byPoint: map[string]int{}}

type counts struct {
	mu                       sync.Mutex
	pointKills, randomKills  int
	workerKills, stateChecks int
	recovered                int // interrupted cycles discarded on reopening
	duplicates, runsCompared int
	byPoint                  map[string]int
	backup                   string // TestBackupWhileWorkerDelivers's result
}

func (c *counts) add(f func(c *counts)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	f(c)
}

func (c *counts) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	points := slices.Sorted(maps.Keys(c.byPoint))
	var b strings.Builder
	for i, p := range points {
		if i > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "%s=%d", p, c.byPoint[p])
	}
	return fmt.Sprintf("crashtest: %d kills survived (%d at crash points, %d random kills of linkaud run, %d of linkaud worker); "+
		"by point: %s; state reopened cleanly after every kill (%d checks, %d interrupted cycles discarded); %d scenarios delivered exactly a clean run's events; "+
		"%d duplicate deliveries, each with the same messageId and bytes",
		c.pointKills+c.randomKills+c.workerKills, c.pointKills, c.randomKills, c.workerKills, b.String(), c.stateChecks, c.recovered, c.runsCompared, c.duplicates) +
		map[bool]string{true: "\ncrashtest: " + c.backup}[c.backup != ""]
}

// result is one linkaud process.
type result struct {
	killed bool // by SIGKILL
	code   int
	out    string // stdout and stderr
	stdout string
	took   time.Duration
}

// linkaud runs the binary in dir. killAfter > 0 sends SIGKILL after that
// long, unless it has exited.
func linkaud(t *testing.T, dir string, env []string, killAfter time.Duration, args ...string) result {
	t.Helper()
	cmd := exec.Command(linkaudBin, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	// Two writers, so two goroutines copy: out must take concurrent
	// writes (a bytes.Buffer's ReadFrom would drop the other's).
	var out syncBuffer
	var stdout bytes.Buffer
	cmd.Stdout, cmd.Stderr = io.MultiWriter(&out, &stdout), &out
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		timer := time.AfterFunc(killAfter, func() { _ = cmd.Process.Signal(syscall.SIGKILL) })
		defer timer.Stop()
	}
	err := cmd.Wait()
	r := result{out: out.String(), stdout: stdout.String(), took: time.Since(began)}
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

// must runs linkaud and fails the test unless it exits 0; it returns
// stdout and stderr.
func must(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return mustRun(t, dir, args...).out
}

func mustRun(t *testing.T, dir string, args ...string) result {
	t.Helper()
	r := linkaud(t, dir, nil, 0, args...)
	if r.killed || r.code != 0 {
		t.Fatalf("linkaud %s: exit %d, killed %v:\n%s", strings.Join(args, " "), r.code, r.killed, r.out)
	}
	return r
}

// copyDir copies the directory from into to, which must not exist.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	if err := os.CopyFS(to, os.DirFS(from)); err != nil {
		t.Fatal(err)
	}
}

// setup makes a fresh workspace with step 1's data, every audience
// enabled, in a new directory it returns (the workspace is its ws/).
func setup(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join(template, "ws"), filepath.Join(dir, "ws"))
	return dir
}

// toStep swaps in step s's data files.
func toStep(t *testing.T, dir string, s int) {
	t.Helper()
	d := filepath.Join(dir, "ws", "data")
	if err := os.RemoveAll(d); err != nil {
		t.Fatal(err)
	}
	copyDir(t, filepath.Join(stepData[s], "data"), d)
}

func runArgs(step int) []string {
	return []string{"run", "ws", "--now", stepNow[step], "--log-level", "error", "--no-timings"}
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
	gens := checkState(t, dir, step)
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
	for a, g := range checkState(t, dir, step) {
		if g != uint64(step) {
			t.Fatalf("after finishing step %d, %s is at generation %d", step, a, g)
		}
	}
}

// ref is the clean run: its events, how often each crash point fires per
// step, how long each step's run takes, and a copy of the workspace after
// each step (snaps[0]: before the first), from which a crash case at step
// s starts instead of running steps 1..s-1 again.
type ref struct {
	events map[string]string
	hits   [steps + 1]map[string]int
	took   [steps + 1]time.Duration
	snaps  [steps + 1]string
}

var (
	refOnce sync.Once
	theRef  *ref
)

func reference(t *testing.T) *ref {
	t.Helper()
	refOnce.Do(func() {
		base := filepath.Join(tmpRoot, "reference")
		dir := filepath.Join(base, "run")
		copyDir(t, filepath.Join(template, "ws"), filepath.Join(dir, "ws"))
		r := &ref{}
		r.snaps[0] = template
		for s := 1; s <= steps; s++ {
			if mutated[s] != nil {
				t.Logf("step %d's data: gen.Mutate %d%% with seed %d: %s", s, mutatePercent, mutateSeed[s], describeMutation(mutated[s]))
			}
			toStep(t, dir, s)
			trace := filepath.Join(base, fmt.Sprintf("trace%d", s))
			res := linkaud(t, dir, []string{crashpoint.EnvTrace + "=" + trace}, 0, runArgs(s)...)
			if res.killed || res.code != 0 {
				t.Fatalf("clean step %d: exit %d:\n%s", s, res.code, res.out)
			}
			r.took[s] = res.took
			b, err := os.ReadFile(trace)
			if err != nil {
				t.Fatal(err)
			}
			r.hits[s] = map[string]int{}
			for _, name := range strings.Fields(string(b)) {
				r.hits[s][name]++
			}
			t.Logf("clean step %d: %s; crash point hits %v\n%s", s, res.took.Round(time.Millisecond), r.hits[s], res.out)
			r.snaps[s] = filepath.Join(base, fmt.Sprintf("snap%d", s))
			copyDir(t, filepath.Join(dir, "ws"), filepath.Join(r.snaps[s], "ws"))
			checkAgainstPreview(t, dir, s)
		}
		d := delivered(t, dir, false)
		if d.dups != 0 {
			t.Fatalf("a clean run delivered %d duplicates", d.dups)
		}
		if len(d.events) < 1000 {
			t.Fatalf("the scenario is too small to mean much: %d events", len(d.events))
		}
		r.events = d.events
		t.Logf("the clean run delivered %d events; each matches a change of membership found by `linkaud preview` and none is missing", len(d.events))
		theRef = r
	})
	if theRef == nil {
		t.Fatal("the clean reference run failed (see the first test)")
	}
	return theRef
}

func describeMutation(res *gen.MutateResult) string {
	var parts []string
	for _, tab := range res.Tables {
		parts = append(parts, fmt.Sprintf("%s %d/%d/%d", tab.Name, tab.Changed, tab.Added, tab.Removed))
	}
	return "changed/added/removed " + strings.Join(parts, ", ")
}

// fromSnapshot makes a case directory holding the reference's workspace
// after step s.
func fromSnapshot(t *testing.T, r *ref, s int) string {
	t.Helper()
	dir := t.TempDir()
	copyDir(t, filepath.Join(r.snaps[s], "ws"), filepath.Join(dir, "ws"))
	return dir
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

// TestCrashPoints kills a step at the N-th hit of every crash point,
// checks that the state reopens, finishes the step, runs the later steps
// (a crash must not spoil what comes after it) and compares the delivered
// events with a clean run's. In CI each point is crashed at two of the
// steps, at one of its picked hits (rotating); with LINKAUD_CRASH_FULL at
// every step and every picked hit.
func TestCrashPoints(t *testing.T) {
	r := reference(t)
	var mu sync.Mutex
	killedAt := map[string]int{} // point → kills
	cases, kills, dups := 0, 0, 0
	t.Run("cases", func(t *testing.T) {
		for step := 1; step <= steps; step++ {
			for pi, point := range crashpoint.Points {
				ns := picks(point, r.hits[step][point])
				if len(ns) == 0 {
					continue
				}
				switch {
				case full:
				case (step+pi)%2 != 0:
					// CI: each point at two of the four steps.
					continue
				case testing.Short():
					ns = ns[:1]
				default:
					ns = []int{ns[(step/2+pi)%len(ns)]}
				}
				for _, n := range ns {
					crash := point + ":" + strconv.Itoa(n)
					t.Run(fmt.Sprintf("step%d/%s", step, crash), func(t *testing.T) {
						t.Parallel()
						dir := fromSnapshot(t, r, step-1)
						toStep(t, dir, step)
						res := linkaud(t, dir, []string{crashpoint.EnvPoint + "=" + crash}, 0, runArgs(step)...)
						killed := res.killed
						switch {
						case killed:
							finish(t, dir, step)
						case res.code != 0:
							t.Fatalf("step %d: exit %d:\n%s", step, res.code, res.out)
						}
						for s := step + 1; s <= steps; s++ {
							toStep(t, dir, s)
							must(t, dir, runArgs(s)...)
						}
						d := delivered(t, dir, false)
						same(t, r.events, d.events)
						if d.dups > 0 {
							t.Logf("%d events delivered twice (same messageId and bytes)", d.dups)
						}
						mu.Lock()
						defer mu.Unlock()
						cases++
						dups += d.dups
						tally.add(func(c *counts) { c.duplicates += d.dups; c.runsCompared++ })
						if killed {
							kills++
							killedAt[point]++
							tally.add(func(c *counts) { c.pointKills++; c.byPoint[point]++ })
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
	t.Logf("crash points: %d cases over %d steps, %d killed a process (by point: %v); %d duplicate deliveries, all with the same messageId and bytes",
		cases, steps, kills, killedAt, dups)
	for _, p := range crashpoint.Points {
		if killedAt[p] == 0 {
			t.Errorf("no case killed the process at %s", p)
		}
	}
}

// TestRandomKills sends SIGKILL to `linkaud run` from outside after random
// delays, up to three times per step (each restart resumes the step, as
// finish does, after checking that the state reopens), then finishes and
// compares with a clean run. LINKAUD_CRASH_RANDOM sets the number of
// scenarios (default 2; 8 with LINKAUD_CRASH_FULL), LINKAUD_CRASH_SEED the
// seed of the delays.
func TestRandomKills(t *testing.T) {
	r := reference(t)
	scenarios := envInt(t, "LINKAUD_CRASH_RANDOM", map[bool]int{false: 2, true: 8}[full])
	if testing.Short() {
		scenarios = 1
	}
	seed := uint64(envInt(t, "LINKAUD_CRASH_SEED", int(time.Now().UnixNano()&(1<<62-1))))
	t.Logf("LINKAUD_CRASH_SEED=%d", seed)
	var kills, attempts, dups atomic.Int64
	t.Run("scenarios", func(t *testing.T) {
		for i := range scenarios {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, uint64(i)))
				dir := setup(t)
				for s := 1; s <= steps; s++ {
					toStep(t, dir, s)
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
						tally.add(func(c *counts) { c.randomKills++ })
						t.Logf("step %d: killed after %s", s, delay.Round(time.Millisecond))
					}
					finish(t, dir, s)
				}
				d := delivered(t, dir, false)
				same(t, r.events, d.events)
				dups.Add(int64(d.dups))
				tally.add(func(c *counts) { c.duplicates += d.dups; c.runsCompared++ })
			})
		}
	})
	t.Logf("random kills: %d of %d runs of linkaud run killed over %d scenarios of %d steps; %d duplicate deliveries, all with the same messageId and bytes",
		kills.Load(), attempts.Load(), scenarios, steps, dups.Load())
}

// envInt reads a positive number from the environment, or gives def.
func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}
