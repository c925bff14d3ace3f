package web

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/engine"
	"github.com/linkaud/linkaud/internal/metrics"
	"github.com/linkaud/linkaud/sinks"
)

// The console's workspace: savers (a path to account, a drift alert that
// notifies ops, an activation to crm, a webhook that rejects every batch)
// and gold (traits only).
const consoleWorkspace = `
warehouse {
  load "A.PROFILES" from "profiles.csv"
  load "A.ACCOUNTS" from "accounts.csv"
}
state "state"
graph {
  profile { table "A.PROFILES" key segment_id }
  entity account { table "A.ACCOUNTS" key id }
  relationship profile -> account on profile.segment_id = account.owner
}
audience savers {
  description "Profiles with a savings account"
  schedule manual
  match profile -> account where kind = "savings"
  alert size_change > 20% notify ops
}
audience gold {
  schedule manual
  match trait plan = "gold"
}
destination crm { type webhook url "CRM_URL" max_retries 0 }
destination ops { type webhook url "OPS_URL" }
activation savers_crm {
  audience savers
  destination crm
  event entity_added account
  send_current true
}
`

const consoleToken = "s3cret-console-token"

// accountSteps are the accounts.csv of three runs: 2 savers, then 5 (a
// change of 150%: the alert fires), then 4 (20%: it does not).
var accountSteps = []string{
	"id,owner,kind\na1,u1,savings\na2,u2,savings\na9,u9,checking\n",
	"id,owner,kind\na1,u1,savings\na2,u2,savings\na3,u3,savings\na4,u4,savings\na5,u5,savings\na6,u1,savings\n",
	"id,owner,kind\na1,u1,savings\na2,u2,savings\na3,u3,savings\na4,u4,savings\na6,u1,savings\n",
}

type consoleFixture struct {
	t      *testing.T
	dir    string
	srv    *httptest.Server
	w      *engine.Worker
	e      *engine.Engine
	crmHit *counter
	ops    *bodies
}

type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) inc() { c.mu.Lock(); c.n++; c.mu.Unlock() }
func (c *counter) get() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

type bodies struct {
	mu sync.Mutex
	b  []string
}

func (b *bodies) add(s string) { b.mu.Lock(); b.b = append(b.b, s); b.mu.Unlock() }
func (b *bodies) all() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.b...)
}

// newConsoleFixture starts a real worker on the console workspace with
// webhook receivers, enables both audiences and runs savers three times
// (gold once), waiting for the crm dead letters.
func newConsoleFixture(t *testing.T) *consoleFixture {
	t.Helper()
	f := &consoleFixture{t: t, dir: t.TempDir(), crmHit: &counter{}, ops: &bodies{}}
	crm := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.crmHit.inc()
		w.WriteHeader(http.StatusBadRequest)
		_, _ = io.WriteString(w, `{"error":"unknown list id"}`)
	}))
	t.Cleanup(crm.Close)
	ops := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		f.ops.add(string(b))
	}))
	t.Cleanup(ops.Close)
	src := strings.NewReplacer("CRM_URL", crm.URL, "OPS_URL", ops.URL).Replace(consoleWorkspace)
	f.write("ws.la", src)
	f.write("profiles.csv", "segment_id,plan\nu1,gold\nu2,silver\nu3,gold\nu4,silver\nu5,silver\nu9,gold\n")
	f.write("accounts.csv", accountSteps[0])
	ws, diags := dsl.Load(f.dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	m := metrics.New()
	rates := NewRates()
	e, err := engine.Open(context.Background(), ws, engine.Options{Logger: log, Hooks: []sinks.Hook{m, rates}})
	if err != nil {
		t.Fatal(err)
	}
	w, err := engine.NewWorker(e, engine.WorkerOptions{Logger: log, DeliverInterval: 100 * time.Millisecond, Watch: false})
	if err != nil {
		t.Fatal(err)
	}
	m.Observe(e.Store(), w.Destinations)
	m.ObserveHistory(e.Store())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx); close(done) }()
	f.srv = httptest.NewServer(New(w, Options{Token: consoleToken, Metrics: m.Handler(), Logger: log, Rates: rates}))
	f.w, f.e = w, e
	t.Cleanup(func() {
		cancel()
		<-done
		f.srv.Close()
		e.Close()
	})
	for _, a := range []string{"savers", "gold"} {
		if err := w.Enable(a); err != nil {
			t.Fatal(err)
		}
	}
	f.runTo("gold", 1)
	for i, step := range accountSteps {
		f.write("accounts.csv", step)
		f.runTo("savers", uint64(i+1))
	}
	f.waitFor("crm dead letters", func() bool {
		dl, err := e.Store().DeadLetters("crm")
		return err == nil && len(dl) > 0
	})
	return f
}

