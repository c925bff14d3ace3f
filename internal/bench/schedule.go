package bench

// The many-audiences benchmark, `linkaud bench --audiences N`: the
// engine's Worker — the scheduler `linkaud worker` runs, not a copy of it
// — schedules N generated audiences (gen.Options.Audiences), each
// `schedule every 15m`, in this process, with the worker's metrics
// registry as its hooks.
//
//   - Round "first": every audience enabled and due at once on an empty
//     state, until each finished its first cycle.
//   - Round "steady": the worker's clock then jumps over the idle rest of
//     the period, so that each audience falls due one interval after its
//     first cycle started, as in a worker that has run for hours; its
//     no-change cycles are measured until each finished its second.
//
// Memory: the benchmark keeps three timestamps per cycle measured and
// nothing per row; the rest is the worker's.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/executor"
	"github.com/linkaud/linkaud/internal/buildinfo"
	"github.com/linkaud/linkaud/internal/gen"
	"github.com/linkaud/linkaud/internal/metrics"
	"github.com/linkaud/linkaud/sinks"
)

// DefaultScheduleProfiles is the data set's size of RunSchedule.
const DefaultScheduleProfiles = 100_000

// ScheduleOptions configure RunSchedule. Zero fields take the defaults
// named.
type ScheduleOptions struct {
	// Audiences is how many generated audiences are scheduled (required).
	// The seed's three audiences of the data set stay disabled.
	Audiences int
	// Profiles is the data set's size; default DefaultScheduleProfiles.
	Profiles int
	// Dir holds the generated data, reused by later runs of the same
	// size, seed and audiences, and the run's workspace (required).
	Dir string
	// Seed selects the data; default 1.
	Seed int64
	// MaxConcurrent is the worker's limit of cycles at once; default
	// engine.DefaultMaxConcurrent, as `linkaud worker`'s.
	MaxConcurrent int
	// Rounds is 1 (first cycles only) or 2 (then the steady round);
	// default 2.
	Rounds int
	// DuckDB are extra settings of the workspace's DuckDB.
	DuckDB map[string]string
	// MemoryLimit is the memory budget (engine.Options.MemoryLimit); 0
	// for the default one.
	MemoryLimit int64
	// Logger receives one line per round; default discards.
	Logger *slog.Logger
	// Profile, if set, is a file to write a CPU profile of the rounds to.
	Profile string
}

// ScheduleResult is one RunSchedule. The JSON keys are the contract of
// `linkaud bench --audiences N --json`.
type ScheduleResult struct {
	Profiles      int     `json:"profiles"`
	Audiences     int     `json:"audiences"`
	Schedule      string  `json:"schedule"` // every audience's, e.g. "every 15m"
	MaxConcurrent int     `json:"max_concurrent"`
	Machine       Machine `json:"machine"`
	Memory        string  `json:"memory"` // the memory budget and its division
	GenS          float64 `json:"gen_s"`  // 0 when the data was reused
	// Rounds are "first", then "steady".
	Rounds []RoundResult `json:"rounds"`
}

