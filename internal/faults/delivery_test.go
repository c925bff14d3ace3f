package faults

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

const topic = "linked-audiences"

// deliveryRig computes generations 1 and 2 of a 300-profile workspace
// whose destination is dst, leaving their events in the outbox, and
// returns the engine and the outbox as it stands (what must arrive).
func deliveryRig(t *testing.T, dst string, opts engine.Options) (*engine.Engine, []diff.Message) {
	t.Helper()
	f := fixture{profiles: 300, destination: dst}
	_, want2 := cleanRun(t, f, engine.Options{})
	dir := f.write(t)
	clk := &clock{}
	e := open(t, load(t, dir), clk, opts)
	t.Cleanup(func() { e.Close() })
	mustCompute(t, e, clk, start1)
	f.writeData(t, dir, f.data(2))
	mustCompute(t, e, clk, start2)
	if d := diffSnapshots(take(t, e.Store()), want2); d != "" {
		t.Fatal(d)
	}
	outbox := pending(t, e.Store())
	if len(outbox) < 500 {
		t.Fatalf("only %d events to deliver", len(outbox))
	}
	return e, outbox
}

// checkArrived verifies that what arrived (messageIds in arrival order,
// per profile where the destination orders per profile) is the outbox
// exactly: every message at least once, nothing else, per-profile order
// kept, and returns the duplicates.
func checkArrived(t *testing.T, outbox []diff.Message, arrived []string) int {
	t.Helper()
	dups := sinktest.CheckReceived(t, outbox, arrived, outbox)
	if t.Failed() {
		t.FailNow()
	}
	return dups
}

// ---- Kafka ----

func startBroker(t testing.TB) *sinktest.Broker { return sinktest.StartBroker(t, topic) }

// crashAt makes the broker crash at its k-th produce request: the whole
// broker stops, either before handling the request (the connection closes
// under it) or right after handling it (the records are stored, the answer
// may be lost, as when a broker dies between its write and its reply). The
// delivery loop's first retry then starts it again on the same address
// with the same data, like a restarted Kafka. Delivery pipelines batches
// (many in flight at once), so the crash is keyed on the broker's requests
// rather than on acknowledgements.
type crashAt struct {
	b       *sinktest.Broker
	k       int
	handled bool // crash after handling the request rather than before

	mu        sync.Mutex
	produces  int
	crashed   bool
	restarted bool
	retries   int
}

func (c *crashAt) arm() {
	cl := c.b.Cluster()
	cl.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		cl.KeepControl()
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.produces++; c.produces != c.k || c.crashed {
			return nil, nil, false
		}
		c.crashed = true
		// Close waits for the control function: stop from elsewhere.
		go c.b.Stop()
		if c.handled {
			return nil, nil, false
		}
		return nil, errors.New("injected broker crash"), true
	})
}

func (c *crashAt) OnRetried(string, []diff.Message, int, time.Duration, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.retries++
	if c.crashed && !c.restarted {
		c.restarted = true
		c.b.Start()
	}
}

var _ sinks.HookRetried = (*crashAt)(nil)