func (f *consoleFixture) write(name, body string) {
	f.t.Helper()
	if err := os.WriteFile(filepath.Join(f.dir, name), []byte(body), 0o644); err != nil {
		f.t.Fatal(err)
	}
}

func (f *consoleFixture) waitFor(what string, ok func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runTo runs aud now (once, if it has fewer than n runs) and waits until
// it has n.
func (f *consoleFixture) runTo(aud string, n uint64) {
	f.t.Helper()
	st, _, err := f.w.Audience(aud, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	if st.Runs < n {
		f.waitFor("a free slot for "+aud, func() bool { return f.w.RunNow(aud) == nil })
	}
	f.waitFor(fmt.Sprintf("run %d of %s", n, aud), func() bool {
		st, _, err := f.w.Audience(aud, 0)
		return err == nil && st.Runs >= n && !st.Running && !st.Queued
	})
}

// client is a browser-like client: it keeps cookies, follows no redirect.
func (f *consoleFixture) client() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

func (f *consoleFixture) get(c *http.Client, path string) (*http.Response, string) {
	f.t.Helper()
	resp, err := c.Get(f.srv.URL + path)
	if err != nil {
		f.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (f *consoleFixture) post(c *http.Client, path string, form url.Values) *http.Response {
	f.t.Helper()
	resp, err := c.PostForm(f.srv.URL+path, form)
	if err != nil {
		f.t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

var csrfInput = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func (f *consoleFixture) csrfOf(c *http.Client, path string) string {
	f.t.Helper()
	_, body := f.get(c, path)
	m := csrfInput.FindStringSubmatch(body)
	if m == nil {
		f.t.Fatalf("%s has no CSRF field", path)
	}
	return m[1]
}

// TestConsoleActionsNeedLoginAndCSRF: a console POST without the CSRF
// token, or without the session cookie, or with a wrong token, changes
// nothing; with both it acts. The JSON API ignores the session cookie.
func TestConsoleActionsNeedLoginAndCSRF(t *testing.T) {
	f := newConsoleFixture(t)
	runs := func() uint64 {
		st, _, _ := f.w.Audience("gold", 0)
		return st.Runs
	}
	before := runs()

	c := f.client()
	csrf := f.csrfOf(c, "/audience/gold")
	if resp := f.post(c, "/audience/gold/run", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST without a CSRF token: %d, want 403", resp.StatusCode)
	}
	if resp := f.post(c, "/audience/gold/run", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a login: %d, want 401", resp.StatusCode)
	}
	if resp := f.post(c, "/login", url.Values{"csrf": {csrf}, "token": {"wrong"}, "next": {"/"}}); resp.StatusCode != http.StatusSeeOther || !strings.Contains(resp.Header.Get("Location"), "failed") {
		t.Errorf("login with a wrong token: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp := f.post(c, "/login", url.Values{"token": {consoleToken}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("login without a CSRF token: %d, want 403", resp.StatusCode)
	}
	resp := f.post(c, "/login", url.Values{"csrf": {csrf}, "token": {consoleToken}, "next": {"//elsewhere.example/x"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/" {
		t.Fatalf("login: %d to %q, want 303 to / (never off-site)", resp.StatusCode, resp.Header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode {
		t.Fatalf("session cookie %+v: want HttpOnly, SameSite=Strict", session)
	}
	if resp := f.post(c, "/audience/gold/run", nil); resp.StatusCode != http.StatusForbidden {
		t.Errorf("logged in, POST without a CSRF token: %d, want 403", resp.StatusCode)
	}
	req, _ := http.NewRequest("POST", f.srv.URL+"/audience/gold/run", strings.NewReader(url.Values{"csrf": {csrf}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", "http://evil.example")
	if resp, err := c.Do(req); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Errorf("logged in, POST from another origin: %v %v, want 403", resp.StatusCode, err)
	}
	if runs() != before {
		t.Fatalf("a refused POST ran gold: %d runs, want %d", runs(), before)
	}
	// The API takes the bearer token only: the console's cookies do not
	// authorize it.
	if resp := f.post(c, "/audiences/gold/run", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("API POST with the console's cookies: %d, want 401", resp.StatusCode)
	}
	if resp := f.post(c, "/audience/gold/run", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logged in with the CSRF token: %d, want 303", resp.StatusCode)
	}
	f.runTo("gold", before+1)
	if resp := f.post(c, "/logout", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	if resp := f.post(c, "/audience/gold/run", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("after logout: %d, want 401", resp.StatusCode)
	}
}

// TestNoExternalURL: no page, stylesheet or script the console serves
// names an address elsewhere (nothing is fetched from the network), and
// every page says so to the browser with its Content-Security-Policy.
func TestNoExternalURL(t *testing.T) {
	f := newConsoleFixture(t)
	c := f.client()
	external := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9-]+(\.[a-z0-9-]+)+|url\(\s*['"]?(https?:|//)|@import`)
	pages := []string{"/", "/audience/savers", "/audience/gold", "/audience/savers/members", "/audience/savers/members?q=u1",
		"/audience/savers/why", "/audience/savers/why?profile=u1",
		"/deliveries", "/login", "/audience/nosuch"}
	assets, err := fs.Glob(assetFS, "assets/*")
	if err != nil {
		t.Fatal(err)
	}
	more, _ := fs.Glob(assetFS, "assets/*/*")
	assets = append(assets, more...)
	served := 0
	for _, a := range assets {
		if st, err := fs.Stat(assetFS, a); err != nil || st.IsDir() || strings.HasSuffix(a, ".md") {
			continue
		}
		pages = append(pages, "/"+a)
	}
	for _, p := range pages {
		resp, body := f.get(c, p)
		if resp.StatusCode != http.StatusOK && p != "/audience/nosuch" {
			t.Errorf("GET %s: %d", p, resp.StatusCode)
			continue
		}
		served++
		if m := external.FindString(body); m != "" {
			i := strings.Index(body, m)
			t.Errorf("%s names an external address: %q in …%s…", p, m, body[max(0, i-60):min(len(body), i+60)])
		}
		if strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
			if csp := resp.Header.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'none'") {
				t.Errorf("%s: Content-Security-Policy %q", p, csp)
			}
		}
	}
	if served < 12 {
		t.Fatalf("only %d pages and assets served", served)
	}
	t.Logf("%d pages and assets scanned", served)
}

// TestHistoryAPI: GET /audiences/{name}/history has a point per run, the
// alert marked on the run that fired it; /metrics counts the alert and
// exports the history's latest point; the ops webhook got the alert event.
func TestHistoryAPI(t *testing.T) {
	f := newConsoleFixture(t)
	c := f.client()
	resp, body := f.get(c, "/audiences/savers/history")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("history: %d %s", resp.StatusCode, body)
	}
	var h struct {
		Points []diff.HistoryPoint `json:"points"`
	}
	if err := json.Unmarshal([]byte(body), &h); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range h.Points {
		got = append(got, fmt.Sprintf("run %d: %d members +%d -%d alerts %d", p.Run, p.Members, p.Entered, p.Exited, p.Alerts))
	}
	want := []string{"run 1: 2 members +2 -0 alerts 0", "run 2: 5 members +3 -0 alerts 1", "run 3: 4 members +0 -1 alerts 0"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("history:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if resp, _ := f.get(c, "/audiences/nosuch/history"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("history of an unknown audience: %d, want 404", resp.StatusCode)
	}
	_, runs, err := f.w.Audience("savers", 3)
	if err != nil {
		t.Fatal(err)
	}
	if len(runs[1].Alerts) != 1 || runs[1].Alerts[0].Alert != "size_change > 20%" || len(runs[0].Alerts)+len(runs[2].Alerts) != 0 {
		t.Fatalf("runs' alerts: %+v", runs)
	}
	_, metricsText := f.get(c, "/metrics")
	for _, line := range []string{
		`linkaud_drift_alerts_total{alert="size_change > 20%",audience="savers"} 1`,
		`linkaud_audience_history_members{audience="savers"} 4 `,
		`linkaud_audience_history_points{audience="savers"} 3`,
	} {
		if !strings.Contains(metricsText, line) {
			t.Errorf("/metrics lacks %q", line)
		}
	}
	f.waitFor("the alert event at ops", func() bool { return len(f.ops.all()) > 0 })
	var batch struct {
		Batch []map[string]any `json:"batch"`
	}
	if err := json.Unmarshal([]byte(f.ops.all()[0]), &batch); err != nil {
		t.Fatalf("ops got %s: %v", f.ops.all()[0], err)
	}
	evs := batch.Batch
	if len(evs) != 1 || evs[0]["event"] != diff.AlertEvent {
		t.Fatalf("ops got %v", evs)
	}
	props := evs[0]["properties"].(map[string]any)
	if props["audience_key"] != "savers" || props["members_before"] != 2.0 || props["members_after"] != 5.0 || props["run"] != 2.0 {
		t.Fatalf("alert event properties %v", props)
	}
}

// TestReadOnlyConsole: linkaud console's server shows the same pages over
// the state without a worker, and refuses every action.
func TestReadOnlyConsole(t *testing.T) {
	f := newConsoleFixture(t)
	srv := httptest.NewServer(NewReadOnly(fixedState{f.w.Workspace(), f.e.Store()}, Options{}))
	defer srv.Close()
	f.srv = srv
	c := f.client()
	for _, p := range []string{"/", "/audience/savers", "/audience/savers/members", "/deliveries"} {
		resp, body := f.get(c, p)
		if resp.StatusCode != http.StatusOK || !strings.Contains(body, "read-only") {
			t.Errorf("GET %s: %d (read-only badge: %v)", p, resp.StatusCode, strings.Contains(body, "read-only"))
		}
	}
	if _, body := f.get(c, "/audience/savers/why?profile=u1"); !strings.Contains(body, `id="why-unavailable"`) {
		t.Error("the read-only console's why page does not say why it cannot explain")
	}
	_, body := f.get(c, "/audience/savers")
	if strings.Contains(body, "run-button") {
		t.Error("the read-only console shows action buttons")
	}
	f.get(c, "/")
	u, _ := url.Parse(srv.URL)
	var csrf string
	for _, ck := range c.Jar.Cookies(u) {
		if ck.Name == csrfCookie {
			csrf = ck.Value
		}
	}
	if resp := f.post(c, "/audience/savers/run", url.Values{"csrf": {csrf}}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("read-only POST: %d, want 403", resp.StatusCode)
	}
}

type fixedState struct {
	ws    *dsl.Workspace
	store *diff.Store
}

func (s fixedState) Current() (*dsl.Workspace, *diff.Store) { return s.ws, s.store }

// TestRequireLogin: beyond loopback (Options.RequireLogin), every page
// needs the login, and the login page and assets do not.
func TestRequireLogin(t *testing.T) {
	f := newConsoleFixture(t)
	srv := httptest.NewServer(New(f.w, Options{Token: consoleToken, RequireLogin: true}))
	defer srv.Close()
	f.srv = srv
	c := f.client()
	for _, p := range []string{"/", "/audience/savers", "/audience/savers/members", "/deliveries"} {
		if resp, _ := f.get(c, p); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login?next=") {
			t.Errorf("GET %s without login: %d to %q, want 303 to the login", p, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	for _, p := range []string{"/assets/console.css", "/audiences/savers/history", "/audiences"} {
		if resp, _ := f.get(c, p); resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s without login: %d, want 200 (assets and the JSON API are open to reads)", p, resp.StatusCode)
		}
	}
	csrf := f.csrfOf(c, "/login")
	if resp := f.post(c, "/login", url.Values{"csrf": {csrf}, "token": {consoleToken}, "next": {"/deliveries"}}); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/deliveries" {
		t.Fatalf("login: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, body := f.get(c, "/deliveries"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "dead-letters") {
		t.Errorf("GET /deliveries logged in: %d", resp.StatusCode)
	}
}
