package faults

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/metrics"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/web"
)

// TestRevokedCredentialHaltsThenResumes: a worker delivers to a receiver
// that refuses the credential — 401 for many passes, then 403 — and then
// accepts it again. While refused, the destination is halted: GET
// /destinations says so with the reason, /healthz is degraded,
// linkaud_destination_halted is 1, nothing is dead-lettered and the whole
// outbox waits. Once the credential works the worker resumes by itself:
// the receiver holds the outbox exactly, in per-profile order, the gauge
// is 0 and the destination healthy.
func TestRevokedCredentialHaltsThenResumes(t *testing.T) {
	h := startHook(t, "")
	h.mu.Lock()
	h.refuse = http.StatusUnauthorized
	h.mu.Unlock()
	m := metrics.New()
	opts := hookOptions()
	opts.Hooks = []sinks.Hook{m}
	e, outbox := deliveryRig(t, hookDest(h.url()), opts)
	if err := e.Store().Disable(audience); err != nil { // deliveries only
		t.Fatal(err)
	}
	w, err := engine.NewWorker(e, engine.WorkerOptions{DeliverInterval: 20 * time.Millisecond, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(e.Store(), w.Destinations)
	srv := httptest.NewServer(web.New(w, web.Options{Metrics: m.Handler(), Logger: quietLogger()}))
	defer srv.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	get := func(path string) string {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	dest := func() web.Destination {
		var ds []web.Destination
		if err := json.Unmarshal([]byte(get("/destinations")), &ds); err != nil || len(ds) != 1 {
			t.Fatalf("/destinations: %v %v", ds, err)
		}
		return ds[0]
	}
	waitRequests := func(n int) {
		deadline := time.Now().Add(20 * time.Second)
		for {
			h.mu.Lock()
			got := h.requests
			h.mu.Unlock()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("only %d requests after 20s", got)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	refused := func(code int, passes int) {
		h.mu.Lock()
		h.refuse = code
		start := h.requests
		h.mu.Unlock()
		waitRequests(start + passes)
		d := dest()
		if d.Healthy || !strings.Contains(d.Reason, "refused the credential") || d.Since == nil || d.Backlog != int64(len(outbox)) {
			t.Fatalf("/destinations while refused with %d: %+v", code, d)
		}
		if hz := get("/healthz"); !strings.Contains(hz, `"degraded"`) || !strings.Contains(hz, `"halted_destinations"`) {
			t.Errorf("/healthz while halted: %s", hz)
		}
		if mt := get("/metrics"); !strings.Contains(mt, `linkaud_destination_halted{destination="out"} 1`) || !strings.Contains(mt, `linkaud_dead_letters{destination="out"} 0`) {
			t.Errorf("/metrics while halted lacks the gauge at 1 or shows dead letters")
		}
	}
	refused(http.StatusUnauthorized, 25)
	refused(http.StatusForbidden, 25)
	if dls, err := e.Store().DeadLetters(dest().Name); err != nil || len(dls) != 0 {
		t.Fatalf("%d dead letters (%v) while halted", len(dls), err)
	}
	h.mu.Lock()
	h.refuse = 0
	passes := h.requests
	h.mu.Unlock()

	deadline := time.Now().Add(20 * time.Second)
	for d := dest(); !d.Healthy || d.Backlog != 0; d = dest() {
		if time.Now().After(deadline) {
			t.Fatalf("not resumed after 20s: %+v", d)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if mt := get("/metrics"); !strings.Contains(mt, `linkaud_destination_halted{destination="out"} 0`) {
		t.Errorf("/metrics after recovery: the gauge is not 0")
	}
	if dls, err := e.Store().DeadLetters("out"); err != nil || len(dls) != 0 {
		t.Fatalf("%d dead letters (%v)", len(dls), err)
	}
	if dups := checkArrived(t, outbox, h.received()); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
	t.Logf("%d refused requests (401 then 403, one per pass), then %d events delivered, 0 dead-lettered", passes, len(outbox))
}