// TestKafkaBrokerCrashMidDelivery crashes the broker at a produce request
// of engine.Deliver, before or after handling it (after: its answer may
// still reach the client, and then only the restart shows that what it
// stored survived), and starts it again on the same address: every message of the outbox is in the topic, each
// record keyed by its profile with the outbox payload and headers,
// per-profile order kept; read_committed consumers of a transactional
// destination see each exactly once.
func TestKafkaBrokerCrashMidDelivery(t *testing.T) {
	for _, tc := range []struct {
		transactional, handled bool
		k                      int
	}{
		// Without transactions all batches are in flight at once: one
		// produce request carries them.
		{false, false, 1},
		{false, true, 1},
		// With them, each batch is a transaction: crash in the second.
		{true, false, 2},
		{true, true, 2},
	} {
		t.Run(fmt.Sprintf("transactional=%t/after_handling=%t", tc.transactional, tc.handled), func(t *testing.T) {
			transactional := tc.transactional
			b := startBroker(t)
			crash := &crashAt{b: b, k: tc.k, handled: tc.handled}
			dst := fmt.Sprintf(`type kafka brokers %q topic %q timeout 1s batch_size 50 max_retries 20 transactional %t`, b.Addr(), topic, transactional)
			e, outbox := deliveryRig(t, dst, engine.Options{Hooks: []sinks.Hook{crash}})
			crash.arm()
			for call := 0; ; call++ {
				n, err := e.Store().Backlog(dest)
				if err != nil {
					t.Fatal(err)
				}
				if n == 0 {
					break
				}
				if call == 3 {
					t.Fatalf("%d events left after %d deliveries", n, call)
				}
				if _, err := e.Deliver(context.Background(), dest); err != nil {
					t.Logf("Deliver: %v", err)
				}
			}
			crash.mu.Lock()
			produces, crashed, restarted, retries := crash.produces, crash.crashed, crash.restarted, crash.retries
			crash.mu.Unlock()
			switch {
			case !crashed:
				t.Fatalf("the broker never crashed (%d produce requests)", produces)
			case !restarted && !tc.handled:
				t.Fatal("a request cut off by the crash was never retried")
			case !restarted:
				// The broker answered the last request before it stopped:
				// delivery never noticed. Start it again to read what it
				// stored before the crash.
				t.Log("the broker answered before it stopped; restarting it to read the topic")
				b.Start()
			}
			recs := sinktest.ReadTopic(t, b.Addr(), topic, transactional)
			byID := map[string]diff.Message{}
			for _, m := range outbox {
				byID[m.ID] = m
			}
			var ids []string
			for _, r := range recs {
				id := header(r, sinks.HeaderMessageID)
				m, ok := byID[id]
				if ok && (string(r.Key) != m.UserID || string(r.Value) != string(m.Payload) || header(r, sinks.HeaderEvent) != m.Event) {
					t.Fatalf("record %s: key %q, event %q, value %.100s; want the outbox message %+v", id, r.Key, header(r, sinks.HeaderEvent), r.Value, m)
				}
				ids = append(ids, id)
			}
			dups := checkArrived(t, outbox, ids)
			if transactional && dups != 0 {
				t.Fatalf("%d duplicates for a read_committed consumer", dups)
			}
			t.Logf("%d events, %d records (%d duplicates); %d retries across the crash", len(outbox), len(recs), dups, retries)
		})
	}
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// ---- webhooks ----

// hookServer is a webhook receiver that checks each request as the webhook
// destination documents it (POST, JSON {"batch": [...]}, signed with
// X-Linkaud-Signature) and answers what the test says: 200, or a failure
// status for the requests numbered in fail.
type hookServer struct {
	t      *testing.T
	secret string
	ln     net.Listener
	srv    *http.Server

	mu       sync.Mutex
	requests int
	fail     map[int]int // request number (1-based) → status
	refuse   int         // when set, the status of every request
	arrived  []string
}

const hookSecret = "fault-suite-hmac-key"

func startHook(t *testing.T, addr string) *hookServer {
	t.Helper()
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	h := &hookServer{t: t, secret: hookSecret, ln: ln, fail: map[int]int{}}
	h.srv = &http.Server{Handler: h}
	go h.srv.Serve(ln)
	t.Cleanup(h.close)
	return h
}

func (h *hookServer) close() { h.srv.Close() }

func (h *hookServer) url() string { return "http://" + h.ln.Addr().String() + "/events" }

func (h *hookServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil || r.Method != http.MethodPost || r.URL.Path != "/events" || r.Header.Get("Content-Type") != "application/json" ||
		r.Header.Get(sinks.SignatureHeader) != sinks.Sign([]byte(h.secret), body) {
		h.t.Errorf("bad request: %s %s %v, signature %q", r.Method, r.URL, err, r.Header.Get(sinks.SignatureHeader))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	var req struct {
		Batch []struct {
			MessageID string `json:"messageId"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(body, &req); err != nil || len(req.Batch) == 0 {
		h.t.Errorf("bad body %.200s: %v", body, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if h.refuse != 0 {
		w.WriteHeader(h.refuse)
		fmt.Fprintf(w, `{"error": "credential refused (%d)"}`, h.refuse)
		return
	}
	if code, ok := h.fail[h.requests]; ok {
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"error": "injected %d"}`, code)
		return
	}
	for _, ev := range req.Batch {
		h.arrived = append(h.arrived, ev.MessageID)
	}
	w.WriteHeader(http.StatusOK)
}

func (h *hookServer) failRequests(code int, nums ...int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, n := range nums {
		h.fail[n] = code
	}
}

func (h *hookServer) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.arrived...)
}

func hookDest(url string) string {
	return fmt.Sprintf(`type webhook url %q secret env("HOOK_SECRET") batch_size 50 rate_limit "unlimited" max_retries 3`, url)
}

func hookOptions() engine.Options {
	return engine.Options{Sinks: sinks.OpenOptions{LookupEnv: func(name string) (string, bool) {
		return hookSecret, name == "HOOK_SECRET"
	}}}
}

// TestWebhook500sThenRecovery: the receiver answers 500 to three requests
// in a row mid-delivery, then recovers. One engine.Deliver retries
// through it; the receiver accepted the outbox exactly, in per-profile
// order, without a duplicate (a 500 accepted nothing).
func TestWebhook500sThenRecovery(t *testing.T) {
	h := startHook(t, "")
	h.failRequests(http.StatusInternalServerError, 4, 5, 6)
	e, outbox := deliveryRig(t, hookDest(h.url()), hookOptions())
	st, err := e.Deliver(context.Background(), dest)
	if err != nil {
		t.Fatal(err)
	}
	if st.Retries != 3 || st.Delivered != len(outbox) {
		t.Fatalf("Deliver: %+v; want %d delivered after 3 retries", st, len(outbox))
	}
	if dups := checkArrived(t, outbox, h.received()); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
}

