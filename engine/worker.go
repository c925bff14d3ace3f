package engine

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

// Defaults of WorkerOptions.
const (
	// DefaultMaxConcurrent is Segment's limit of audiences computing at once.
	DefaultMaxConcurrent   = 5
	DefaultDeliverInterval = 5 * time.Second
	DefaultStopTimeout     = 30 * time.Second
	DefaultReloadDebounce  = 500 * time.Millisecond
	// StopGrace is how long Run waits, past StopTimeout, for cycles and
	// deliveries to return once cancelled, before giving up on them with
	// ErrStopTimeout.
	StopGrace = 10 * time.Second
)

// Errors of the worker's API, matched with errors.Is.
var (
	ErrUnknownAudience = errors.New("engine: no such audience in the workspace")
	ErrAudienceOff     = errors.New("engine: audience is disabled; enable it first")
	ErrRunning         = errors.New("engine: audience is already running")
	ErrStopping        = errors.New("engine: the worker is stopping")
	// ErrStopTimeout is returned by Run when a cycle or a delivery did not
	// return within StopGrace of being cancelled. The state stays
	// consistent (an unfinished cycle changes nothing), but the caller
	// should not wait for those goroutines: exit without closing.
	ErrStopTimeout = errors.New("engine: cycles or deliveries did not stop in time")
	// errAbandoned is the cancellation cause of cycles cut short by a stop.
	errAbandoned = errors.New("cycle abandoned: the worker is stopping")
)

// WorkerOptions configure a Worker. Zero fields take the defaults named.
type WorkerOptions struct {
	// MaxConcurrent bounds the cycles running at once; default
	// DefaultMaxConcurrent. Runs that fall due while all slots are busy
	// wait in a queue, earliest due first.
	MaxConcurrent int
	// DeliverInterval is how often each destination with a backlog is
	// delivered between cycles (retries after a failed pass); default
	// DefaultDeliverInterval. Every finished cycle also starts a pass for
	// its destinations at once.
	DeliverInterval time.Duration
	// StopTimeout bounds the graceful stop once Run's context ends: cycles
	// running then may finish during its first two thirds, after which
	// they are cancelled (a cancelled cycle changes nothing); deliveries
	// flush the outbox in what is left, then are cancelled too (what was
	// not delivered stays in the outbox). Default DefaultStopTimeout.
	StopTimeout time.Duration
	// Load loads the workspace again for a reload; nil disables reloads.
	Load func() (*dsl.Workspace, dsl.Diagnostics)
	// Watch reloads when a .la file of the workspace directory is
	// written, created, removed or renamed, once ReloadDebounce passed
	// without another change. Needs Load.
	Watch bool
	// ReloadDebounce; default DefaultReloadDebounce.
	ReloadDebounce time.Duration
	// Logger; default the engine's.
	Logger *slog.Logger
	// Now is the scheduling clock; default time.Now.
	Now func() time.Time
}

// Worker runs the enabled audiences of an Engine on their schedules, at
// most MaxConcurrent at once, delivers their events continuously, reloads
// the workspace on request, and stops gracefully. Create it with
// NewWorker, start it with Run; its other methods are safe for concurrent
// use, before, during and after Run (the HTTP API calls them).
type Worker struct {
	e    *Engine
	opts WorkerOptions
	log  *slog.Logger

	started   chan struct{} // closed when Run starts
	runCalled atomic.Bool   // Run was called
	wake      chan struct{} // nudges the scheduler (cap 1)
	reloads   chan string   // reload requests with their reason (cap 1)
	reloadMu  sync.Mutex    // one reload at a time

	// abort stops Run when the state is found damaged: computing or
	// delivering on it would be wrong; failed is the cause Run returns.
	abort  context.CancelCauseFunc
	failed atomic.Pointer[error]

	cycles       sync.WaitGroup
	cycleCtx     context.Context
	cancelCycles context.CancelCauseFunc
	deliverCtx   context.Context
	stopDeliver  context.CancelFunc

	mu       sync.Mutex
	ws       *dsl.Workspace
	auds     map[string]*sched // the workspace's audiences
	queue    []*sched          // due runs waiting for a slot, by due time
	running  int
	peak     int
	stopping bool
	dests    map[string]*deliverer
	// eventRun is each audience's latest run that wrote events, which
	// deliveries are credited to.
	eventRun map[string]uint64
}

