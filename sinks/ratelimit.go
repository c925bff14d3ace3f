package sinks

import (
	"context"
	"math"
	"slices"
	"sync"

	"golang.org/x/time/rate"

	"github.com/linkaud/linkaud/diff"
)

// RateLimiter limits events per second per audience, as Segment limits
// Linked Audiences (500 events/s per audience). It is safe for concurrent
// use; the worker keeps one per destination so the limit holds across
// delivery calls.
type RateLimiter struct {
	perSecond float64
	burst     int

	mu   sync.Mutex
	byAu map[string]*rate.Limiter
}

// NewRateLimiter returns a limiter of perSecond events per second per
// audience, with a burst of one second's worth. Unlimited (or a negative
// rate) disables limiting.
func NewRateLimiter(perSecond float64) *RateLimiter {
	if perSecond < 0 || math.IsInf(perSecond, 1) {
		return &RateLimiter{perSecond: math.Inf(1)}
	}
	return &RateLimiter{
		perSecond: perSecond,
		burst:     max(1, int(math.Ceil(perSecond))),
		byAu:      map[string]*rate.Limiter{},
	}
}

// Wait blocks until every audience in batch may send its share of the batch.
func (l *RateLimiter) Wait(ctx context.Context, batch []diff.Message) error {
	if l == nil || math.IsInf(l.perSecond, 1) {
		return nil
	}
	counts := map[string]int{}
	for _, m := range batch {
		counts[m.Audience]++
	}
	auds := make([]string, 0, len(counts))
	for a := range counts {
		auds = append(auds, a)
	}
	slices.Sort(auds)
	for _, a := range auds {
		lim := l.limiter(a)
		for n := counts[a]; n > 0; {
			k := min(n, l.burst)
			if err := lim.WaitN(ctx, k); err != nil {
				if ctx.Err() != nil {
					return ctx.Err()
				}
				return err
			}
			n -= k
		}
	}
	return nil
}

func (l *RateLimiter) limiter(audience string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.byAu[audience]
	if !ok {
		lim = rate.NewLimiter(rate.Limit(l.perSecond), l.burst)
		l.byAu[audience] = lim
	}
	return lim
}
