package sinks_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// TestDeliver traces the delivery loop against a real webhook destination
// and an HTTP server answering as the test file scripts. Commands:
//
//	outbox                 append messages, one per line: USER EVENT [invalid] [pad=N]
//	respond                queue answers, one per line: STATUS [retry-after=S]
//	fail-ack               make the next outbox Ack fail
//	deliver [batch=N] [retries=N] [max-bytes=N] [throttle-budget=D]
//	                       run Deliver and print what the server saw and the
//	                       hooks reported, then the stats and what is pending
//
// Run with -rewrite to regenerate the expected output.
func TestDeliver(t *testing.T) {
	datadriven.Walk(t, "testdata/deliver", func(t *testing.T, path string) {
		h := &traceServer{}
		srv := httptest.NewServer(h)
		defer srv.Close()
		d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
			"url": {Text: srv.URL}, "batch_size": {Text: "1000"},
		}}, sinks.OpenOptions{})
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		ob := sinktest.NewOutbox()
		seqOf := map[string]uint64{}
		datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
			switch td.Cmd {
			case "outbox":
				var out strings.Builder
				for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
					m := parseMessage(t, line, len(seqOf))
					m = ob.Append("hook", m)[0]
					seqOf[m.ID] = m.Seq
					fmt.Fprintf(&out, "%d %s %s %q %dB\n", m.Seq, m.UserID, m.Type, m.Event, len(m.Payload))
				}
				return out.String()
			case "respond":
				for _, line := range strings.Split(strings.TrimSpace(td.Input), "\n") {
					f := strings.Fields(line)
					code, err := strconv.Atoi(f[0])
					if err != nil {
						t.Fatalf("bad status %q", f[0])
					}
					r := response{status: code, header: map[string]string{}}
					for _, kv := range f[1:] {
						if v, ok := strings.CutPrefix(kv, "retry-after="); ok {
							r.header["Retry-After"] = v
						}
					}
					h.mu.Lock()
					h.script = append(h.script, r)
					h.mu.Unlock()
				}
				return ""
			case "fail-ack":
				ob.FailAck(errors.New("pebble: disk full"))
				return ""
			case "deliver":
				o := sinktest.FastOptions()
				for _, a := range td.CmdArgs {
					v := a.Vals[0]
					switch a.Key {
					case "batch":
						o.BatchSize, _ = strconv.Atoi(v)
					case "retries":
						o.MaxRetries, _ = strconv.Atoi(v)
						if o.MaxRetries == 0 {
							o.MaxRetries = sinks.NoRetries
						}
					case "max-bytes":
						o.MaxEventBytes, _ = strconv.Atoi(v)
					case "throttle-budget":
						o.MaxThrottle, _ = time.ParseDuration(v)
					default:
						t.Fatalf("unknown argument %s", a.Key)
					}
				}
				tr := &tracer{h: h, seqOf: seqOf}
				h.tr = tr
				o.Hooks = []sinks.Hook{tr}
				st, err := sinks.Deliver(context.Background(), ob, "hook", d, o)
				tr.printf("stats: %s", statsString(st))
				if err != nil {
					tr.printf("error: %v", err)
				}
				var pend []uint64
				for _, m := range ob.PendingAll("hook") {
					pend = append(pend, m.Seq)
				}
				tr.printf("pending: %v", pend)
				var dl []string
				for _, x := range ob.DeadLetters("hook") {
					dl = append(dl, fmt.Sprintf("%d", seqOf[x.Msg.ID]))
				}
				if len(dl) > 0 {
					tr.printf("dead letters so far: [%s]", strings.Join(dl, " "))
				}
				return tr.String()
			}
			t.Fatalf("unknown command %s", td.Cmd)
			return ""
		})
	})
}

var shortEvents = map[string][2]string{
	"entered": {"Audience Entered", "track"},
	"exited":  {"Audience Exited", "track"},
	"changed": {"Audience Membership Changed", "identify"},
	"added":   {"Entity Added", "track"},
	"removed": {"Entity Removed", "track"},
}