// RoundResult is one round: one cycle of every audience.
type RoundResult struct {
	Name     string `json:"name"`
	Cycles   int    `json:"cycles"`
	Failures int    `json:"failures"`
	// WallS runs from the first due time of the round (the worker's start
	// for the first round) to the end of its last cycle.
	WallS        float64 `json:"wall_s"`
	CyclesPerMin float64 `json:"cycles_per_min"`
	// CycleS is the spread of the cycles' own durations (engine.Compute).
	CycleS Spread `json:"cycle_s"`
	// StartDelayS is the spread of the time from a run falling due to its
	// cycle starting: the wait for a free slot plus the scheduler's own
	// latency. A run's due time is the worker's start in the first
	// round, one interval after its first cycle started in the steady one.
	StartDelayS Spread `json:"start_delay_s"`
	// IdleSlotS is the scheduler's overhead: the slot-seconds within the
	// round in which a run of the round was due but not started while
	// fewer than max_concurrent cycles ran (summed over the free slots).
	// SchedulerOverhead is it over max_concurrent × wall_s.
	IdleSlotS         float64 `json:"idle_slot_s"`
	SchedulerOverhead float64 `json:"scheduler_overhead"`
	// SlotUtilization is the cycles' time over max_concurrent × wall_s:
	// near 1 when the round is bound by capacity (every run due at once).
	// CPUUtilization is the process's CPU time (every thread, DuckDB's
	// included) over wall_s × the CPUs: in the steady round, bound by the
	// schedule, what is left of it is the headroom for more audiences.
	SlotUtilization float64 `json:"slot_utilization"`
	CPUUtilization  float64 `json:"cpu_utilization"`
	// MetSchedule counts the audiences whose cycle of the round finished
	// within one interval of falling due; MissedSchedule the others.
	// LatestFinishS is the most time from due to finished.
	MetSchedule    int     `json:"met_schedule"`
	MissedSchedule int     `json:"missed_schedule"`
	LatestFinishS  float64 `json:"latest_finish_s"`
	// Rows, Members and Events sum the round's cycle results.
	Rows    int64 `json:"rows"`
	Members int64 `json:"members"`
	Events  int64 `json:"events"`
	// PeakRSSMB is the process's peak resident set over the round (VmHWM,
	// reset at its start); GoHeapPeakMB the largest Go heap sampled.
	PeakRSSMB    float64 `json:"peak_rss_mb"`
	GoHeapPeakMB float64 `json:"go_heap_peak_mb"`
	// StateBytes is the state directory's size on disk at the round's
	// end (every file, write-ahead log included); StateTablesBytes its
	// live sstables.
	StateBytes       int64 `json:"state_bytes"`
	StateTablesBytes int64 `json:"state_tables_bytes"`
	// StateRuns sums the runs the state records for the audiences;
	// AtGeneration counts those whose current generation is the round's
	// number (1 after the first round).
	StateRuns    uint64 `json:"state_runs"`
	AtGeneration int    `json:"at_generation"`
	// Metrics is the worker's /metrics, scraped at the round's end.
	Metrics MetricsSize `json:"metrics"`
}

// Spread is a distribution's median, 99th percentile (nearest rank) and
// maximum, in seconds.
type Spread struct {
	Median float64 `json:"median"`
	P99    float64 `json:"p99"`
	Max    float64 `json:"max"`
}

// MetricsSize is one scrape of the worker's /metrics.
type MetricsSize struct {
	// Bytes is the size of the text exposition the handler served;
	// Samples its sample lines.
	Bytes   int `json:"bytes"`
	Samples int `json:"samples"`
	// Series are the series the registry gathers (a histogram counts its
	// buckets, +Inf included, _sum and _count); AudienceSeries those with
	// an audience label, PerAudience those over the audiences.
	Series         int     `json:"series"`
	AudienceSeries int     `json:"audience_series"`
	PerAudience    float64 `json:"series_per_audience"`
	// ScrapeS is how long the handler took to serve it.
	ScrapeS float64 `json:"scrape_s"`
}

