package crashtest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/linkaud/linkaud/internal/crashpoint"
	"github.com/linkaud/linkaud/internal/gen"
)

// killWindow bounds the random delay before a worker is killed.
const killWindow = 700 * time.Millisecond

// workerToken authorizes the tests' POST /audiences/{name}/run.
const workerToken = "crashtest-token"

// worker is a `linkaud worker` subprocess.
type worker struct {
	cmd    *exec.Cmd
	addr   string // of the HTTP API; "" if it died before listening
	done   chan struct{}
	killed bool // died of SIGKILL (set before done is closed)
	code   int
	stderr syncBuffer
	timer  *time.Timer
	crash  string // the crash point it was started with, if any
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

var httpClient = &http.Client{Timeout: 10 * time.Second}

// startWorker starts `linkaud worker` on the workspace in dir, with a
// SIGKILL after killAfter if positive, or at crash point crash ("NAME:N")
// if set, and waits until it listens or dies.
func startWorker(t *testing.T, dir string, killAfter time.Duration, crash string) *worker {
	t.Helper()
	w := &worker{done: make(chan struct{}), crash: crash}
	w.cmd = exec.Command(linkaudBin, "worker", "ws", "--listen", "127.0.0.1:0", "--deliver-interval", "100ms",
		"--no-watch", "--log-level", "warn")
	w.cmd.Dir = dir
	w.cmd.Env = append(os.Environ(), "LINKAUD_API_TOKEN="+workerToken)
	if crash != "" {
		w.cmd.Env = append(w.cmd.Env, crashpoint.EnvPoint+"="+crash)
	}
	w.cmd.Stderr = &w.stderr
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if killAfter > 0 {
		w.timer = time.AfterFunc(killAfter, func() { _ = w.cmd.Process.Signal(syscall.SIGKILL) })
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "linkaud worker: listening on http://"); ok {
				listening <- a
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		err := w.cmd.Wait()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == syscall.SIGKILL {
				w.killed = true
			} else {
				w.code = ee.ExitCode()
			}
		}
		close(w.done)
	}()
	select {
	case w.addr = <-listening:
	case <-w.done:
	case <-time.After(time.Minute):
		_ = w.cmd.Process.Kill()
		t.Fatalf("the worker did not listen within a minute:\n%s", w.stderr.String())
	}
	return w
}

func (w *worker) exited() bool {
	select {
	case <-w.done:
		return true
	default:
		return false
	}
}

// workerAudience is an audience in GET /audiences.
type workerAudience struct {
	Name       string `json:"name"`
	Status     string `json:"status"`
	Generation uint64 `json:"generation"`
	Running    bool   `json:"running"`
	Queued     bool   `json:"queued"`
}

