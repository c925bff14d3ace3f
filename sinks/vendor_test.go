package sinks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
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

// fakeVendor is an HTTP server standing in for a marketing API. The vendor's
// handler checks every request against the vendor's documented shape (test
// errors otherwise) and returns the test tags of the objects it accepted;
// fakeVendor adds scripted failures, random storms of 500 and 429, and
// outages.
type fakeVendor struct {
	t      testing.TB
	handle func(t testing.TB, r *http.Request, body []byte) (status int, resp string, tags []string)

	mu        sync.Mutex
	srv       *httptest.Server
	addr      string
	script    []response
	refusing  *response // answers every request while set
	storm     *rand.Rand
	stormRate float64
	received  []string
	requests  []recorded
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

func newFakeVendor(t testing.TB, handle func(testing.TB, *http.Request, []byte) (int, string, []string)) *fakeVendor {
	f := &fakeVendor{t: t, handle: handle}
	f.start("127.0.0.1:0")
	t.Cleanup(func() { f.server().Close() })
	return f
}

func (f *fakeVendor) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatalf("listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	f.mu.Lock()
	f.srv, f.addr = srv, ln.Addr().String()
	f.mu.Unlock()
}

func (f *fakeVendor) server() *httptest.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.srv
}

func (f *fakeVendor) url() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "http://" + f.addr
}

func (f *fakeVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.EscapedPath(), r.Header.Clone(), body})
	var scripted *response
	if f.refusing != nil {
		scripted = f.refusing
	} else if len(f.script) > 0 {
		scripted = &f.script[0]
		f.script = f.script[1:]
	} else if f.storm != nil && f.storm.Float64() < f.stormRate {
		resp := response{status: 500}
		if f.storm.IntN(2) == 0 {
			resp = response{status: 429, header: map[string]string{"Retry-After": "0"}}
		}
		scripted = &resp
	}
	f.mu.Unlock()
	if scripted != nil && scripted.status/100 != 2 {
		for k, v := range scripted.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(scripted.status)
		body := scripted.body
		if body == "" {
			body = `{"message":"scripted failure"}`
		}
		_, _ = io.WriteString(w, body)
		return
	}
	status, resp, tags := f.handle(f.t, r, body)
	if status/100 == 2 {
		f.mu.Lock()
		f.received = append(f.received, tags...)
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp)
}

func (f *fakeVendor) then(rs ...response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, rs...)
}

// refuse answers every request with r until refuse(nil).
func (f *fakeVendor) refuse(r *response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refusing = r
}

func (f *fakeVendor) stormy(seed uint64, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storm, f.stormRate = rand.New(rand.NewPCG(seed, seed)), rate
}

func (f *fakeVendor) tags() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

func (f *fakeVendor) recorded() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeVendor) target(d sinks.Destination) *sinktest.Target {
	return &sinktest.Target{
		Dest:     d,
		Received: func(testing.TB) []string { return f.tags() },
		Fail:     func(n int) { f.then(repeat(n, response{status: 500})...) },
		Throttle: func(n int) {
			f.then(repeat(n, response{status: 429, header: map[string]string{"Retry-After": "0"}})...)
		},
		// A request refused as a whole is split (Braze) or resent item
		// by item (Iterable, Customer.io) to find the events to blame:
		// refuse every request of the isolation too.
		Reject: func() { f.then(repeat(64, response{status: 400})...) },
		Outage: func(testing.TB) func() {
			addr := f.addr
			f.server().Close()
			return func() { f.start(addr) }
		},
	}
}

// decodeStrict decodes body into v refusing fields the vendor does not
// document.
func decodeStrict(t testing.TB, body []byte, v any) bool {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if len(body) > 300 {
			body = append(body[:300:300], "…"...)
		}
		t.Errorf("request body %s: %v", body, err)
		return false
	}
	return true
}

func wantHeader(t testing.TB, r *http.Request, key, want string) bool {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.URL.Path, key, got, want)
		return false
	}
	return true
}

func tagOf(t testing.TB, obj map[string]any) string {
	t.Helper()
	tag, _ := obj["test_tag"].(string)
	if tag == "" {
		t.Errorf("object without test_tag: %v", obj)
	}
	return tag
}

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// --- storms ---