// RunSchedule generates (or reuses) the data set with opts.Audiences
// generated audiences and runs the worker's scheduler over them, round by
// round.
func RunSchedule(ctx context.Context, opts ScheduleOptions) (*ScheduleResult, error) {
	if opts.Audiences <= 0 {
		return nil, fmt.Errorf("bench: audiences must be positive, not %d", opts.Audiences)
	}
	if opts.Dir == "" {
		return nil, errors.New("bench: ScheduleOptions.Dir is required")
	}
	opts.Profiles = cmp.Or(opts.Profiles, DefaultScheduleProfiles)
	opts.Seed = cmp.Or(opts.Seed, 1)
	opts.MaxConcurrent = cmp.Or(opts.MaxConcurrent, engine.DefaultMaxConcurrent)
	opts.Rounds = cmp.Or(opts.Rounds, 2)
	switch {
	case opts.Profiles < 0:
		return nil, fmt.Errorf("bench: profiles must be positive, not %d", opts.Profiles)
	case opts.MaxConcurrent < 0:
		return nil, fmt.Errorf("bench: max concurrent must be positive, not %d", opts.MaxConcurrent)
	case opts.Rounds < 1 || opts.Rounds > 2:
		return nil, fmt.Errorf("bench: rounds must be 1 or 2, not %d", opts.Rounds)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	res := &ScheduleResult{Profiles: opts.Profiles, Audiences: opts.Audiences, MaxConcurrent: opts.MaxConcurrent, Machine: thisMachine()}
	res.Machine.DuckDB = buildinfo.Get().DuckDB

	base, genS, err := dataSet(ctx, opts.Dir, opts.Profiles, opts.Seed, opts.Audiences, log)
	if err != nil {
		return nil, err
	}
	res.GenS = genS
	runDir := filepath.Join(opts.Dir, "run-schedule")
	if err := os.RemoveAll(runDir); err != nil {
		return nil, err
	}
	if err := linkTree(base, runDir); err != nil {
		return nil, fmt.Errorf("laying out the workspace: %w", err)
	}
	ws, diags := dsl.Load(runDir, dsl.Options{})
	if diags.HasErrors() {
		return nil, fmt.Errorf("the generated workspace does not check:\n%s", diags.Error())
	}
	if ws.Warehouse.Settings == nil {
		ws.Warehouse.Settings = map[string]string{}
	}
	for k, v := range opts.DuckDB {
		ws.Warehouse.Settings[k] = v
	}
	names := make([]string, opts.Audiences)
	var every time.Duration
	for i := range names {
		names[i] = gen.AudienceName(i + 1)
		a := ws.Audience(names[i])
		if a == nil {
			return nil, fmt.Errorf("no audience %q in the generated workspace", names[i])
		}
		if a.Schedule.Kind != dsl.ScheduleEvery || (every != 0 && a.Schedule.Every != every) {
			return nil, fmt.Errorf("audience %s is scheduled %s: the benchmark needs one `every` interval for all", a.Name, a.Schedule)
		}
		every = a.Schedule.Every
		res.Schedule = a.Schedule.String()
	}

	rec := newRecorder(names, opts.Rounds, every)
	m := metrics.New()
	now := Anchor.Add(-time.Hour)
	e, err := engine.Open(ctx, ws, engine.Options{
		Logger: slog.New(warnOnly{log.Handler()}),
		// The cycles' clock stays by the data, so `within` windows find
		// the same members every run; the worker schedules on its own.
		Now:          func() time.Time { return now },
		Hooks:        []sinks.Hook{m, rec},
		CheckColumns: true,
		Warehouse:    executor.Options{MaxConns: opts.MaxConcurrent},
		MemoryLimit:  opts.MemoryLimit,
	})
	if err != nil {
		return nil, err
	}
	defer e.Close()
	res.Memory = e.Memory().String()
	e.Memory().ApplyGoLimit()
	for _, name := range names {
		if err := e.Store().Enable(name); err != nil {
			return nil, err
		}
	}
	stopProfile, err := startProfile(opts.Profile)
	if err != nil {
		return nil, err
	}
	defer stopProfile()

	// The worker's scheduling clock: the wall clock, plus the period the
	// steady round skips.
	var offset atomic.Int64
	rec.offset = &offset
	clock := func() time.Time { return time.Now().Add(time.Duration(offset.Load())) }

	runtime.GC() // generation's garbage is not the worker's
	peak := startPeaks(log)
	defer func() { peak.stop() }()
	cpu := processCPU()
	rec.start(time.Now())
	w, err := engine.NewWorker(e, engine.WorkerOptions{
		MaxConcurrent: opts.MaxConcurrent,
		Logger:        slog.New(warnOnly{log.Handler()}),
		Now:           clock,
	})
	if err != nil {
		return nil, err
	}
	// As linkaud worker wires its /metrics.
	m.Observe(e.Store(), w.Destinations)
	m.ObserveHistory(e.Store())
	wctx, stopWorker := context.WithCancel(ctx)
	runErr := make(chan error, 1)
	go func() { runErr <- w.Run(wctx) }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		stopWorker()
		return <-runErr
	}
	defer stop()

	for k := range opts.Rounds {
		if k == 1 {
			peak = startPeaks(log)
			cpu = processCPU()
			// Skip to the first due time of the round, so that each
			// audience falls due one interval after its first start.
			if skip := time.Until(rec.firstStart().Add(every)); skip > 0 {
				offset.Store(int64(skip))
			}
			w.Wake()
		}
		select {
		case <-rec.roundDone[k]:
		case err := <-runErr:
			stopped = true
			return nil, fmt.Errorf("the worker stopped during round %d: %v", k+1, err)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		r := rec.round(k, opts.MaxConcurrent)
		if r.WallS > 0 {
			r.CPUUtilization = (processCPU() - cpu).Seconds() / (r.WallS * float64(runtime.NumCPU()))
		}
		r.PeakRSSMB, r.GoHeapPeakMB = peak.stop()
		if err := stateFigures(e, ws.StateDir, names, k+1, &r); err != nil {
			return nil, err
		}
		if r.Metrics, err = scrape(m, opts.Audiences); err != nil {
			return nil, err
		}
		log.Info("bench round done", "round", r.Name, "cycles", r.Cycles, "wall_s", r.WallS, "cycles_per_min", r.CyclesPerMin)
		res.Rounds = append(res.Rounds, r)
	}
	if err := stop(); err != nil {
		return nil, fmt.Errorf("stopping the worker: %w", err)
	}
	return res, nil
}

// stateFigures reads the state's size and what it records of the
// audiences after round number round.
func stateFigures(e *engine.Engine, dir string, names []string, round int, r *RoundResult) error {
	size, err := dirSize(dir)
	if err != nil {
		return err
	}
	r.StateBytes = size
	r.StateTablesBytes = int64(e.Store().Metrics().Total().TablesSize)
	states, err := e.Store().Audiences()
	if err != nil {
		return err
	}
	ours := make(map[string]bool, len(names))
	for _, n := range names {
		ours[n] = true
	}
	for _, st := range states {
		if !ours[st.Name] {
			continue
		}
		r.StateRuns += st.Runs
		if st.Generation == uint64(round) {
			r.AtGeneration++
		}
	}
	return nil
}

// dirSize is what `du --apparent-size` says of dir: its files' sizes.
func dirSize(dir string) (int64, error) {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // removed meanwhile (an obsolete file)
			}
			return err
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n, err
}