func (w *worker) audiences() ([]workerAudience, error) {
	resp, err := httpClient.Get("http://" + w.addr + "/audiences")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Audiences []workerAudience `json:"audiences"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET /audiences: %s", resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return nil, err
	}
	return body.Audiences, nil
}

// run asks for a run of audience a now: POST /audiences/{a}/run.
func (w *worker) run(a string) error {
	req, err := http.NewRequest(http.MethodPost, "http://"+w.addr+"/audiences/"+a+"/run", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+workerToken)
	resp, err := httpClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		return &statusError{fmt.Sprintf("POST /audiences/%s/run: %s: %s", a, resp.Status, b)}
	}
	return nil
}

// statusError is an HTTP answer other than the one expected.
type statusError struct{ msg string }

func (e *statusError) Error() string { return e.msg }

// backlog is the number of events in the outbox, from GET /metrics.
func (w *worker) backlog() (int, error) {
	resp, err := httpClient.Get("http://" + w.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	n, seen := 0, 0
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), "linkaud_outbox_backlog{")
		if !ok {
			continue
		}
		_, v, _ := strings.Cut(rest, "} ")
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, fmt.Errorf("metrics: %q", sc.Text())
		}
		n += int(f)
		seen++
	}
	if seen != 2 {
		return 0, fmt.Errorf("metrics: %d outbox_backlog series, want one per destination", seen)
	}
	return n, sc.Err()
}

// workerSetup makes a workspace for the worker (see manualSchedules).
func workerSetup(t *testing.T) string {
	t.Helper()
	dir := setup(t)
	manualSchedules(t, filepath.Join(dir, "ws"))
	return dir
}

// manualSchedules makes every audience of the workspace ws manual, so
// that a cycle runs only when the test asks for one: the worker must run
// each audience exactly once per step, as the clean `linkaud run` does,
// for the generations, and so the messageIds, to match. (An audience
// without a schedule runs every hour, and at once if it never ran.)
func manualSchedules(t *testing.T, ws string) {
	t.Helper()
	for _, f := range []string{gen.WorkspaceFile, "crashtest.la"} {
		p := filepath.Join(ws, f)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		text := strings.ReplaceAll(string(b), "schedule every 1h\n", "")
		text = audienceOpen.ReplaceAllString(text, "${0}\n  schedule manual")
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := must(t, filepath.Dir(ws), "audiences", "ws", "list", "--json")
	if n := strings.Count(out, `"schedule":"manual"`); n != len(audiences) {
		t.Fatalf("%d manual audiences, want %d:\n%s", n, len(audiences), out)
	}
}

var audienceOpen = regexp.MustCompile(`(?m)^audience [a-z_]+ \{`)

// toStepLive changes the data to step s's while a worker may be running:
// the mutation steps call gen.Mutate on the workspace itself (it replaces
// each file by a rename) and check that it made the same bytes as the
// data the other tests use.
func toStepLive(t *testing.T, dir string, s int) {
	t.Helper()
	if mutateSeed[s] == 0 {
		toStep(t, dir, s)
		return
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	ws := filepath.Join(dir, "ws")
	if _, err := gen.Mutate(context.Background(), gen.MutateOptions{Dir: ws, Percent: mutatePercent, Seed: mutateSeed[s], Logger: quiet}); err != nil {
		t.Fatal(err)
	}
	for _, tab := range mutated[s].Tables {
		a, err := os.ReadFile(filepath.Join(ws, tab.File))
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(stepData[s], tab.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("step %d: gen.Mutate in place wrote other bytes to %s than on a copy", s, tab.File)
		}
	}
}

// workerScenario runs the steps with a long-lived `linkaud worker`: the
// data changes under it, the test asks it (over its HTTP API) to run each
// audience whose cycle of the step has not committed, and waits until
// every audience is at the step's generation and the outbox is empty.
// With rng, each worker started gets a SIGKILL, at a random time or at a
// crash point picked at random among those a clean run of the step hits
// (up to maxKills per step; the last start of a step runs unharmed); after
// it the state is checked to reopen cleanly and the worker started again.
// It returns the kills.
func workerScenario(t *testing.T, dir string, rng *rand.Rand, maxKills int, hits [steps + 1]map[string]int) int {
	t.Helper()
	kills := 0
	var w *worker
	defer func() {
		if w != nil && !w.exited() {
			_ = w.cmd.Process.Kill()
			<-w.done
		}
	}()
	for s := 1; s <= steps; s++ {
		if s > 1 {
			toStepLive(t, dir, s)
		}
		killsAt := 0
		triggered := map[string]bool{}
		began := time.Now()
		deadline := began.Add(2 * time.Minute)
		for {
			if time.Now().After(deadline) {
				if w == nil {
					t.Fatalf("step %d did not converge in 2 minutes", s)
				}
				auds, err := w.audiences()
				t.Fatalf("step %d did not converge in 2 minutes: %+v %v\n%s", s, auds, err, w.stderr.String())
			}
			if w != nil && w.exited() {
				if !w.killed {
					t.Fatalf("step %d: the worker exited with %d:\n%s", s, w.code, w.stderr.String())
				}
				kills++
				killsAt++
				how := "at a random time"
				if w.crash != "" {
					how = "at " + w.crash
				}
				t.Logf("step %d: worker killed %s", s, how)
				point, _, _ := strings.Cut(w.crash, ":")
				tally.add(func(c *counts) {
					c.workerKills++
					if point != "" {
						c.byPoint["worker:"+point]++
					}
				})
				checkState(t, dir, s)
				w = nil
			}
			if w == nil {
				var delay time.Duration
				var crash string
				switch {
				case rng == nil || killsAt >= maxKills:
				case kills == 0 || rng.IntN(2) == 0:
					// The first is by time: it fires whatever the
					// worker does, so every scenario kills.
					// A worker starts in about 100 ms, computes and
					// delivers a step in a few hundred more.
					delay = time.Millisecond + time.Duration(rng.Int64N(int64(killWindow)))
				default:
					// A named point of a cycle or of delivery, at a
					// hit in the first half of those a clean `linkaud
					// run` of the step reaches (a restarted worker has
					// less left to do).
					p := crashpoint.Points[rng.IntN(len(crashpoint.Points))]
					crash = fmt.Sprintf("%s:%d", p, 1+rng.IntN(max(1, hits[s][p]/2)))
				}
				w = startWorker(t, dir, delay, crash)
				triggered = map[string]bool{}
				continue
			}
			auds, err := w.audiences()
			if err != nil {
				time.Sleep(20 * time.Millisecond) // dying, or busy
				continue
			}
			converged := len(auds) == len(audiences)
			for _, a := range auds {
				switch {
				case a.Generation > uint64(s):
					t.Fatalf("step %d: %s ran twice: generation %d", s, a.Name, a.Generation)
				case a.Generation < uint64(s):
					converged = false
					// One request per audience and worker process: a
					// second could start a second cycle of the step.
					if !a.Running && !a.Queued && !triggered[a.Name] {
						err := w.run(a.Name)
						var status *statusError
						switch {
						case err == nil:
							triggered[a.Name] = true
						case errors.As(err, &status):
							// Refused by a live worker: not a crash.
							t.Fatalf("step %d: %v", s, err)
						}
						// Otherwise the worker is dying: the next
						// round restarts it.
					}
				}
			}
			if converged {
				if n, err := w.backlog(); err == nil && n == 0 {
					break
				}
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Logf("step %d: computed and delivered in %s, %d kills of the worker", s, time.Since(began).Round(time.Millisecond), killsAt)
	}
	// A graceful stop, unless the last kill is already on its way.
	if w.timer != nil && !w.timer.Stop() {
		<-w.done
	}
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
	switch {
	case w.killed:
		kills++
		tally.add(func(c *counts) { c.workerKills++ })
	case w.code != 0:
		t.Fatalf("the worker's graceful stop exited with %d:\n%s", w.code, w.stderr.String())
	}
	w = nil
	for a, g := range checkState(t, dir, steps) {
		if g != steps {
			t.Fatalf("after the last step %s is at generation %d", a, g)
		}
	}
	return kills
}

