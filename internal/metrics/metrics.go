package metrics

import (
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/buildinfo"
	"github.com/linkaud/linkaud/sinks"
)

const ns = "linkaud"

// Metrics holds the worker's metrics in its own registry (with the Go and
// process collectors), so nothing global leaks in.
type Metrics struct {
	reg *prometheus.Registry

	cycles       *prometheus.CounterVec
	cycleSteps   *prometheus.HistogramVec
	lastSteps    *prometheus.GaugeVec
	queueWait    prometheus.Histogram
	running      prometheus.Gauge
	runningPeak  prometheus.Gauge
	queued       prometheus.Gauge
	delayed      prometheus.Counter
	members      *prometheus.GaugeVec
	rows         *prometheus.GaugeVec
	rowsRead     *prometheus.CounterVec
	lastSuccess  *prometheus.GaugeVec
	emitted      *prometheus.CounterVec
	oversize     *prometheus.CounterVec
	delivered    *prometheus.CounterVec
	dropped      *prometheus.CounterVec
	deadLettered *prometheus.CounterVec
	deliveryErrs *prometheus.CounterVec
	deliveryTime *prometheus.HistogramVec
	reloads      *prometheus.CounterVec
	halted       *prometheus.GaugeVec
	alerts       *prometheus.CounterVec

	mu   sync.Mutex
	peak int

	// names are the full names of the metrics registered, for Names.
	names []string
}

// New returns the metrics, registered.
func New() *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	f := factory{m.reg, &m.names}
	m.cycles = f.counterVec("cycles_total", "Compute cycles run by the worker, by audience and result (ok, failed).", "audience", "result")
	// The distribution is over every audience (12 series per step); per
	// audience only the last cycle's figures: a histogram per audience was
	// 36 of the 41 series an audience cost, which at 1,000 audiences made
	// /metrics 3.3 MB for what no dashboard plots.
	m.cycleSteps = f.histogramVec("cycle_step_duration_seconds",
		"Duration of compute cycles' steps, over every audience: query (waiting for the warehouse), diff (merge and commit), total.",
		prometheus.ExponentialBuckets(0.01, 4, 9), "step")
	m.lastSteps = f.gaugeVec("audience_last_cycle_duration_seconds",
		"Duration of the steps of the audience's last cycle: query, diff, total (total also for a failed cycle).", "audience", "step")
	m.queueWait = f.histogram("cycle_queue_wait_seconds",
		"How long a due run waited for a free slot (the --max-concurrent limit); 0 when one was free.", prometheus.ExponentialBuckets(0.001, 4, 10))
	m.running = f.gauge("cycles_running", "Compute cycles running now.")
	m.runningPeak = f.gauge("cycles_running_peak", "The most compute cycles that ran at once since the worker started.")
	m.queued = f.gauge("cycles_queued", "Due runs waiting for a free slot.")
	m.delayed = f.counter("cycles_delayed_total", "Runs that had to wait in the queue because every slot was busy.")
	m.members = f.gaugeVec("audience_members", "Profiles in the audience's current generation.", "audience")
	m.rows = f.gaugeVec("audience_rows", "(profile, entity chain) rows in the audience's current generation.", "audience")
	m.rowsRead = f.counterVec("audience_rows_read_total", "Result rows read from the warehouse.", "audience")
	m.lastSuccess = f.gaugeVec("audience_last_success_timestamp_seconds", "Unix time of the end of the audience's last successful cycle.", "audience")
	m.emitted = f.counterVec("events_emitted_total", "Events written to the outbox by cycles, by destination and event.", "destination", "event")
	m.oversize = f.counterVec("events_oversize_total", "Events over the size cap, not written to the outbox, by audience.", "audience")
	m.delivered = f.counterVec("events_delivered_total", "Events acknowledged by their destination, by destination and event.", "destination", "event")
	m.dropped = f.counterVec("events_dropped_total", "Events dropped at delivery for their size.", "destination")
	m.deadLettered = f.counterVec("events_dead_lettered_total", "Events a destination rejected permanently, moved to the dead-letter store.", "destination")
	m.deliveryErrs = f.counterVec("delivery_errors_total",
		"Delivery errors by destination and kind: retried (a failed send retried), throttled (the destination asked to slow down), failed (a pass that stopped with messages left), halted (a pass stopped by a halted destination).",
		"destination", "kind")
	m.deliveryTime = f.histogramVec("delivery_duration_seconds", "Duration of a delivery pass of a destination's outbox.",
		prometheus.ExponentialBuckets(0.001, 4, 10), "destination")
	m.reloads = f.counterVec("reloads_total", "Workspace reloads, by result (ok, rejected).", "result")
	m.halted = f.gaugeVec("destination_halted",
		"1 while the destination is halted (it refused the credential, does not know the account or region, or its topic is missing): nothing is dead-lettered and its events wait in the outbox; 0 once a delivery pass went through.",
		"destination")
	m.alerts = f.counterVec("drift_alerts_total", "Drift alerts fired by runs (an audience's alert clauses), by audience and alert.", "audience", "alert")
	bi := buildinfo.Get()
	f.gaugeVec("build_info", "Always 1; the labels say which linkaud runs: version, revision (commit), build time, Go and DuckDB versions.",
		"version", "revision", "build_time", "goversion", "duckdb_version").
		WithLabelValues(bi.Version, bi.Commit, bi.BuildTime, bi.Go, bi.DuckDB).Set(1)
	m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

