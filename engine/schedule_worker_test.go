package engine

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
)

// clockHook moves a test clock when a cycle starts.
type clockHook struct {
	mu      sync.Mutex
	now     time.Time
	onStart func()
	starts  int
}

func (c *clockHook) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clockHook) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func (c *clockHook) OnCycleStarted(string, time.Duration) {
	c.mu.Lock()
	c.starts++
	f := c.onStart
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

func (c *clockHook) started() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.starts
}

// scheduledWorker is the worker fixture's workspace with a_gold on
// schedule s (set on the checked IR: the checker refuses what cannot
// fire, the scheduler must hold without it) and enabled.
func scheduledWorker(t *testing.T, s dsl.Schedule, clk *clockHook) *Worker {
	t.Helper()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la":        workerTestWorkspace,
		"profiles.csv": "segment_id,plan\nu1,gold\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	for _, a := range ws.Audiences {
		if a.Name == "a_gold" {
			a.Schedule = s
		}
	}
	e, err := Open(context.Background(), ws, Options{Hooks: nil, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	e.opts.Hooks = append(e.opts.Hooks, clk)
	if err := e.Store().Enable("a_gold"); err != nil {
		t.Fatal(err)
	}
	w, err := NewWorker(e, WorkerOptions{StopTimeout: 5 * time.Second, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// A cron that can never fire (30 February) gets no run at all, instead of
// a run "now" in a loop; the schedule error is reported.
func TestWorkerNeverRunsWithoutDueTime(t *testing.T) {
	clk := &clockHook{now: time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)}
	w := scheduledWorker(t, dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 0 30 2 *"}, clk)
	stop := runWorker(t, w)
	for range 20 {
		clk.set(clk.Now().Add(24 * time.Hour))
		if err := w.Enable("a_gold"); err != nil { // replans, wakes the scheduler
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n := clk.started(); n != 0 {
		t.Fatalf("%d cycles of a schedule that never fires", n)
	}
	auds, err := w.Audiences()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range auds {
		if a.Name == "a_gold" && (!a.Next.IsZero() || !strings.Contains(a.ScheduleError, "never fires")) {
			t.Fatalf("a_gold: next %v, schedule error %q", a.Next, a.ScheduleError)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// One due time, one run: a clock stepped back during the cycle (an NTP
// correction) does not make the due time it served come round again.
func TestWorkerOneRunPerDueTime(t *testing.T) {
	due := time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)
	clk := &clockHook{now: due.Add(-time.Second)}
	w := scheduledWorker(t, dsl.Schedule{Kind: dsl.ScheduleCron, Cron: "0 9 * * *"}, clk)
	// The audience never ran: its first run is the next 09:00.
	stop := runWorker(t, w)
	clk.onStart = func() { clk.set(due.Add(-30 * time.Second)) }
	clk.set(due)
	w.nudge()
	waitFor(t, "the 09:00 run", func() bool {
		auds, _ := w.Audiences()
		for _, a := range auds {
			if a.Name == "a_gold" && a.Generation == 1 && !a.Running {
				return true
			}
		}
		return false
	})
	clk.onStart = nil
	// The clock comes back past 09:00: the 09:00 run is done.
	for _, at := range []time.Duration{time.Second, 30 * time.Second, time.Hour} {
		clk.set(due.Add(at))
		w.nudge()
		time.Sleep(20 * time.Millisecond)
	}
	if n := clk.started(); n != 1 {
		t.Fatalf("%d runs for one due time", n)
	}
	auds, _ := w.Audiences()
	for _, a := range auds {
		if a.Name == "a_gold" && !a.Next.Equal(due.Add(24*time.Hour)) {
			t.Fatalf("next run %v, want %v", a.Next, due.Add(24*time.Hour))
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

// Wake makes the scheduler read a clock that jumped forward at once, not
// when its sleep (up to maxWait) ends: the second run of an every-15m
// audience starts as soon as the clock says it is due.
func TestWorkerWake(t *testing.T) {
	clk := &clockHook{now: time.Date(2026, 11, 29, 9, 0, 0, 0, time.UTC)}
	w := scheduledWorker(t, dsl.Schedule{Kind: dsl.ScheduleEvery, Every: 15 * time.Minute}, clk)
	stop := runWorker(t, w)
	waitFor(t, "the first run", func() bool {
		auds, _ := w.Audiences()
		for _, a := range auds {
			if a.Name == "a_gold" && a.Generation == 1 && !a.Running && !a.Next.IsZero() {
				return true
			}
		}
		return false
	})
	// The scheduler sleeps now until its bound: nothing is due for 15
	// minutes of the clock.
	time.Sleep(20 * time.Millisecond)
	clk.set(clk.Now().Add(15 * time.Minute))
	w.Wake()
	deadline := time.Now().Add(maxWait / 3)
	for clk.started() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("the run due after the clock jumped did not start within %s of Wake", maxWait/3)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}