// TestWebhookGoneUntilRetriesRunOut: the receiver goes away after two
// batches; engine.Deliver spends its retries (max_retries 3) and stops
// with the rest left in the outbox. A receiver back on the same address
// gets the rest at the next delivery: between the two, the outbox exactly,
// in per-profile order, nothing twice.
func TestWebhookGoneUntilRetriesRunOut(t *testing.T) {
	h := startHook(t, "")
	gone := &closeAfter{after: 2, close: h.close}
	opts := hookOptions()
	opts.Hooks = []sinks.Hook{gone}
	e, outbox := deliveryRig(t, hookDest(h.url()), opts)
	st, goneErr := e.Deliver(context.Background(), dest)
	if !errors.Is(goneErr, sinks.ErrRetriesExhausted) || st.Delivered != 100 || st.Retries != 3 {
		t.Fatalf("Deliver to a receiver gone after 2 batches: %+v, %v", st, goneErr)
	}
	left, err := e.Store().Backlog(dest)
	if err != nil || left != int64(len(outbox)-100) {
		t.Fatalf("backlog %d (%v); want the %d undelivered events", left, err, len(outbox)-100)
	}
	if dls, err := e.Store().DeadLetters(dest); err != nil || len(dls) != 0 {
		t.Fatalf("%d dead letters (%v): an unreachable receiver rejected nothing", len(dls), err)
	}
	t.Logf("receiver gone: %v", goneErr)

	back := startHook(t, h.ln.Addr().String())
	st, err = e.Deliver(context.Background(), dest)
	if err != nil || st.Delivered != len(outbox)-100 {
		t.Fatalf("Deliver once the receiver is back: %+v, %v", st, err)
	}
	if dups := checkArrived(t, outbox, append(h.received(), back.received()...)); dups != 0 {
		t.Fatalf("%d duplicates", dups)
	}
}

// closeAfter closes the receiver after `after` delivered batches.
type closeAfter struct {
	after int
	close func()
	n     atomic.Int32
}

func (c *closeAfter) OnDelivered(string, []diff.Message) {
	if int(c.n.Add(1)) == c.after {
		c.close()
	}
}

// TestWebhookRejectsThenDeadLettersRetried: the receiver rejects two
// batches with 400 (a permanent refusal: bad credentials, a schema it does
// not accept). engine.Deliver moves them to the dead-letter store with the
// receiver's answer as the reason and delivers the rest. Once the receiver
// is fixed, `linkaud deadletters retry` (engine.RetryDeadLetters) puts them
// back in the outbox and the next delivery sends them, with the same
// messageIds and payloads: the receiver then holds the outbox exactly.
func TestWebhookRejectsThenDeadLettersRetried(t *testing.T) {
	h := startHook(t, "")
	h.failRequests(http.StatusBadRequest, 3, 7)
	e, outbox := deliveryRig(t, hookDest(h.url()), hookOptions())
	st, err := e.Deliver(context.Background(), dest)
	if err != nil || st.DeadLettered != 100 || st.Delivered != len(outbox)-100 {
		t.Fatalf("Deliver: %+v, %v; want 100 dead-lettered, the rest delivered", st, err)
	}
	dls, err := e.Store().DeadLetters(dest)
	if err != nil || len(dls) != 100 {
		t.Fatalf("%d dead letters (%v)", len(dls), err)
	}
	byID := map[string]diff.Message{}
	for _, m := range outbox {
		byID[m.ID] = m
	}
	for _, dl := range dls {
		if m, ok := byID[dl.ID]; !ok || string(dl.Payload) != string(m.Payload) || !strings.Contains(dl.Reason, "HTTP 400") || !strings.Contains(dl.Reason, "injected 400") {
			t.Fatalf("dead letter %s (%q) is not an outbox message with the receiver's answer", dl.ID, dl.Reason)
		}
	}

	n, err := engine.RetryDeadLetters(e.Store(), dest, nil)
	if err != nil || n != 100 {
		t.Fatalf("RetryDeadLetters: %d, %v", n, err)
	}
	st, err = e.Deliver(context.Background(), dest)
	if err != nil || st.Delivered != 100 {
		t.Fatalf("Deliver of the retried dead letters: %+v, %v", st, err)
	}
	if dls, err := e.Store().DeadLetters(dest); err != nil || len(dls) != 0 {
		t.Fatalf("%d dead letters left (%v)", len(dls), err)
	}
	// A dead letter is retried after what followed it, so per-profile
	// order does not hold for it; the set must be the outbox exactly.
	got := map[string]int{}
	for _, id := range h.received() {
		got[id]++
	}
	for _, m := range outbox {
		if got[m.ID] != 1 {
			t.Fatalf("message %s arrived %d times", m.ID, got[m.ID])
		}
		delete(got, m.ID)
	}
	if len(got) != 0 {
		t.Fatalf("%d messages arrived that the outbox did not hold", len(got))
	}
}