// sched is the worker's view of one audience; guarded by Worker.mu.
type sched struct {
	aud       *dsl.Audience
	enabled   bool
	next      time.Time // when the next run is due; zero: not scheduled
	lastStart time.Time
	running   bool
	queued    bool
	dueAt     time.Time // the due time it was queued with
	waiting   time.Time // when it was first left queued with every slot busy
	schedErr  string    // the schedule could not be computed
}

// NewWorker returns a worker for e, its schedule built from the engine's
// workspace and the stored state; Run starts it.
func NewWorker(e *Engine, opts WorkerOptions) (*Worker, error) {
	if opts.MaxConcurrent <= 0 {
		opts.MaxConcurrent = DefaultMaxConcurrent
	}
	if opts.DeliverInterval <= 0 {
		opts.DeliverInterval = DefaultDeliverInterval
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = DefaultStopTimeout
	}
	if opts.ReloadDebounce <= 0 {
		opts.ReloadDebounce = DefaultReloadDebounce
	}
	if opts.Logger == nil {
		opts.Logger = e.log
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	w := &Worker{
		e:        e,
		opts:     opts,
		log:      opts.Logger,
		started:  make(chan struct{}),
		wake:     make(chan struct{}, 1),
		reloads:  make(chan string, 1),
		auds:     map[string]*sched{},
		dests:    map[string]*deliverer{},
		eventRun: map[string]uint64{},
	}
	w.cycleCtx, w.cancelCycles = context.WithCancelCause(context.Background())
	w.deliverCtx, w.stopDeliver = context.WithCancel(context.Background())
	if err := w.load(e.Workspace()); err != nil {
		return nil, err
	}
	return w, nil
}

// Run schedules, computes and delivers until ctx ends, then stops
// gracefully within StopTimeout (see WorkerOptions.StopTimeout) and
// returns nil; ErrStopTimeout if something ignored its cancellation for
// StopGrace longer. The caller closes the Engine afterwards.
func (w *Worker) Run(ctx context.Context) error {
	if !w.runCalled.CompareAndSwap(false, true) {
		return errors.New("engine: Worker.Run called twice")
	}
	ctx, w.abort = context.WithCancelCause(ctx)
	defer w.abort(nil)
	close(w.started)
	w.mu.Lock()
	w.syncDestinations(w.ws)
	w.mu.Unlock()
	bg, stopBG := context.WithCancel(context.Background())
	var bgDone sync.WaitGroup
	bgDone.Go(func() { w.reloadLoop(bg) })
	if w.opts.Watch && w.opts.Load != nil {
		if err := w.watch(bg, &bgDone); err != nil {
			// Reloading on SIGHUP still works.
			w.log.Warn("not watching the workspace for changes", "error", err)
		}
	}
	w.log.Info("worker started", "audiences", len(w.e.Workspace().Audiences),
		"max_concurrent", w.opts.MaxConcurrent, "stop_timeout", w.opts.StopTimeout.String())
	WarnStranded(w.log, w.e.Workspace(), w.e.Store())
	w.schedule(ctx)
	stopBG()
	err := w.stop()
	bgDone.Wait()
	if f := w.failed.Load(); f != nil {
		return errors.Join(*f, err)
	}
	return err
}

// refuse stops the worker when err says the state is damaged (or its
// directory can no longer be written): it reports whether it did.
func (w *Worker) refuse(err error) bool {
	if !diff.IsCorrupt(err) && !errors.Is(err, diff.ErrUnwritable) && !errors.Is(err, diff.ErrDiskFull) {
		return false
	}
	if w.failed.CompareAndSwap(nil, &err) {
		w.log.Error("stopping: the state cannot be used", "error", err)
		if w.abort != nil {
			w.abort(err)
		}
	}
	return true
}

// load builds the schedule from ws and the stored state.
func (w *Worker) load(ws *dsl.Workspace) error {
	states, err := w.states()
	if err != nil {
		return err
	}
	now := w.opts.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	w.ws = ws
	for _, a := range ws.Audiences {
		st := states[a.Name]
		s := &sched{aud: a, enabled: st.Enabled, lastStart: st.LastRun}
		w.plan(s, now)
		w.auds[a.Name] = s
	}
	return nil
}

func (w *Worker) states() (map[string]diff.AudienceState, error) {
	list, err := w.e.Store().Audiences()
	if err != nil {
		return nil, fmt.Errorf("reading audience states: %w", err)
	}
	m := make(map[string]diff.AudienceState, len(list))
	for _, st := range list {
		m[st.Name] = st
	}
	return m, nil
}

// plan sets s.next from its schedule and last start. Called with w.mu held.
func (w *Worker) plan(s *sched, now time.Time) {
	s.next, s.schedErr = time.Time{}, ""
	if !s.enabled || s.running || s.queued {
		return
	}
	next, ok, err := NextRun(s.aud.Schedule, s.lastStart, now)
	if err != nil {
		// The checker validates schedules; this is a bug, not a user
		// error, but it must not stop the other audiences.
		s.schedErr = err.Error()
		w.log.Error("cannot schedule audience", "audience", s.aud.Name, "error", err)
		return
	}
	if ok {
		s.next = next
	}
}

// schedule is the scheduler loop: it queues due runs and starts them as
// slots free up, until ctx ends.
func (w *Worker) schedule(ctx context.Context) {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := w.tick()
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-w.wake:
		case <-timer.C:
		}
	}
}

