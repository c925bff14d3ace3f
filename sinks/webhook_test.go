package sinks_test

import (
	"context"
	"crypto/hmac"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// hookServer is a webhook receiver: it verifies the signature, keeps the
// events of every accepted request, and answers with scripted failures.
type hookServer struct {
	t      testing.TB
	secret []byte

	mu       sync.Mutex
	srv      *httptest.Server
	addr     string
	accepted []string   // messageIds in arrival order
	bodies   [][]byte   // raw bodies of accepted requests
	script   []response // consumed one per request; empty means 200
	requests int
}

type response struct {
	status int
	header map[string]string
	body   string // default {"message":"scripted failure"}
}

func newHookServer(t testing.TB, secret string) *hookServer {
	h := &hookServer{t: t, secret: []byte(secret)}
	h.start("127.0.0.1:0")
	t.Cleanup(func() { h.srv.Close() })
	return h
}

func (h *hookServer) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		h.t.Fatalf("listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(http.HandlerFunc(h.serve))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	h.mu.Lock()
	h.srv = srv
	h.addr = ln.Addr().String()
	h.mu.Unlock()
}

func (h *hookServer) url() string { return "http://" + h.addr + "/hook" }

func (h *hookServer) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests++
	if r.Method != http.MethodPost || r.URL.Path != "/hook" || r.Header.Get("Content-Type") != "application/json" {
		h.t.Errorf("request %s %s content-type %q", r.Method, r.URL.Path, r.Header.Get("Content-Type"))
	}
	if len(h.secret) > 0 {
		want := sinks.Sign(h.secret, body)
		if got := r.Header.Get(sinks.SignatureHeader); !hmac.Equal([]byte(got), []byte(want)) {
			h.t.Errorf("signature %q, want %q", got, want)
		}
	}
	if len(h.script) > 0 {
		resp := h.script[0]
		h.script = h.script[1:]
		if resp.status/100 != 2 {
			for k, v := range resp.header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(resp.status)
			_, _ = io.WriteString(w, `{"error":"scripted"}`)
			return
		}
	}
	var b struct {
		Batch []struct {
			MessageID string `json:"messageId"`
		} `json:"batch"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		h.t.Errorf("body is not {\"batch\": [...]}: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	for _, e := range b.Batch {
		h.accepted = append(h.accepted, e.MessageID)
	}
	h.bodies = append(h.bodies, body)
	w.WriteHeader(http.StatusOK)
}

func (h *hookServer) then(rs ...response) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.script = append(h.script, rs...)
}

func (h *hookServer) received() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.accepted...)
}

func repeat(n int, r response) []response {
	out := make([]response, n)
	for i := range out {
		out[i] = r
	}
	return out
}

func env(vars map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := vars[k]
		return v, ok
	}
}

func openWebhook(t testing.TB, h *hookServer, extra map[string]dsl.Setting) sinks.Destination {
	t.Helper()
	settings := map[string]dsl.Setting{
		"url":    {Text: h.url()},
		"secret": {Secret: dsl.Secret{Env: "HOOK_SECRET"}},
	}
	for k, v := range extra {
		settings[k] = v
	}
	d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: settings},
		sinks.OpenOptions{LookupEnv: env(map[string]string{"HOOK_SECRET": string(h.secret)})})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

func TestWebhookShared(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) *sinktest.Target {
		h := newHookServer(t, "s3cret-hmac-key")
		return &sinktest.Target{
			Dest:     openWebhook(t, h, map[string]dsl.Setting{"batch_size": {Text: "7"}}),
			Received: func(testing.TB) []string { return h.received() },
			Fail:     func(n int) { h.then(repeat(n, response{status: 503})...) },
			Throttle: func(n int) {
				h.then(repeat(n, response{status: 429, header: map[string]string{"Retry-After": "0"}})...)
			},
			Reject: func() { h.then(response{status: 400}) },
			Outage: func(t testing.TB) func() {
				h.srv.Close()
				return func() { h.start(h.addr) }
			},
		}
	})
}

func TestWebhookBodyAndSignature(t *testing.T) {
	h := newHookServer(t, "hook-signing-key")
	d := openWebhook(t, h, nil)
	defer d.Close()
	msgs := sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 2})
	if err := d.Send(context.Background(), msgs); err != nil {
		t.Fatal(err)
	}
	if len(h.bodies) != 1 {
		t.Fatalf("%d requests, want 1", len(h.bodies))
	}
	// The body is the payloads, byte for byte, in a batch array.
	var want strings.Builder
	want.WriteString(`{"batch":[`)
	for i, m := range msgs {
		if i > 0 {
			want.WriteByte(',')
		}
		want.Write(m.Payload)
	}
	want.WriteString(`]}`)
	if got := string(h.bodies[0]); got != want.String() {
		t.Errorf("body\n%s\nwant\n%s", got, want.String())
	}
	// The documented signature: HMAC-SHA256 of the raw body keyed with the
	// secret, hex, prefixed with sha256=.
	if got := sinks.Sign([]byte("key"), []byte("The quick brown fox jumps over the lazy dog")); got != "sha256=f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8" {
		t.Errorf("Sign = %s", got)
	}
}

func TestWebhookThrottleBudget(t *testing.T) {
	h := newHookServer(t, "hook-signing-key")
	d := openWebhook(t, h, nil)
	defer d.Close()
	ob := sinktest.NewOutbox()
	ob.Append("hook", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 1})...)
	h.then(response{status: 429, header: map[string]string{"Retry-After": "3600"}})
	o := sinktest.FastOptions()
	o.MaxThrottle = time.Minute
	st, err := sinks.Deliver(context.Background(), ob, "hook", d, o)
	if !errors.Is(err, sinks.ErrThrottled) || st.Left != 2 || ob.Len("hook") != 2 {
		t.Fatalf("Deliver = %+v, %v; want ErrThrottled with both messages left", st, err)
	}
}

func TestWebhookTimeoutIsRetried(t *testing.T) {
	var mu sync.Mutex
	slow := 1
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		stall := slow > 0
		slow--
		mu.Unlock()
		if stall {
			<-r.Context().Done() // the client gives up first
			return
		}
		var b struct {
			Batch []struct{ MessageID string } `json:"batch"`
		}
		_ = json.Unmarshal(body, &b)
		mu.Lock()
		for _, e := range b.Batch {
			got = append(got, e.MessageID)
		}
		mu.Unlock()
	}))
	defer srv.Close()
	d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
		"url": {Text: srv.URL}, "timeout": {Text: "50ms"},
	}}, sinks.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	ob := sinktest.NewOutbox()
	msgs := ob.Append("hook", sinktest.Messages(sinktest.GenOptions{Profiles: 3, PerProfile: 1})...)
	st, err := sinks.Deliver(context.Background(), ob, "hook", d, sinktest.FastOptions())
	if err != nil || st.Delivered != 3 || st.Retries != 1 {
		t.Fatalf("Deliver = %+v, %v; want 3 delivered after 1 retry", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	sinktest.CheckReceived(t, msgs, got, msgs)
}

func TestWebhookSecretNeverInErrors(t *testing.T) {
	const token = "tok-7f3a9c"
	var h *hookServer
	h = newHookServer(t, "")
	d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
		"url": {Secret: dsl.Secret{Env: "HOOK_URL"}},
	}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"HOOK_URL": "http://" + h.addr + "/hook?token=" + token})})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	h.srv.Close() // connection refused: the error names the URL
	err = d.Send(context.Background(), sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1}))
	if err == nil {
		t.Fatal("Send to a closed server succeeded")
	}
	if strings.Contains(err.Error(), token) {
		t.Fatalf("error leaks the secret URL: %v", err)
	}
	if !strings.Contains(err.Error(), sinks.Redacted) {
		t.Fatalf("error %q does not show the redaction", err)
	}
}