func parseMessage(t *testing.T, line string, n int) diff.Message {
	f := strings.Fields(line)
	if len(f) < 2 {
		t.Fatalf("want USER EVENT, got %q", line)
	}
	ev, ok := shortEvents[f[1]]
	if !ok {
		t.Fatalf("unknown event %q", f[1])
	}
	m := diff.Message{
		ID: fmt.Sprintf("la-%03d", n+1), Audience: "aud", Activation: "act",
		Event: ev[0], Type: ev[1], UserID: f[0],
	}
	payload := map[string]any{"type": ev[1], "userId": f[0], "messageId": m.ID}
	if ev[1] == "track" {
		payload["event"] = ev[0]
	}
	for _, opt := range f[2:] {
		if v, ok := strings.CutPrefix(opt, "pad="); ok {
			k, _ := strconv.Atoi(v)
			payload["pad"] = strings.Repeat("x", k)
		}
	}
	m.Payload, _ = json.Marshal(payload)
	for _, opt := range f[2:] {
		if opt == "invalid" {
			m.Payload = m.Payload[:len(m.Payload)-1]
		}
	}
	return m
}

func statsString(st sinks.Stats) string {
	var parts []string
	for _, f := range []struct {
		name string
		n    int
	}{
		{"delivered", st.Delivered}, {"recovered", st.Recovered}, {"dropped", st.Dropped},
		{"dead-lettered", st.DeadLettered}, {"sends", st.Sends}, {"retries", st.Retries},
		{"throttled", st.Throttled}, {"left", st.Left},
	} {
		if f.n != 0 {
			parts = append(parts, fmt.Sprintf("%s=%d", f.name, f.n))
		}
	}
	return strings.Join(parts, " ")
}

// traceServer answers POSTs as scripted and reports each to the tracer.
type traceServer struct {
	mu     sync.Mutex
	script []response
	tr     *tracer
}

func (h *traceServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var b struct {
		Batch []struct {
			MessageID string `json:"messageId"`
		} `json:"batch"`
	}
	_ = json.Unmarshal(body, &b)
	h.mu.Lock()
	resp := response{status: 200}
	if len(h.script) > 0 {
		resp = h.script[0]
		h.script = h.script[1:]
	}
	tr := h.tr
	h.mu.Unlock()
	var seqs []uint64
	for _, e := range b.Batch {
		seqs = append(seqs, tr.seqOf[e.MessageID])
	}
	tr.printf("POST %v -> %d", seqs, resp.status)
	for k, v := range resp.header {
		w.Header().Set(k, v)
	}
	w.WriteHeader(resp.status)
	if resp.status != 200 {
		_, _ = io.WriteString(w, `{"error":"scripted"}`)
	}
}

// tracer records what the server saw and what the hooks reported, in order.
type tracer struct {
	h     *traceServer
	seqOf map[string]uint64
	mu    sync.Mutex
	b     strings.Builder
}

func (tr *tracer) printf(format string, args ...any) {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	fmt.Fprintf(&tr.b, format+"\n", args...)
}

func (tr *tracer) String() string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return tr.b.String()
}

func (tr *tracer) seqs(msgs []diff.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func (tr *tracer) OnDelivered(_ string, msgs []diff.Message) {
	tr.printf("delivered %v", tr.seqs(msgs))
}

func (tr *tracer) OnDropped(_ string, m diff.Message, bytes int) {
	tr.printf("dropped %d (%d bytes)", m.Seq, bytes)
}

func (tr *tracer) OnRetried(_ string, msgs []diff.Message, attempt int, _ time.Duration, err error) {
	tr.printf("retry #%d %v: %v", attempt, tr.seqs(msgs), err)
}

func (tr *tracer) OnThrottled(_ string, msgs []diff.Message, wait time.Duration) {
	w := "backoff"
	if wait >= time.Second {
		w = wait.String()
	}
	tr.printf("throttled %v, waiting %s", tr.seqs(msgs), w)
}

func (tr *tracer) OnDeadLettered(_ string, msgs []diff.Message, reason string) {
	tr.printf("dead-lettered %v: %s", tr.seqs(msgs), reason)
}