// TestHTTPStorms answers a random 40% of requests with 500 or 429 (seeded,
// so each run is the same storm): after the storm every event has arrived,
// in per-profile order, and nothing was acknowledged without arriving.
func TestHTTPStorms(t *testing.T) {
	vendors := httpVendors()
	for _, v := range vendors {
		t.Run(v.name, func(t *testing.T) {
			f, d := v.open(t)
			defer d.Close()
			f.stormy(7, 0.4)
			ob := sinktest.NewOutbox()
			msgs := ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 30, PerProfile: 5, Audiences: []string{"a", "b"}})...)
			o := sinktest.FastOptions()
			o.MaxRetries = 3
			o.BatchSize = 25
			var st sinks.Stats
			calls := 0
			for ; ob.Len("x") > 0; calls++ {
				if calls == 50 {
					t.Fatalf("%d pending after %d Deliver calls", ob.Len("x"), calls)
				}
				s, _ := sinks.Deliver(context.Background(), ob, "x", d, o)
				st.Delivered += s.Delivered
				st.Retries += s.Retries
				st.Throttled += s.Throttled
				st.DeadLettered += s.DeadLettered
			}
			if st.Delivered != len(msgs) || st.DeadLettered != 0 || st.Retries == 0 || st.Throttled == 0 {
				t.Fatalf("Stats %+v after %d calls; want all %d delivered through retries and throttling", st, calls, len(msgs))
			}
			acked := map[string]bool{}
			for _, id := range f.tags() {
				acked[id] = true
			}
			for _, m := range ob.Acked("x") {
				if !acked[m.ID] {
					t.Errorf("%s acknowledged but never arrived", m.ID)
				}
			}
			dups := sinktest.CheckReceived(t, msgs, f.tags(), msgs)
			t.Logf("%d messages, %d requests, %d retries, %d throttle waits, %d Deliver calls, %d duplicates",
				len(msgs), len(f.recorded()), st.Retries, st.Throttled, calls, dups)
		})
	}
}

// batchIDs returns the messageIds of a webhook body {"batch": [events]}.
func batchIDs(t testing.TB, body []byte) []string {
	var b struct {
		Batch []struct{ MessageID string } `json:"batch"`
	}
	if err := json.Unmarshal(body, &b); err != nil {
		t.Errorf("webhook body: %v", err)
		return nil
	}
	var ids []string
	for _, e := range b.Batch {
		ids = append(ids, e.MessageID)
	}
	return ids
}

func paths(reqs []recorded) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.path)
	}
	return out
}

// wantJSON compares JSON documents semantically (key order and spacing
// ignored, numbers exact).
func wantJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	norm := func(b []byte) string {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		return string(out)
	}
	if g, w := norm(got), norm([]byte(want)); g != w {
		t.Errorf("request body\n%s\nwant\n%s", g, w)
	}
}

// mergeTags merges two lists of generated tags, each kept in its own order,
// taking the smaller head first (a tag sorts by audience, profile and message
// number), as objects that arrived in one request.
func mergeTags(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if b[0] < a[0] {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// TestSecretsNeverLogged runs failing deliveries for each HTTP destination
// with every secret-capable setting given as env(…) and checks that no
// secret value appears in the logs, errors or dead-letter reasons.
func TestSecretsNeverLogged(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		settings map[string]dsl.Setting
	}{
		{"braze", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"iterable", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"customerio", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "site_id": {Secret: dsl.Secret{Env: "SITE"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"webhook", map[string]dsl.Setting{"url": {Secret: dsl.Secret{Env: "URL"}}, "secret": {Secret: dsl.Secret{Env: "KEY"}}}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			// The server echoes the request (headers included) in its
			// error, as a careless API might.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "bad request %s %v", r.URL, r.Header)
			}))
			defer srv.Close()
			secrets := map[string]string{"URL": srv.URL + "/tok-url-5150", "KEY": "key-8d9e0f", "SITE": "site-31337"}
			if tc.typ != "webhook" {
				secrets["URL"] = srv.URL
			}
			var logs bytes.Buffer
			d, err := sinks.Open(&dsl.Destination{Name: "x", Type: tc.typ, Settings: tc.settings},
				sinks.OpenOptions{LookupEnv: env(secrets)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ob := sinktest.NewOutbox()
			ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 2})...)
			o := sinktest.FastOptions()
			o.Logger = slogTo(&logs)
			_, err = sinks.Deliver(context.Background(), ob, "x", d, o)
			srv.Close()
			ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1, Audiences: []string{"z"}})...)
			o.MaxRetries = 1
			_, err2 := sinks.Deliver(context.Background(), ob, "x", d, o)
			text := logs.String() + fmt.Sprint(err) + fmt.Sprint(err2)
			for _, dl := range ob.DeadLetters("x") {
				text += dl.Reason
			}
			if len(ob.DeadLetters("x")) == 0 || err2 == nil {
				t.Fatalf("expected dead letters and a failing second call: %v", err2)
			}
			secrets["BASIC"] = base64.StdEncoding.EncodeToString([]byte(secrets["SITE"] + ":" + secrets["KEY"]))
			for name, v := range secrets {
				if name == "URL" && tc.typ != "webhook" {
					v = strings.TrimPrefix(v, "http://")
					// A bare host:port is not a secret by itself; the
					// full URL is.
					v = "http://" + v
				}
				if strings.Contains(text, v) {
					t.Errorf("secret %s leaked:\n%s", name, text)
				}
			}
		})
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