// maxWait bounds the scheduler's sleep, so a jump of the wall clock is
// noticed within it.
const maxWait = time.Minute

// tick queues what is due, dispatches what fits, and returns how long the
// scheduler may sleep.
func (w *Worker) tick() time.Duration {
	now := w.opts.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopping {
		return maxWait
	}
	for _, s := range w.auds {
		if s.enabled && !s.running && !s.queued && !s.next.IsZero() && !s.next.After(now) {
			w.enqueue(s, s.next)
		}
	}
	w.dispatch()
	wait := maxWait
	for _, s := range w.auds {
		if s.enabled && !s.running && !s.queued && !s.next.IsZero() {
			wait = min(wait, s.next.Sub(now))
		}
	}
	return max(wait, 0)
}

// enqueue adds s to the queue, in due order. Called with w.mu held.
func (w *Worker) enqueue(s *sched, due time.Time) {
	s.queued, s.dueAt, s.next = true, due, time.Time{}
	i, _ := slices.BinarySearchFunc(w.queue, s, func(a, b *sched) int {
		return cmp.Or(a.dueAt.Compare(b.dueAt), cmp.Compare(a.aud.Name, b.aud.Name))
	})
	w.queue = slices.Insert(w.queue, i, s)
}

// dequeue removes s from the queue. Called with w.mu held.
func (w *Worker) dequeue(s *sched) {
	if i := slices.Index(w.queue, s); i >= 0 {
		w.queue = slices.Delete(w.queue, i, i+1)
	}
	s.queued, s.waiting = false, time.Time{}
}

// dispatch starts queued runs while slots are free. Called with w.mu held.
func (w *Worker) dispatch() {
	for w.running < w.opts.MaxConcurrent && len(w.queue) > 0 {
		s := w.queue[0]
		w.queue = w.queue[1:]
		s.queued, s.running = false, true
		w.running++
		w.peak = max(w.peak, w.running)
		var waited time.Duration
		if !s.waiting.IsZero() {
			waited = time.Since(s.waiting)
			s.waiting = time.Time{}
		}
		a, acts := s.aud, w.ws.ActivationsOf(s.aud)
		for _, h := range hooksOf[HookCycleStarted](w.e.opts.Hooks) {
			h.OnCycleStarted(a.Name, waited)
		}
		w.cycles.Go(func() { w.cycle(s, a, acts) })
	}
	for _, s := range w.queue {
		if s.waiting.IsZero() {
			s.waiting = time.Now()
		}
	}
	w.queueChanged()
}

