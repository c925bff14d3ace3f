package engine

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// recorder is a hook recording what the worker and the engine report.
type recorder struct {
	mu       sync.Mutex
	started  []string
	done     []CycleReport
	rows     map[string][]int64 // running totals per audience
	finished map[string]int     // done calls per audience
	reloads  []bool
}

func newRecorder() *recorder {
	return &recorder{rows: map[string][]int64{}, finished: map[string]int{}}
}

func (r *recorder) OnCycleStarted(aud string, _ time.Duration) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.started = append(r.started, aud)
}

func (r *recorder) OnCycleDone(rep CycleReport) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done = append(r.done, rep)
}

func (r *recorder) OnRowsRead(aud string, rows int64, done bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if done {
		r.finished[aud]++
	} else {
		r.rows[aud] = append(r.rows[aud], rows)
	}
}

func (r *recorder) OnReload(ok bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reloads = append(r.reloads, ok)
}

func (r *recorder) snapshot() (started []string, done []CycleReport, reloads []bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.started), slices.Clone(r.done), slices.Clone(r.reloads)
}

const workerTestWorkspace = `
warehouse {
  load "ANALYTICS.PROFILES" from "profiles.csv"
}
state "state"
graph {
  profile { table "ANALYTICS.PROFILES" key segment_id }
}
audience a_gold { schedule manual  match trait plan = "gold" }
audience b_silver { schedule manual  match trait plan = "silver" }
audience c_any { schedule manual  match trait plan is not null }
destination audit { type file path "events.jsonl" }
activation entered { audience a_gold destination audit event audience_entered send_current true }
`

