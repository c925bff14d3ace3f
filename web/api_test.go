package web

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/buildinfo"
	"github.com/linkaud/linkaud/internal/metrics"
	"github.com/linkaud/linkaud/sinks"
)

const workspace = `
warehouse { load "ANALYTICS.PROFILES" from "profiles.csv" }
state "state"
graph { profile { table "ANALYTICS.PROFILES" key segment_id } }
audience gold {
  description "Gold plan"
  schedule manual
  match trait plan = "gold"
}
audience hourly {
  schedule every 1h
  match trait plan = "silver"
}
`

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

type fixture struct {
	t    *testing.T
	srv  *httptest.Server
	w    *engine.Worker
	logs *lockedBuffer
	stop func()
	dir  string // the workspace
}

// newFixture serves the API of a real worker over a real engine; token
// may be empty (mutations disabled).
func newFixture(t *testing.T, token string) *fixture {
	t.Helper()
	return newFixtureFiles(t, token, map[string]string{
		"ws.la":        workspace,
		"profiles.csv": "segment_id,plan\nu1,gold\nu2,silver\nu3,gold\n",
	})
}

// newFixtureFiles is newFixture on a workspace of the given files.
func newFixtureFiles(t *testing.T, token string, files map[string]string) *fixture {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	logs := &lockedBuffer{}
	log := slog.New(slog.NewJSONHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := metrics.New()
	e, err := engine.Open(context.Background(), ws, engine.Options{Logger: log, Hooks: []sinks.Hook{m}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(e, engine.WorkerOptions{Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(e.Store(), w.Destinations)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	srv := httptest.NewServer(New(w, Options{Token: token, Metrics: m.Handler(), Logger: log}))
	var once sync.Once
	f := &fixture{t: t, srv: srv, w: w, logs: logs, dir: dir}
	f.stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(func() {
		f.stop()
		srv.Close()
		e.Close()
	})
	return f
}

func (f *fixture) do(method, path, auth string) (*http.Response, []byte) {
	f.t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func (f *fixture) want(method, path, auth string, status int) []byte {
	f.t.Helper()
	resp, body := f.do(method, path, auth)
	if resp.StatusCode != status {
		f.t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); status != http.StatusMethodNotAllowed && !strings.HasPrefix(ct, "application/json") && path != "/metrics" {
		f.t.Fatalf("%s %s: Content-Type %q", method, path, ct)
	}
	return body
}

func TestMutationsDisabledWithoutToken(t *testing.T) {
	f := newFixture(t, "")
	for _, action := range []string{"run", "enable", "disable"} {
		for _, auth := range []string{"", "Bearer ", "Bearer anything"} {
			body := f.want("POST", "/audiences/gold/"+action, auth, http.StatusForbidden)
			if !strings.Contains(string(body), TokenEnv) {
				t.Fatalf("403 does not say how to enable mutations: %s", body)
			}
		}
	}
	// Reads still work, and nothing changed.
	var a Audience
	if err := json.Unmarshal(f.want("GET", "/audiences/gold", "", http.StatusOK), &a); err != nil {
		t.Fatal(err)
	}
	if a.Enabled || a.Status != "Disabled" {
		t.Fatalf("gold: %+v", a)
	}
}

// TestTokenWithNewline: a token read from a file keeps its newline; the
// header's token is trimmed, so the configured one must be too.
func TestTokenWithNewline(t *testing.T) {
	f := newFixture(t, "s3cr3t-api-token\n")
	f.want("POST", "/audiences/gold/enable", "Bearer s3cr3t-api-token", http.StatusOK)
	f.want("POST", "/audiences/gold/disable", "Bearer s3cr3t-api-tokenx", http.StatusUnauthorized)
}

func TestBearerToken(t *testing.T) {
	const token = "s3cr3t-api-token"
	f := newFixture(t, token)
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer wrong", "Basic " + token, "bearer" + token, "Bearer " + token + "x", "Bearer " + token[:5]} {
		resp, body := f.do("POST", "/audiences/gold/enable", auth)
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" {
			t.Fatalf("Authorization %q: %d %s", auth, resp.StatusCode, body)
		}
	}
	f.want("POST", "/audiences/gold/run", "Bearer "+token, http.StatusConflict) // disabled
	var a Audience
	if err := json.Unmarshal(f.want("POST", "/audiences/gold/enable", "Bearer "+token, http.StatusOK), &a); err != nil {
		t.Fatal(err)
	}
	if !a.Enabled || a.Status != "Computing" || a.NextRun != nil || a.Schedule != "manual" || a.Description != "Gold plan" {
		t.Fatalf("gold after enable: %+v", a)
	}
	f.want("POST", "/audiences/gold/run", "Bearer "+token, http.StatusAccepted)
	deadline := time.Now().Add(time.Minute)
	for {
		if err := json.Unmarshal(f.want("GET", "/audiences/gold", "", http.StatusOK), &a); err != nil {
			t.Fatal(err)
		}
		// Running clears after the hooks (metrics) saw the cycle.
		if a.Status == "Live" && !a.Running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gold never ran: %+v", a)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if a.Members != 2 || a.Runs != 1 || len(a.History) != 1 || !a.History[0].OK || a.LastCounts == nil || a.LastCounts.Entered != 2 ||
		a.Version == "" || a.StateVersion != a.Version || a.LastRun == nil || a.LastSuccess == nil {
		t.Fatalf("gold after its run: %+v", a)
	}
	f.want("POST", "/audiences/nope/run", "Bearer "+token, http.StatusNotFound)
	f.want("GET", "/audiences/gold/run", "", http.StatusMethodNotAllowed)

	// An every audience is scheduled once enabled; disabling unschedules.
	if err := json.Unmarshal(f.want("POST", "/audiences/hourly/disable", "Bearer "+token, http.StatusOK), &a); err != nil {
		t.Fatal(err)
	}
	if a.Enabled || a.NextRun != nil {
		t.Fatalf("hourly disabled: %+v", a)
	}

	var list struct{ Audiences []Audience }
	if err := json.Unmarshal(f.want("GET", "/audiences", "", http.StatusOK), &list); err != nil {
		t.Fatal(err)
	}
	if len(list.Audiences) != 2 || list.Audiences[0].Name != "gold" || list.Audiences[1].Name != "hourly" || !list.Audiences[0].Defined {
		t.Fatalf("list: %+v", list)
	}
	metricsBody := string(f.want("GET", "/metrics", "", http.StatusOK))
	for _, want := range []string{`linkaud_cycles_total{audience="gold",result="ok"} 1`, `linkaud_audience_members{audience="gold"} 2`, "go_goroutines"} {
		if !strings.Contains(metricsBody, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(f.logs.String(), token[:8]) {
		t.Fatal("the token reached the log")
	}
	if !strings.Contains(f.logs.String(), `"path":"/audiences/gold/enable","status":401`) {
		t.Fatal("requests are not logged")
	}
}

func TestHealthz(t *testing.T) {
	f := newFixture(t, "")
	body := f.want("GET", "/healthz", "", http.StatusOK)
	var h struct {
		Status string         `json:"status"`
		Build  buildinfo.Info `json:"build"`
	}
	if err := json.Unmarshal(body, &h); err != nil {
		t.Fatalf("healthz: %v: %s", err, body)
	}
	if h.Status != "ok" || h.Build != buildinfo.Get() {
		t.Fatalf("healthz: status %q, build %+v; want ok and %+v", h.Status, h.Build, buildinfo.Get())
	}
	f.stop()
	body = f.want("GET", "/healthz", "", http.StatusServiceUnavailable)
	if !strings.Contains(string(body), "stopping") {
		t.Fatalf("healthz while stopped: %s", body)
	}
	f.want("POST", "/audiences/gold/run", "", http.StatusForbidden)
}