// queueChanged tells HookQueue hooks. Called with w.mu held.
func (w *Worker) queueChanged() {
	for _, h := range hooksOf[HookQueue](w.e.opts.Hooks) {
		h.OnQueue(w.running, len(w.queue))
	}
}

// cycle runs one compute cycle of a, then schedules its next run and
// starts delivery of its destinations.
func (w *Worker) cycle(s *sched, a *dsl.Audience, acts []*dsl.Activation) {
	start := w.opts.Now()
	began := time.Now()
	w.log.Debug("cycle started", "audience", a.Name, "version", a.Version)
	res, err := w.e.Compute(w.cycleCtx, a)
	took := time.Since(began)
	if errors.Is(err, diff.ErrDisabled) {
		// Disabled between queueing and starting: not a run.
		w.log.Info("cycle skipped: audience disabled", "audience", a.Name)
	} else {
		if err != nil {
			if c := context.Cause(w.cycleCtx); c != nil {
				err = fmt.Errorf("%w (%v)", err, c)
			}
			w.log.Warn("cycle failed", "audience", a.Name, "error", err)
			w.refuse(err)
		}
		for _, h := range hooksOf[HookCycleDone](w.e.opts.Hooks) {
			h.OnCycleDone(CycleReport{Audience: a, Activations: acts, Result: res, Err: err, Took: took})
		}
	}
	w.mu.Lock()
	w.running--
	s.running = false
	// The next run is planned from the due time this one served when the
	// clock read earlier than it: one due time, one run.
	s.lastStart = start
	if s.dueAt.After(start) {
		s.lastStart = s.dueAt
	}
	if w.auds[a.Name] == s && !w.stopping {
		w.plan(s, w.opts.Now())
	}
	w.queueChanged()
	var kick []*deliverer
	if res != nil && res.Events > 0 {
		w.eventRun[a.Name] = res.Run
		for _, act := range acts {
			if d := w.dests[act.Destination.Name]; d != nil {
				kick = append(kick, d)
			}
		}
		for _, f := range res.Alerts {
			if d := w.dests[f.Notify]; f.Notify != "" && d != nil {
				kick = append(kick, d)
			}
		}
	}
	w.mu.Unlock()
	for _, d := range kick {
		d.kickNow()
	}
	if res != nil {
		// Every run says what it cannot deliver.
		WarnStranded(w.log, w.e.Workspace(), w.e.Store())
	}
	w.nudge()
}

// Wake makes the scheduler read its clock now rather than at its next
// planned wake-up (at most a minute away): for a caller whose
// WorkerOptions.Now jumped, as the benchmark's steady-state round skips
// the idle rest of a schedule period.
func (w *Worker) Wake() { w.nudge() }