// scrape serves /metrics from the worker's handler, as a Prometheus
// server would get it, and counts its series in the registry.
func scrape(m *metrics.Metrics, audiences int) (MetricsSize, error) {
	var out MetricsSize
	began := time.Now()
	rw := httptest.NewRecorder()
	m.Handler().ServeHTTP(rw, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out.ScrapeS = time.Since(began).Seconds()
	if rw.Code != http.StatusOK {
		return out, fmt.Errorf("/metrics answered %d: %s", rw.Code, rw.Body.String())
	}
	out.Bytes = rw.Body.Len()
	for line := range strings.Lines(rw.Body.String()) {
		if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
			out.Samples++
		}
	}
	fams, err := m.Registry().Gather()
	if err != nil {
		return out, err
	}
	for _, f := range fams {
		for _, s := range f.GetMetric() {
			n := seriesOf(f.GetType(), s)
			out.Series += n
			if slices.ContainsFunc(s.GetLabel(), func(l *dto.LabelPair) bool { return l.GetName() == "audience" }) {
				out.AudienceSeries += n
			}
		}
	}
	out.PerAudience = float64(out.AudienceSeries) / float64(audiences)
	return out, nil
}

// seriesOf is how many series one metric of a family of type t is in the
// text exposition.
func seriesOf(t dto.MetricType, m *dto.Metric) int {
	switch t {
	case dto.MetricType_HISTOGRAM, dto.MetricType_GAUGE_HISTOGRAM:
		b := m.GetHistogram().GetBucket()
		n := len(b) + 2 // _sum, _count
		if len(b) == 0 || !math.IsInf(b[len(b)-1].GetUpperBound(), 1) {
			n++ // the +Inf bucket the exposition adds
		}
		return n
	case dto.MetricType_SUMMARY:
		return len(m.GetSummary().GetQuantile()) + 2
	default:
		return 1
	}
}

// cycleTimes is one measured cycle, on the wall clock.
type cycleTimes struct {
	due, start, end time.Time
	took            time.Duration
	failed          bool
}

// recorder is the benchmark's hook on the worker: it times each
// audience's cycles, one per round, and says when a round is complete.
type recorder struct {
	rounds int
	every  time.Duration
	offset *atomic.Int64 // the worker clock's jump

	mu        sync.Mutex
	t0        time.Time // the worker's start: the first round's due time
	index     map[string]int
	cycles    [][]cycleTimes // per audience, one per round so far
	done      []int          // per round: audiences whose cycle finished
	sums      []RoundResult  // per round: rows, members, events
	roundDone []chan struct{}
}

var (
	_ engine.HookCycleStarted = (*recorder)(nil)
	_ engine.HookCycleDone    = (*recorder)(nil)
)

func newRecorder(names []string, rounds int, every time.Duration) *recorder {
	r := &recorder{rounds: rounds, every: every, index: make(map[string]int, len(names)),
		cycles: make([][]cycleTimes, len(names)), done: make([]int, rounds), sums: make([]RoundResult, rounds)}
	for i, n := range names {
		r.index[n] = i
	}
	for range rounds {
		r.roundDone = append(r.roundDone, make(chan struct{}))
	}
	return r
}

func (r *recorder) start(t time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t0 = t
}

// OnCycleStarted implements engine.HookCycleStarted.
func (r *recorder) OnCycleStarted(audience string, _ time.Duration) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[audience]
	if !ok || len(r.cycles[i]) >= r.rounds {
		return // beyond the rounds measured
	}
	due := r.t0
	if k := len(r.cycles[i]); k > 0 {
		// The worker plans the next run one interval after the last
		// start on its clock, which ran ahead by the offset since.
		due = r.cycles[i][k-1].start.Add(r.every - time.Duration(r.offset.Load()))
	}
	r.cycles[i] = append(r.cycles[i], cycleTimes{due: due, start: now})
}

