package engine

import (
	"context"
	"errors"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
)

// deliverer is the delivery loop of one destination: a pass whenever a
// cycle wrote events for it, and every DeliverInterval while it has a
// backlog (a failed pass leaves its messages in the outbox, so this is
// also the retry). One loop per destination keeps a slow destination from
// holding up the others.
type deliverer struct {
	name  string
	kick  chan struct{} // cap 1
	flush chan struct{} // closed: one last pass, then return
	quit  chan struct{} // closed: return without a pass
	done  chan struct{} // closed when the loop returned
	once  struct{ flush, quit bool }
}

func (d *deliverer) kickNow() {
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// syncDestinations starts a loop for each destination of ws that has none
// and stops the loops of destinations ws no longer has (their outbox stays
// until a workspace names them again). Called with w.mu held.
func (w *Worker) syncDestinations(ws *dsl.Workspace) {
	for name, d := range w.dests {
		if ws.Destination(name) == nil {
			if !d.once.quit {
				d.once.quit = true
				close(d.quit)
			}
			delete(w.dests, name)
			if n, _ := w.e.Store().Backlog(name); n > 0 {
				w.log.Warn("destination removed from the workspace with events still in its outbox", "destination", name, "backlog", n)
			}
		}
	}
	for _, def := range ws.Destinations {
		if w.dests[def.Name] != nil {
			continue
		}
		d := &deliverer{
			name:  def.Name,
			kick:  make(chan struct{}, 1),
			flush: make(chan struct{}),
			quit:  make(chan struct{}),
			done:  make(chan struct{}),
		}
		w.dests[def.Name] = d
		d.kickNow() // a backlog left by an earlier process goes first
		go w.deliverLoop(d)
	}
}

// flushAndStop asks for a last pass and the loop's end. Called with w.mu
// held.
func (d *deliverer) flushAndStop() {
	if !d.once.flush && !d.once.quit {
		d.once.flush = true
		close(d.flush)
	}
}

func (w *Worker) deliverLoop(d *deliverer) {
	defer close(d.done)
	t := time.NewTicker(w.opts.DeliverInterval)
	defer t.Stop()
	for {
		select {
		case <-w.deliverCtx.Done():
			return
		case <-d.quit:
			return
		case <-d.flush:
			w.deliverPass(d.name)
			return
		case <-d.kick:
		case <-t.C:
		}
		w.deliverPass(d.name)
	}
}

// deliverPass delivers dest's outbox, if it has anything in it.
func (w *Worker) deliverPass(dest string) {
	ctx := w.deliverCtx
	if ctx.Err() != nil {
		return
	}
	n, err := w.e.Store().Backlog(dest)
	if err != nil {
		w.log.Error("reading the outbox backlog", "destination", dest, "error", err)
		w.refuse(err)
		return
	}
	if n == 0 {
		return
	}
	began := time.Now()
	count := &deliveryCount{n: map[string]int64{}}
	st, err := w.e.deliver(ctx, dest, []sinks.Hook{count})
	w.refuse(err)
	took := time.Since(began)
	w.recordDelivery(count, took)
	for _, h := range hooksOf[HookDeliverPass](w.e.opts.Hooks) {
		h.OnDeliverPass(dest, st, err, took)
	}
	switch {
	case err == nil:
		w.log.Info("delivered", "destination", dest, "delivered", st.Delivered, "dropped", st.Dropped,
			"dead_lettered", st.DeadLettered, "retries", st.Retries, "took", took.Round(time.Millisecond).String())
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		w.log.Warn("delivery cancelled by the stop; the rest stays in the outbox", "destination", dest, "delivered", st.Delivered)
	default:
		w.log.Warn("delivery incomplete; retrying later", "destination", dest, "delivered", st.Delivered,
			"left", st.Left, "retry_in", w.opts.DeliverInterval.String(), "error", err)
	}
}

// recordDelivery adds a pass's deliveries to the run records: each
// audience's delivered events are credited to its latest run that wrote
// events (earlier runs' backlog included, as `linkaud run` does).
func (w *Worker) recordDelivery(c *deliveryCount, took time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for aud, n := range c.n {
		w.mu.Lock()
		run := w.eventRun[aud]
		w.mu.Unlock()
		if run == 0 {
			continue
		}
		if err := w.e.Store().RecordDelivery(aud, run, n, took); err != nil {
			w.log.Warn("recording delivery figures in the run history", "audience", aud, "run", run, "error", err)
		}
	}
}