func (w *Worker) nudge() {
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// stop is the graceful stop: no new runs, running cycles finish or are
// cancelled, deliveries flush, all within StopTimeout (+ StopGrace for
// parts that ignore cancellation).
func (w *Worker) stop() error {
	began := time.Now()
	deadline := began.Add(w.opts.StopTimeout)
	cycleDeadline := began.Add(w.opts.StopTimeout * 2 / 3)
	w.mu.Lock()
	w.stopping = true
	for _, s := range w.queue {
		s.queued, s.waiting = false, time.Time{}
	}
	w.queue = nil
	running := w.running
	w.queueChanged()
	w.mu.Unlock()
	w.log.Info("worker stopping", "running_cycles", running, "timeout", w.opts.StopTimeout.String())

	cyclesDone := make(chan struct{})
	go func() { w.cycles.Wait(); close(cyclesDone) }()
	select {
	case <-cyclesDone:
	case <-time.After(time.Until(cycleDeadline)):
		w.mu.Lock()
		var names []string
		for name, s := range w.auds {
			if s.running {
				names = append(names, name)
			}
		}
		w.mu.Unlock()
		slices.Sort(names)
		w.log.Warn("abandoning running cycles; their previous generation stays current", "audiences", names)
		w.cancelCycles(errAbandoned)
		select {
		case <-cyclesDone:
		case <-time.After(StopGrace):
			return ErrStopTimeout
		}
	}

	w.mu.Lock()
	dests := make([]*deliverer, 0, len(w.dests))
	for _, d := range w.dests {
		dests = append(dests, d)
		d.flushAndStop()
	}
	w.mu.Unlock()
	flushed := make(chan struct{})
	go func() {
		for _, d := range dests {
			<-d.done
		}
		close(flushed)
	}()
	// Cycles cut short may have used the whole budget (cancellation is
	// not instant): deliveries then get no waiting, but a pass already
	// done still counts.
	select {
	case <-flushed:
	default:
		select {
		case <-flushed:
		case <-time.After(time.Until(deadline)):
			w.log.Warn("delivery did not finish in time; the rest stays in the outbox for the next start")
			w.stopDeliver()
			select {
			case <-flushed:
			case <-time.After(StopGrace):
				return ErrStopTimeout
			}
		}
	}
	w.stopDeliver()
	backlog, _ := w.e.Store().Backlogs()
	w.log.Info("worker stopped", "took", time.Since(began).Round(time.Millisecond).String(), "outbox_backlog", backlog)
	return nil
}

// Stopping reports whether the worker is stopping (or stopped).
func (w *Worker) Stopping() bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stopping
}

// RunNow queues a run of audience name, due now: it starts as soon as a
// slot is free, whatever its schedule (manual audiences included). It
// fails with ErrUnknownAudience, ErrAudienceOff, ErrRunning or
// ErrStopping; a run already queued is moved to the front of its due time.
func (w *Worker) RunNow(name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	s, err := w.lookup(name)
	if err != nil {
		return err
	}
	switch {
	case !s.enabled:
		return fmt.Errorf("%w: %s", ErrAudienceOff, name)
	case s.running:
		return fmt.Errorf("%w: %s (its next run is scheduled when this one finishes)", ErrRunning, name)
	}
	now := w.opts.Now()
	if s.queued {
		if !s.dueAt.After(now) {
			return nil
		}
		w.dequeue(s)
	}
	w.enqueue(s, now)
	w.queueChanged()
	w.log.Info("run requested", "audience", name)
	w.nudge()
	return nil
}

// lookup returns the schedule entry of name. Called with w.mu held.
func (w *Worker) lookup(name string) (*sched, error) {
	if w.stopping {
		return nil, ErrStopping
	}
	s := w.auds[name]
	if s == nil {
		names := make([]string, 0, len(w.auds))
		for n := range w.auds {
			names = append(names, n)
		}
		return nil, NewUnknownAudienceError(name, names)
	}
	return s, nil
}

// Enable enables audience name and schedules it (an `every` audience
// that never ran is due at once).
func (w *Worker) Enable(name string) error { return w.setEnabled(name, true) }

// Disable disables audience name: queued runs are dropped, a running
// cycle finishes but is not followed by another. Its membership is kept.
func (w *Worker) Disable(name string) error { return w.setEnabled(name, false) }

func (w *Worker) setEnabled(name string, on bool) error {
	w.mu.Lock()
	s, err := w.lookup(name)
	w.mu.Unlock()
	if err != nil {
		return err
	}
	if s.aud.Enabled != nil {
		return declaredError(s.aud, on)
	}
	store := w.e.Store()
	if on {
		err = store.Enable(name)
	} else {
		err = store.Disable(name)
	}
	if err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s = w.auds[name]
	if s == nil { // removed by a reload meanwhile
		return nil
	}
	s.enabled = on
	if !on && s.queued {
		w.dequeue(s)
		w.queueChanged()
	}
	w.plan(s, w.opts.Now())
	w.log.Info("audience "+map[bool]string{true: "enabled", false: "disabled"}[on], "audience", name)
	w.nudge()
	return nil
}

