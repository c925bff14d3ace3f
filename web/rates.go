package web

import (
	"sync"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
)

// RateWindow is the span the deliveries page's rates are measured over.
const RateWindow = 5 * time.Minute

// Rates measures, per destination, the events delivered and the failed
// delivery passes of the last RateWindow, for the deliveries page. Pass it
// to engine.Options.Hooks (it is a sinks.HookDelivered and an
// engine.HookDeliverPass) and to Options.Rates.
type Rates struct {
	mu  sync.Mutex
	now func() time.Time
	by  map[string]*rateSeries
}

type rateSeries struct {
	// per-second buckets over the window, as (second, count).
	delivered []bucket
	failed    []bucket
}

type bucket struct {
	sec int64
	n   int64
}

// RateFigures are a destination's figures over the window.
type RateFigures struct {
	// PerMinute is events delivered per minute.
	PerMinute float64
	// Delivered and Errors count events and failed passes.
	Delivered, Errors int64
}

var (
	_ sinks.HookDelivered    = (*Rates)(nil)
	_ engine.HookDeliverPass = (*Rates)(nil)
)

// NewRates returns an empty Rates.
func NewRates() *Rates { return &Rates{now: time.Now, by: map[string]*rateSeries{}} }

func (r *Rates) series(dest string) *rateSeries {
	s := r.by[dest]
	if s == nil {
		s = &rateSeries{}
		r.by[dest] = s
	}
	return s
}

func add(bs []bucket, sec, n, horizon int64) []bucket {
	if k := len(bs); k > 0 && bs[k-1].sec == sec {
		bs[k-1].n += n
	} else {
		bs = append(bs, bucket{sec, n})
	}
	i := 0
	for i < len(bs) && bs[i].sec <= sec-horizon {
		i++
	}
	return bs[i:]
}

func total(bs []bucket, sec, horizon int64) int64 {
	var n int64
	for _, b := range bs {
		if b.sec > sec-horizon {
			n += b.n
		}
	}
	return n
}

// OnDelivered implements sinks.HookDelivered.
func (r *Rates) OnDelivered(dest string, msgs []diff.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series(dest)
	s.delivered = add(s.delivered, r.now().Unix(), int64(len(msgs)), int64(RateWindow/time.Second))
}

// OnDeliverPass implements engine.HookDeliverPass.
func (r *Rates) OnDeliverPass(dest string, _ sinks.Stats, err error, _ time.Duration) {
	if err == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.series(dest)
	s.failed = add(s.failed, r.now().Unix(), 1, int64(RateWindow/time.Second))
}

// Figures returns dest's figures over the last RateWindow.
func (r *Rates) Figures(dest string) RateFigures {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.by[dest]
	if s == nil {
		return RateFigures{}
	}
	now, h := r.now().Unix(), int64(RateWindow/time.Second)
	f := RateFigures{Delivered: total(s.delivered, now, h), Errors: total(s.failed, now, h)}
	f.PerMinute = float64(f.Delivered) / RateWindow.Minutes()
	return f
}