type factory struct {
	reg   *prometheus.Registry
	names *[]string
}

func (f factory) name(n string) string {
	*f.names = append(*f.names, ns+"_"+n)
	return n
}

func (f factory) counter(name, help string) prometheus.Counter {
	name = f.name(name)
	c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help})
	f.reg.MustRegister(c)
	return c
}

func (f factory) counterVec(name, help string, labels ...string) *prometheus.CounterVec {
	name = f.name(name)
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.reg.MustRegister(c)
	return c
}

func (f factory) gauge(name, help string) prometheus.Gauge {
	name = f.name(name)
	g := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help})
	f.reg.MustRegister(g)
	return g
}

func (f factory) gaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	name = f.name(name)
	g := prometheus.NewGaugeVec(prometheus.GaugeOpts{Namespace: ns, Name: name, Help: help}, labels)
	f.reg.MustRegister(g)
	return g
}

func (f factory) histogram(name, help string, buckets []float64) prometheus.Histogram {
	name = f.name(name)
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets})
	f.reg.MustRegister(h)
	return h
}

func (f factory) histogramVec(name, help string, buckets []float64, labels ...string) *prometheus.HistogramVec {
	name = f.name(name)
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: name, Help: help, Buckets: buckets}, labels)
	f.reg.MustRegister(h)
	return h
}

// Names lists the linkaud_ metrics registered, those Observe adds
// included, whether or not they have a series yet (the docs test compares
// them with docs/worker.md).
func (m *Metrics) Names() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.names...)
}

// Registry is where the metrics are registered; tests gather from it.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the metrics in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg})
}

// Hooks.
var (
	_ engine.HookCycleStarted = (*Metrics)(nil)
	_ engine.HookCycleDone    = (*Metrics)(nil)
	_ engine.HookQueue        = (*Metrics)(nil)
	_ engine.HookDeliverPass  = (*Metrics)(nil)
	_ engine.HookReload       = (*Metrics)(nil)
	_ sinks.HookDelivered     = (*Metrics)(nil)
	_ sinks.HookDropped       = (*Metrics)(nil)
	_ sinks.HookRetried       = (*Metrics)(nil)
	_ sinks.HookThrottled     = (*Metrics)(nil)
	_ sinks.HookDeadLettered  = (*Metrics)(nil)
)

// OnCycleStarted implements engine.HookCycleStarted.
func (m *Metrics) OnCycleStarted(_ string, waited time.Duration) {
	m.queueWait.Observe(waited.Seconds())
	if waited > 0 {
		m.delayed.Inc()
	}
}

// OnQueue implements engine.HookQueue.
func (m *Metrics) OnQueue(running, queued int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.running.Set(float64(running))
	m.queued.Set(float64(queued))
	if running > m.peak {
		m.peak = running
		m.runningPeak.Set(float64(running))
	}
}

// OnCycleDone implements engine.HookCycleDone. cycles_total moves last, so
// a scraper that saw it move sees the rest of the cycle's figures too.
func (m *Metrics) OnCycleDone(r engine.CycleReport) {
	aud := r.Audience.Name
	m.cycleSteps.WithLabelValues("total").Observe(r.Took.Seconds())
	m.lastSteps.WithLabelValues(aud, "total").Set(r.Took.Seconds())
	if r.Err != nil || r.Result == nil {
		m.cycles.WithLabelValues(aud, "failed").Inc()
		return
	}
	res := r.Result
	m.cycleSteps.WithLabelValues("query").Observe(res.Query.Seconds())
	m.cycleSteps.WithLabelValues("diff").Observe(res.Diff.Seconds())
	m.lastSteps.WithLabelValues(aud, "query").Set(res.Query.Seconds())
	m.lastSteps.WithLabelValues(aud, "diff").Set(res.Diff.Seconds())
	m.members.WithLabelValues(aud).Set(float64(res.Members))
	m.rows.WithLabelValues(aud).Set(float64(res.Rows))
	m.rowsRead.WithLabelValues(aud).Add(float64(res.RowsRead))
	m.lastSuccess.WithLabelValues(aud).SetToCurrentTime()
	for _, a := range res.Alerts {
		m.alerts.WithLabelValues(aud, a.Alert).Inc()
	}
	if res.Oversize > 0 {
		m.oversize.WithLabelValues(aud).Add(float64(res.Oversize))
	}
	for _, act := range r.Activations {
		if n := res.Activations[act.Name]; n > 0 {
			m.emitted.WithLabelValues(act.Destination.Name, act.Event.EventName()).Add(float64(n))
		}
	}
	m.cycles.WithLabelValues(aud, "ok").Inc()
}