// AudienceStatus is what the worker knows of an audience: its stored state
// and its place in the schedule.
type AudienceStatus struct {
	diff.AudienceState
	// Defined is false for an audience deleted from the workspace whose
	// state is kept until purged.
	Defined     bool
	Description string
	// Schedule is the schedule as written, e.g. "every 1h"; Definition is
	// the definition's version (AudienceState.Version is the version the
	// current generation was computed from).
	Schedule   string
	Definition string
	// Next is when the next run is due; zero when none is scheduled
	// (disabled, manual, running or queued).
	Next    time.Time
	Running bool
	Queued  bool
	// ScheduleError says why no run could be scheduled.
	ScheduleError string
}

// Audiences returns the status of every audience of the workspace, then
// of those only in the state, by name.
func (w *Worker) Audiences() ([]AudienceStatus, error) {
	states, err := w.states()
	if err != nil {
		return nil, err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []AudienceStatus
	for name, s := range w.auds {
		out = append(out, w.status(s, states[name]))
	}
	for name, st := range states {
		if w.auds[name] == nil {
			out = append(out, AudienceStatus{AudienceState: st})
		}
	}
	slices.SortFunc(out, func(a, b AudienceStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out, nil
}

// Audience returns the status of audience name and its last runs, newest
// first (at most history; all kept when history <= 0).
func (w *Worker) Audience(name string, history int) (AudienceStatus, []diff.RunRecord, error) {
	store := w.e.Store()
	st, err := store.State(name)
	if err != nil {
		return AudienceStatus{}, nil, err
	}
	w.mu.Lock()
	s := w.auds[name]
	var out AudienceStatus
	if s != nil {
		out = w.status(s, st)
	} else {
		out = AudienceStatus{AudienceState: st}
	}
	w.mu.Unlock()
	if s == nil && st.Runs == 0 && !st.Enabled && st.Generation == 0 {
		return AudienceStatus{}, nil, fmt.Errorf("%w: %s", ErrUnknownAudience, name)
	}
	runs, err := store.Runs(name)
	if err != nil {
		return AudienceStatus{}, nil, err
	}
	if history > 0 && len(runs) > history {
		runs = runs[:history]
	}
	return out, runs, nil
}

// status combines s with its stored state. Called with w.mu held.
func (w *Worker) status(s *sched, st diff.AudienceState) AudienceStatus {
	st.Name = s.aud.Name
	return AudienceStatus{
		AudienceState: st,
		Defined:       true,
		Description:   s.aud.Description,
		Schedule:      s.aud.Schedule.String(),
		Definition:    s.aud.Version,
		Next:          s.next,
		Running:       s.running,
		Queued:        s.queued,
		ScheduleError: s.schedErr,
	}
}

// Load reports the worker's load: cycles running, runs queued, and the
// most cycles that ever ran at once.
func (w *Worker) Load() (running, queued, peak int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.running, len(w.queue), w.peak
}

// Health returns what the last delivery of each destination found (see
// DestinationHealth).
func (w *Worker) Health() []DestinationHealth { return w.e.Health() }

// Backlog is how many events wait in dest's outbox.
func (w *Worker) Backlog(dest string) (int64, error) { return w.e.Store().Backlog(dest) }

// Destinations returns the names of the workspace's destinations.
func (w *Worker) Destinations() []string {
	w.mu.Lock()
	ws := w.ws
	w.mu.Unlock()
	if ws == nil {
		ws = w.e.Workspace()
	}
	names := make([]string, len(ws.Destinations))
	for i, d := range ws.Destinations {
		names[i] = d.Name
	}
	return names
}
