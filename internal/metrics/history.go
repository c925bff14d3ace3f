package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/linkaud/linkaud/diff"
)

// History is the part of *diff.Store the size-history gauges read.
type History interface {
	Audiences() ([]diff.AudienceState, error)
	History(aud string) ([]diff.HistoryPoint, error)
}

// ObserveHistory adds, read from st at every scrape, each audience's size
// history: its latest point as linkaud_audience_history_members stamped
// with that run's start (so a scraper that missed runs, or a worker just
// restarted, still records the size at the time it was), and the points
// kept.
func (m *Metrics) ObserveHistory(st History) {
	m.reg.MustRegister(&historyCollector{st: st})
	m.mu.Lock()
	m.names = append(m.names, ns+"_audience_history_members", ns+"_audience_history_points")
	m.mu.Unlock()
}

var (
	historyMembersDesc = prometheus.NewDesc(ns+"_audience_history_members",
		"Members after the audience's latest run in its size history, timestamped with the run's start.", []string{"audience"}, nil)
	historyPointsDesc = prometheus.NewDesc(ns+"_audience_history_points",
		"Points kept in the audience's size history (one per run, one per day beyond the newest 1,000 runs).", []string{"audience"}, nil)
)

type historyCollector struct {
	st History
	mu sync.Mutex
}

func (c *historyCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- historyMembersDesc
	ch <- historyPointsDesc
}

func (c *historyCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	auds, err := c.st.Audiences()
	if err != nil {
		return // the state collector counts scrape errors
	}
	for _, a := range auds {
		pts, err := c.st.History(a.Name)
		if err != nil || len(pts) == 0 {
			continue
		}
		last := pts[len(pts)-1]
		ch <- prometheus.NewMetricWithTimestamp(last.Start,
			prometheus.MustNewConstMetric(historyMembersDesc, prometheus.GaugeValue, float64(last.Members), a.Name))
		ch <- prometheus.MustNewConstMetric(historyPointsDesc, prometheus.GaugeValue, float64(len(pts)), a.Name)
	}
}