// OnCycleDone implements engine.HookCycleDone.
func (r *recorder) OnCycleDone(rep engine.CycleReport) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[rep.Audience.Name]
	if !ok || len(r.cycles[i]) == 0 {
		return
	}
	k := len(r.cycles[i]) - 1
	c := &r.cycles[i][k]
	if !c.end.IsZero() {
		return // a cycle beyond the rounds measured
	}
	c.end, c.took, c.failed = now, rep.Took, rep.Err != nil
	if res := rep.Result; res != nil {
		r.sums[k].Rows += res.RowsRead
		r.sums[k].Members += res.Members
		r.sums[k].Events += res.Events
	}
	r.done[k]++
	if r.done[k] == len(r.cycles) {
		close(r.roundDone[k])
	}
}

// firstStart is when the first cycle of the first round started.
func (r *recorder) firstStart() time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	var first time.Time
	for _, cs := range r.cycles {
		if len(cs) > 0 && (first.IsZero() || cs[0].start.Before(first)) {
			first = cs[0].start
		}
	}
	return first
}

// round computes the figures of round k (complete) from the cycle times.
func (r *recorder) round(k, slots int) RoundResult {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.sums[k]
	out.Name = map[int]string{0: "first", 1: "steady"}[k]
	from, to := r.t0, time.Time{}
	if k > 0 {
		from = time.Time{}
	}
	var took, delays, finish []float64
	var busy time.Duration
	for _, cs := range r.cycles {
		c := cs[k]
		out.Cycles++
		if c.failed {
			out.Failures++
		}
		if from.IsZero() || c.due.Before(from) {
			from = c.due
		}
		if c.end.After(to) {
			to = c.end
		}
		took = append(took, c.took.Seconds())
		delays = append(delays, max(c.start.Sub(c.due), 0).Seconds())
		f := c.end.Sub(c.due)
		finish = append(finish, f.Seconds())
		if f <= r.every {
			out.MetSchedule++
		} else {
			out.MissedSchedule++
		}
		busy += c.end.Sub(c.start)
	}
	wall := to.Sub(from)
	out.WallS = wall.Seconds()
	if wall > 0 {
		out.CyclesPerMin = float64(out.Cycles) / wall.Minutes()
		capacity := float64(slots) * wall.Seconds()
		out.IdleSlotS = r.idleSlots(k, slots, from, to).Seconds()
		out.SchedulerOverhead = out.IdleSlotS / capacity
		out.SlotUtilization = busy.Seconds() / capacity
	}
	out.CycleS, out.StartDelayS = spread(took), spread(delays)
	out.LatestFinishS = spread(finish).Max
	return out
}

// idleSlots is the slot-time within [from, to] in which a run of round k
// was due and not started while fewer than slots cycles (of any round)
// ran: a free slot and work waiting for it. Called with r.mu held.
func (r *recorder) idleSlots(k, slots int, from, to time.Time) time.Duration {
	type event struct {
		at             time.Time
		queued, active int
	}
	var evs []event
	for _, cs := range r.cycles {
		for j, c := range cs {
			end := c.end
			if end.IsZero() {
				end = to // a later round's cycle still running
			}
			evs = append(evs, event{c.start, 0, 1}, event{end, 0, -1})
			if j == k {
				evs = append(evs, event{c.due, 1, 0}, event{c.start, -1, 0})
			}
		}
	}
	slices.SortStableFunc(evs, func(a, b event) int { return a.at.Compare(b.at) })
	var idle time.Duration
	queued, active, prev := 0, 0, from
	for _, ev := range evs {
		at := ev.at
		if at.Before(from) {
			at = from
		} else if at.After(to) {
			at = to
		}
		if free := min(queued, slots-active); free > 0 && at.After(prev) {
			idle += time.Duration(free) * at.Sub(prev)
		}
		if at.After(prev) {
			prev = at
		}
		queued += ev.queued
		active += ev.active
	}
	return idle
}

// spread is the median, p99 (nearest rank) and maximum of xs.
func spread(xs []float64) Spread {
	if len(xs) == 0 {
		return Spread{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	p99 := s[int(math.Ceil(0.99*float64(len(s))))-1]
	return Spread{Median: median(s), P99: p99, Max: s[len(s)-1]}
}