// OnDeliverPass implements engine.HookDeliverPass.
func (m *Metrics) OnDeliverPass(dest string, _ sinks.Stats, err error, took time.Duration) {
	m.deliveryTime.WithLabelValues(dest).Observe(took.Seconds())
	switch {
	case errors.Is(err, sinks.ErrHalted):
		m.halted.WithLabelValues(dest).Set(1)
		m.deliveryErrs.WithLabelValues(dest, "halted").Inc()
	case err != nil:
		m.deliveryErrs.WithLabelValues(dest, "failed").Inc()
	default:
		m.halted.WithLabelValues(dest).Set(0)
	}
}

// OnReload implements engine.HookReload.
func (m *Metrics) OnReload(ok bool) {
	if ok {
		m.reloads.WithLabelValues("ok").Inc()
	} else {
		m.reloads.WithLabelValues("rejected").Inc()
	}
}

// OnDelivered implements sinks.HookDelivered.
func (m *Metrics) OnDelivered(dest string, msgs []diff.Message) {
	for _, msg := range msgs {
		m.delivered.WithLabelValues(dest, msg.Event).Inc()
	}
}

// OnDropped implements sinks.HookDropped.
func (m *Metrics) OnDropped(dest string, _ diff.Message, _ int) {
	m.dropped.WithLabelValues(dest).Inc()
}

// OnRetried implements sinks.HookRetried.
func (m *Metrics) OnRetried(dest string, _ []diff.Message, _ int, _ time.Duration, _ error) {
	m.deliveryErrs.WithLabelValues(dest, "retried").Inc()
}

// OnThrottled implements sinks.HookThrottled.
func (m *Metrics) OnThrottled(dest string, _ []diff.Message, _ time.Duration) {
	m.deliveryErrs.WithLabelValues(dest, "throttled").Inc()
}

// OnDeadLettered implements sinks.HookDeadLettered.
func (m *Metrics) OnDeadLettered(dest string, msgs []diff.Message, _ string) {
	m.deadLettered.WithLabelValues(dest).Add(float64(len(msgs)))
}

// State is the part of *diff.Store the scrape-time gauges read.
type State interface {
	Backlogs() (map[string]int64, error)
	DeadLetters(dest string) ([]diff.DeadLetter, error)
}

// Observe adds gauges read from st at every scrape: the outbox backlog and
// the dead letters per destination. destinations lists the workspace's
// destinations, reported at 0 when they have none, so a series exists
// before its first event.
func (m *Metrics) Observe(st State, destinations func() []string) {
	m.reg.MustRegister(&stateCollector{st: st, dests: destinations})
	m.mu.Lock()
	m.names = append(m.names, ns+"_outbox_backlog", ns+"_dead_letters", ns+"_state_scrape_errors_total")
	m.mu.Unlock()
}

var (
	backlogDesc = prometheus.NewDesc(ns+"_outbox_backlog", "Events in the outbox waiting for delivery, by destination.", []string{"destination"}, nil)
	deadDesc    = prometheus.NewDesc(ns+"_dead_letters", "Events in the dead-letter store, by destination.", []string{"destination"}, nil)
	scrapeDesc  = prometheus.NewDesc(ns+"_state_scrape_errors_total", "Errors reading the state for the outbox gauges (the gauges are then missing).", nil, nil)
)

type stateCollector struct {
	st     State
	dests  func() []string
	mu     sync.Mutex
	errors float64
}

func (c *stateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- backlogDesc
	ch <- deadDesc
	ch <- scrapeDesc
}

func (c *stateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	backlog, err := c.st.Backlogs()
	var dead []diff.DeadLetter
	if err == nil {
		dead, err = c.st.DeadLetters("")
	}
	if err != nil {
		// A closed store during shutdown, or a read error: no gauges
		// rather than wrong ones.
		c.errors++
		ch <- prometheus.MustNewConstMetric(scrapeDesc, prometheus.CounterValue, c.errors)
		return
	}
	ch <- prometheus.MustNewConstMetric(scrapeDesc, prometheus.CounterValue, c.errors)
	deadBy := map[string]int64{}
	for _, d := range dead {
		deadBy[d.Destination]++
	}
	if c.dests != nil {
		for _, d := range c.dests() {
			if _, ok := backlog[d]; !ok {
				backlog[d] = 0
			}
			if _, ok := deadBy[d]; !ok {
				deadBy[d] = 0
			}
		}
	}
	for d, n := range backlog {
		ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(n), d)
	}
	for d, n := range deadBy {
		ch <- prometheus.MustNewConstMetric(deadDesc, prometheus.GaugeValue, float64(n), d)
	}
}