var (
	workerRefOnce sync.Once
	workerRef     map[string]string
)

// workerReference is a clean worker run's events, timestamps blanked (the
// worker stamps events with the wall clock). It checks them against the
// clean `linkaud run`: the same messageIds and bytes for every audience
// whose members do not depend on the time (premium_heavy_users counts
// events within 30 days of now, which the worker cannot be told).
func workerReference(t *testing.T) map[string]string {
	t.Helper()
	r := reference(t)
	workerRefOnce.Do(func() {
		dir := filepath.Join(tmpRoot, "worker-reference")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		copyDir(t, filepath.Join(template, "ws"), filepath.Join(dir, "ws"))
		manualSchedules(t, filepath.Join(dir, "ws"))
		workerScenario(t, dir, nil, 0, r.hits)
		d := delivered(t, dir, true)
		if d.dups != 0 {
			t.Fatalf("a clean worker run delivered %d duplicates", d.dups)
		}
		timeless := func(events map[string]string, blank bool) map[string]string {
			out := map[string]string{}
			for id, line := range events {
				if strings.Contains(line, `"computation_key":"premium_heavy_users"`) {
					continue
				}
				if blank {
					line = timestampField.ReplaceAllString(line, `"timestamp":"-"`)
				}
				out[id] = line
			}
			return out
		}
		want, got := timeless(r.events, true), timeless(d.events, false)
		same(t, want, got)
		t.Logf("a clean worker run delivered %d events; the %d of the audiences that do not depend on the clock are the clean `linkaud run`'s, messageIds and bytes (the timestamp aside)",
			len(d.events), len(got))
		workerRef = d.events
	})
	if workerRef == nil {
		t.Fatal("the clean worker run failed (see the first test)")
	}
	return workerRef
}

// TestWorkerKills runs the steps with `linkaud worker` as the only thing
// computing and delivering, SIGKILLs it at random times while it runs
// cycles and delivers, restarts it, and checks that it converges to a clean
// worker run's events: same messageIds, same bytes but the timestamp.
// LINKAUD_CRASH_WORKER sets the number of scenarios (default 1; 4 with
// LINKAUD_CRASH_FULL), LINKAUD_CRASH_SEED the seed of the delays.
func TestWorkerKills(t *testing.T) {
	want := workerReference(t)
	r := reference(t)
	scenarios := envInt(t, "LINKAUD_CRASH_WORKER", map[bool]int{false: 1, true: 4}[full])
	seed := uint64(envInt(t, "LINKAUD_CRASH_SEED", int(time.Now().UnixNano()&(1<<62-1))))
	t.Logf("LINKAUD_CRASH_SEED=%d", seed)
	var mu sync.Mutex
	kills, dups := 0, 0
	t.Run("scenarios", func(t *testing.T) {
		for i := range scenarios {
			t.Run(strconv.Itoa(i), func(t *testing.T) {
				t.Parallel()
				rng := rand.New(rand.NewPCG(seed, uint64(1000+i)))
				dir := workerSetup(t)
				k := workerScenario(t, dir, rng, 3, r.hits)
				d := delivered(t, dir, true)
				same(t, want, d.events)
				t.Logf("%d kills of the worker; %d duplicate deliveries", k, d.dups)
				mu.Lock()
				defer mu.Unlock()
				kills += k
				dups += d.dups
				tally.add(func(c *counts) { c.duplicates += d.dups; c.runsCompared++ })
			})
		}
	})
	t.Logf("worker kills: %d over %d scenarios of %d steps; %d duplicate deliveries, all with the same messageId and bytes", kills, scenarios, steps, dups)
	if !t.Failed() && kills == 0 {
		t.Error("no scenario killed the worker")
	}
}