// workerFixture opens an engine on a workspace of manual audiences and a
// worker whose schedule clock advances one second per reading.
func workerFixture(t *testing.T, maxConcurrent int, hooks ...sinks.Hook) (*Engine, *Worker, string) {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la":        workerTestWorkspace,
		"profiles.csv": "segment_id,plan\nu1,gold\nu2,silver\nu3,gold\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(context.Background(), ws, Options{Hooks: hooks})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	var mu sync.Mutex
	clock := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	w, err := NewWorker(e, WorkerOptions{
		MaxConcurrent: maxConcurrent,
		StopTimeout:   10 * time.Second,
		Load:          func() (*dsl.Workspace, dsl.Diagnostics) { return dsl.Load(dir, dsl.Options{}) },
		Now: func() time.Time {
			mu.Lock()
			defer mu.Unlock()
			clock = clock.Add(time.Second)
			return clock
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return e, w, dir
}

// runWorker runs w until the test ends (or stop is called) and returns
// stop, which waits for Run's result.
func runWorker(t *testing.T, w *Worker) (stop func() error) {
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	go func() { res <- w.Run(ctx) }()
	var once sync.Once
	var err error
	stop = func() error {
		once.Do(func() { cancel(); err = <-res })
		return err
	}
	t.Cleanup(func() { stop() })
	return stop
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// With one slot, runs start in the order they fell due, not by name; the
// API's refusals name their reason.
func TestWorkerQueueOrderAndRefusals(t *testing.T) {
	rec := newRecorder()
	_, w, _ := workerFixture(t, 1, rec)
	if err := w.RunNow("nope"); !errors.Is(err, ErrUnknownAudience) {
		t.Fatalf("run of an unknown audience: %v", err)
	}
	if err := w.RunNow("a_gld"); !errors.Is(err, ErrUnknownAudience) || !strings.Contains(err.Error(), "did you mean a_gold?") {
		t.Fatalf("run of a misspelt audience: %v", err)
	}
	if err := w.RunNow("c_any"); !errors.Is(err, ErrAudienceOff) {
		t.Fatalf("run of a disabled audience: %v", err)
	}
	for _, name := range []string{"a_gold", "b_silver", "c_any"} {
		if err := w.Enable(name); err != nil {
			t.Fatal(err)
		}
	}
	// Queued before Run: due one clock second apart, in this order.
	for _, name := range []string{"c_any", "a_gold", "b_silver"} {
		if err := w.RunNow(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.RunNow("c_any"); err != nil {
		t.Fatalf("a second request for a queued run: %v", err)
	}
	if _, queued, _ := w.Load(); queued != 3 {
		t.Fatalf("%d queued, want 3", queued)
	}
	stop := runWorker(t, w)
	waitFor(t, "three cycles", func() bool { _, done, _ := rec.snapshot(); return len(done) == 3 })
	started, done, _ := rec.snapshot()
	if want := []string{"c_any", "a_gold", "b_silver"}; !slices.Equal(started, want) {
		t.Fatalf("started %v, want %v (due order)", started, want)
	}
	for _, r := range done {
		if r.Err != nil || r.Result == nil {
			t.Fatalf("%s: %v", r.Audience.Name, r.Err)
		}
	}
	if _, _, peak := w.Load(); peak != 1 {
		t.Fatalf("peak %d with one slot", peak)
	}
	// Manual audiences are not run again on their own; the rows hook saw
	// each stream end once, with the rows the differ read.
	st, _, err := w.Audience("a_gold", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Runs != 1 || st.Members != 2 || !st.Next.IsZero() || st.Schedule != "manual" {
		t.Fatalf("a_gold: %+v", st)
	}
	rec.mu.Lock()
	for _, r := range done {
		name := r.Audience.Name
		rows := rec.rows[name]
		if rec.finished[name] != 1 || len(rows) == 0 || rows[len(rows)-1] != r.Result.RowsRead {
			t.Errorf("%s: rows hook %v, done %d times; the cycle read %d", name, rows, rec.finished[name], r.Result.RowsRead)
		}
	}
	rec.mu.Unlock()
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := w.RunNow("a_gold"); !errors.Is(err, ErrStopping) {
		t.Fatalf("run after the stop: %v", err)
	}
}

// Disabling drops a queued run; a disabled audience keeps its membership.
func TestWorkerDisableDropsQueuedRun(t *testing.T) {
	rec := newRecorder()
	e, w, _ := workerFixture(t, 1, rec)
	for _, name := range []string{"a_gold", "b_silver"} {
		if err := w.Enable(name); err != nil {
			t.Fatal(err)
		}
		if err := w.RunNow(name); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Disable("b_silver"); err != nil {
		t.Fatal(err)
	}
	stop := runWorker(t, w)
	waitFor(t, "a_gold's cycle", func() bool { _, done, _ := rec.snapshot(); return len(done) == 1 })
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if started, _, _ := rec.snapshot(); !slices.Equal(started, []string{"a_gold"}) {
		t.Fatalf("started %v", started)
	}
	if st, _ := e.Store().State("b_silver"); st.Runs != 0 || st.Enabled {
		t.Fatalf("b_silver: %+v", st)
	}
	// The stop flushed a_gold's events to the file destination, and the
	// run's record has the delivery.
	if n, _ := e.Store().Backlog("audit"); n != 0 {
		t.Fatalf("backlog %d after the stop", n)
	}
	runs, err := e.Store().Runs("a_gold")
	if err != nil || len(runs) != 1 || runs[0].Delivered != 2 || runs[0].Delivery <= 0 {
		t.Fatalf("a_gold's runs: %+v %v", runs, err)
	}
}

// A reload with errors keeps the old definitions; a valid one applies,
// removing, adding and changing audiences; the state directory is fixed.
func TestWorkerReload(t *testing.T) {
	rec := newRecorder()
	_, w, dir := workerFixture(t, 2, rec)
	runWorker(t, w)
	version := func(name string) string {
		st, _, err := w.Audience(name, 0)
		if err != nil {
			t.Fatal(err)
		}
		return st.Definition
	}
	v := version("a_gold")

	writeFiles(t, dir, map[string]string{"ws.la": strings.Replace(workerTestWorkspace, `trait plan = "gold"`, `trait plan = "gld`, 1)})
	w.RequestReload("test")
	waitFor(t, "a rejected reload", func() bool { _, _, r := rec.snapshot(); return len(r) == 1 })
	if _, _, r := rec.snapshot(); r[0] || version("a_gold") != v {
		t.Fatalf("a broken workspace was applied: %v", r)
	}

	edited := strings.Replace(workerTestWorkspace, `trait plan = "gold"`, `trait plan in ("gold", "platinum")`, 1)
	edited = strings.Replace(edited, `audience b_silver { schedule manual  match trait plan = "silver" }`,
		`audience d_new { schedule every 1h  match trait plan = "silver" }`, 1)
	writeFiles(t, dir, map[string]string{"ws.la": edited})
	w.RequestReload("test")
	waitFor(t, "an applied reload", func() bool { _, _, r := rec.snapshot(); return len(r) == 2 })
	if _, _, r := rec.snapshot(); !r[1] {
		t.Fatal("the valid workspace was rejected")
	}
	if version("a_gold") == v {
		t.Fatal("the edit did not change a_gold's version")
	}
	if err := w.RunNow("b_silver"); !errors.Is(err, ErrUnknownAudience) {
		t.Fatalf("the removed audience still runs: %v", err)
	}
	if err := w.Enable("d_new"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "d_new's first run (every: due at once)", func() bool {
		_, done, _ := rec.snapshot()
		return slices.ContainsFunc(done, func(r CycleReport) bool { return r.Audience.Name == "d_new" && r.Err == nil })
	})
	all, err := w.Audiences()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, st := range all {
		names = append(names, st.Name)
	}
	if want := []string{"a_gold", "c_any", "d_new"}; !slices.Equal(names, want) {
		t.Fatalf("audiences %v, want %v (b_silver never ran: nothing kept)", names, want)
	}

	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	moved := *ws
	moved.StateDir = t.TempDir()
	if err := w.Reload(context.Background(), &moved); err == nil || !strings.Contains(err.Error(), "state directory") {
		t.Fatalf("a reload moving the state: %v", err)
	}
}

// An audience deleted from the workspace stays listed, from the state.
func TestWorkerListsDeletedAudiences(t *testing.T) {
	rec := newRecorder()
	_, w, dir := workerFixture(t, 2, rec)
	if err := w.Enable("b_silver"); err != nil {
		t.Fatal(err)
	}
	if err := w.RunNow("b_silver"); err != nil {
		t.Fatal(err)
	}
	runWorker(t, w)
	waitFor(t, "b_silver's cycle", func() bool { _, done, _ := rec.snapshot(); return len(done) == 1 })
	writeFiles(t, dir, map[string]string{"ws.la": strings.Replace(workerTestWorkspace,
		`audience b_silver { schedule manual  match trait plan = "silver" }`, "", 1)})
	w.RequestReload("test")
	waitFor(t, "the reload", func() bool { _, _, r := rec.snapshot(); return len(r) == 1 })
	st, runs, err := w.Audience("b_silver", 0)
	if err != nil {
		t.Fatal(err)
	}
	if st.Defined || st.Members != 1 || st.Status != diff.Live || len(runs) != 1 {
		t.Fatalf("deleted b_silver: %+v %+v", st, runs)
	}
}
