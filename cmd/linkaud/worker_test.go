package main

import (
	"bufio"
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/web"
)

// The worker tests start `linkaud worker` as a subprocess on a real port
// and observe it only through its HTTP API, its metrics, its stderr and,
// once it exited, its state directory.

const (
	testToken  = "tok-3f9a1c7e5b2d4086"
	hookSecret = "whsec-8c1e6b2f0d4a9375"
	// hookKey is part of the webhook URL, itself given by env(): an
	// error quoting the URL must not leak it either.
	hookKey = "urlkey-51d7a0c3e9b2"
)

// workerWorkspace is the graph, warehouse and destinations; audiences are
// in a file of their own, which the tests edit.
const workerWorkspace = `
warehouse {
  load "APP.PROFILES" from "profiles.csv"
  load "APP.ACCOUNTS" from "accounts.csv"
  load "APP.CARDS" from "cards.csv"
  load "APP.BIG_ACCOUNTS" from "big_accounts.csv"
  load "APP.BIG_CARDS" from "big_cards.csv"
}
state "state"
graph {
  profile { table "APP.PROFILES" key segment_id }
  entity account { table "APP.ACCOUNTS" key id }
  entity card { table "APP.CARDS" key id }
  entity big_account { table "APP.BIG_ACCOUNTS" key id }
  entity big_card { table "APP.BIG_CARDS" key id }
  relationship profile -> account on profile.grp = account.grp
  relationship account -> card on account.grp = card.grp
  relationship profile -> big_account on profile.grp = big_account.pgrp
  relationship big_account -> big_card on big_account.grp = big_card.grp
}
destination audit { type file path "events.jsonl" }
destination hook { type webhook url env("HOOK_URL") secret env("HOOK_SECRET") }
activation fast_audit { audience fast destination audit event audience_entered send_current true }
activation fast_hook { audience fast destination hook event audience_entered send_current true }
`

// heavy is an audience whose query is slow on purpose: every account is
// compared with every card of its group (all one group) on y > x, which
// never holds, so the result is empty and only the warehouse works.
func heavy(name, account, card string) string {
	return fmt.Sprintf(`
audience %s {
  schedule every 1s
  match profile -> %s -> %s where y > %s.x
}
`, name, account, card, account)
}

const fastAudience = `
audience fast {
  description "Gold profiles"
  schedule every 1s
  match trait plan = "gold"
}
audience manual_one {
  schedule manual
  match trait plan = "silver"
}
`

const fastEdited = `
audience fast {
  description "Gold and silver profiles"
  schedule every 1s
  match trait plan in ("gold", "silver")
}
audience manual_one {
  schedule manual
  match trait plan = "silver"
}
`

func workerAudiences(body string) string {
	return body + heavy("heavy1", "account", "card") + heavy("heavy2", "account", "card") +
		heavy("heavy3", "account", "card") + heavy("heavy4", "account", "card") +
		heavy("slow", "big_account", "big_card")
}

// writeWorkerData writes the tables: 5 profiles (2 gold, 1 silver), and
// accounts and cards making heavy cycles take a good fraction of a second
// here (a cross comparison of n×n rows), slow ones minutes.
func writeWorkerData(t *testing.T, dir string) {
	t.Helper()
	files := map[string]string{
		"profiles.csv": "segment_id,plan,grp\nu1,gold,0\nu2,silver,0\nu3,gold,0\nu4,none,0\nu5,none,0\n",
	}
	// groups splits the accounts and cards into groups: each account is
	// compared with the cards of its group. One group (the small tables)
	// is a cross comparison; the big tables use 10 groups of 40,000, so
	// that DuckDB, which checks for an interrupt between the chunks of a
	// hash join's probe and not inside one, stops a slow query within a
	// fraction of a second also on a loaded machine (2048 probe rows × 40k
	// matches per chunk, not × 400k).
	table := func(n, groups int, acct bool) string {
		var b strings.Builder
		if acct {
			b.WriteString("id,pgrp,grp,x\n")
		} else {
			b.WriteString("id,grp,y\n")
		}
		for i := range n {
			if acct {
				fmt.Fprintf(&b, "a%d,0,%d,%d\n", i, i%groups, i)
			} else {
				fmt.Fprintf(&b, "c%d,%d,%d\n", i, i%groups, -i-1)
			}
		}
		return b.String()
	}
	files["accounts.csv"] = table(30_000, 1, true)
	files["cards.csv"] = table(30_000, 1, false)
	files["big_accounts.csv"] = table(400_000, 10, true)
	files["big_cards.csv"] = table(400_000, 10, false)
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type workerProc struct {
	t      *testing.T
	cmd    *exec.Cmd
	base   string // http://host:port
	stderr *syncBuffer
	exited chan struct{}
	err    error // Wait's, once exited is closed
}

// startWorker starts the worker on a free port (--listen 127.0.0.1:0) and
// reads the bound address from its stdout.
func startWorker(t *testing.T, dir string, env []string, args ...string) *workerProc {
	t.Helper()
	args = append([]string{"worker", dir, "--listen", "127.0.0.1:0", "--log-level", "debug"}, args...)
	cmd := exec.Command(linkaudBin, args...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &workerProc{t: t, cmd: cmd, stderr: &syncBuffer{}, exited: make(chan struct{})}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "linkaud worker: listening on "); ok {
				addr <- a
			}
		}
		// Wait closes stdout: read it to the end first.
		p.err = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("worker stderr:\n%s", p.stderr.String())
		}
	})
	select {
	case p.base = <-addr:
	case <-p.exited:
		t.Fatalf("worker exited before listening: %v\n%s", p.err, p.stderr.String())
	case <-time.After(2 * time.Minute):
		t.Fatalf("worker not listening after 2 minutes\n%s", p.stderr.String())
	}
	return p
}

// pollDeadline is generous: the machine may be loaded. Polls are short.
const (
	pollDeadline = 3 * time.Minute
	pollEvery    = 50 * time.Millisecond
)

// eventually polls cond until it holds; cond returns a description of
// what it saw, for the failure message.
func (p *workerProc) eventually(what string, cond func() (bool, string)) {
	p.t.Helper()
	deadline := time.Now().Add(pollDeadline)
	var last string
	for time.Now().Before(deadline) {
		var ok bool
		if ok, last = cond(); ok {
			return
		}
		select {
		case <-p.exited:
			p.t.Fatalf("worker exited (%v) while waiting for %s; last: %s", p.err, what, last)
		case <-time.After(pollEvery):
		}
	}
	p.t.Fatalf("timed out waiting for %s; last: %s", what, last)
}

// do sends a request and returns the status and body.
func (p *workerProc) do(method, path, token string) (int, []byte) {
	p.t.Helper()
	req, err := http.NewRequest(method, p.base+path, nil)
	if err != nil {
		p.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return resp.StatusCode, body
}

// post sends an authorized mutation and wants want.
func (p *workerProc) post(path string, want int) []byte {
	p.t.Helper()
	code, body := p.do("POST", path, testToken)
	if code != want {
		p.t.Fatalf("POST %s: %d %s, want %d", path, code, body, want)
	}
	return body
}

func (p *workerProc) audience(name string) web.Audience {
	p.t.Helper()
	code, body := p.do("GET", "/audiences/"+name, "")
	if code != http.StatusOK {
		p.t.Fatalf("GET /audiences/%s: %d %s", name, code, body)
	}
	var a web.Audience
	if err := json.Unmarshal(body, &a); err != nil {
		p.t.Fatalf("%s: %v", body, err)
	}
	return a
}

// metrics scrapes /metrics.
func (p *workerProc) metrics() map[string]*dto.MetricFamily {
	p.t.Helper()
	code, body := p.do("GET", "/metrics", "")
	if code != http.StatusOK {
		p.t.Fatalf("GET /metrics: %d", code)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(bytes.NewReader(body))
	if err != nil {
		p.t.Fatalf("parsing /metrics: %v", err)
	}
	return mfs
}

// metric returns the value of the counter or gauge name with the given
// labels (a sum over series matching them), and whether any matched.
func metric(mfs map[string]*dto.MetricFamily, name string, labels ...string) (float64, bool) {
	mf := mfs[name]
	if mf == nil {
		return 0, false
	}
	var sum float64
	found := false
next:
	for _, m := range mf.GetMetric() {
		for i := 0; i+1 < len(labels); i += 2 {
			ok := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					ok = true
				}
			}
			if !ok {
				continue next
			}
		}
		found = true
		switch {
		case m.Counter != nil:
			sum += m.GetCounter().GetValue()
		case m.Gauge != nil:
			sum += m.GetGauge().GetValue()
		case m.Histogram != nil:
			sum += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return sum, found
}

// stop sends sig and waits for the exit; it returns the exit code.
func (p *workerProc) stop(sig os.Signal) int {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
	select {
	case <-p.exited:
	case <-time.After(pollDeadline):
		p.t.Fatalf("worker still running %v after %s", sig, pollDeadline)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		p.t.Fatal(p.err)
	}
	return 0
}

// hookServer is the webhook receiver: it checks each request's signature
// as the webhook destination documents it (HMAC-SHA256 of the raw body
// with the secret, "sha256=<hex>" in X-Linkaud-Signature) and records the
// events. The first request has its connection closed and the second is
// answered 503, so delivery must retry, and an error quoting the URL is
// logged.
type hookServer struct {
	*httptest.Server
	mu       sync.Mutex
	requests int
	badSig   int
	events   []map[string]any
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.requests++
		switch h.requests {
		case 1:
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		case 2:
			http.Error(w, "try later", http.StatusServiceUnavailable)
			return
		}
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		if r.Header.Get("X-Linkaud-Signature") != "sha256="+hex.EncodeToString(mac.Sum(nil)) || r.URL.Query().Get("key") != hookKey {
			h.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var batch struct{ Batch []map[string]any }
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.events = append(h.events, batch.Batch...)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) received() (events []map[string]any, requests, badSig int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.events...), h.requests, h.badSig
}

func writeWorkerFiles(t *testing.T, dir, audiences string) {
	t.Helper()
	for name, body := range map[string]string{"ws.la": workerWorkspace, "audiences.la": audiences} {
		// Write a temporary file and rename it over the old one, as
		// editors do, so the watcher never sees a half-written file.
		tmp := filepath.Join(dir, "."+name+".tmp")
		if err := os.WriteFile(tmp, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func workerEnv(hook *hookServer) []string {
	return []string{
		web.TokenEnv + "=" + testToken,
		"HOOK_URL=" + hook.URL + "/hook?key=" + hookKey,
		"HOOK_SECRET=" + hookSecret,
	}
}

// checkLogs wants every stderr line to be a JSON log record (stderr is not
// a terminal) and no secret anywhere in them.
func checkLogs(t *testing.T, stderr string) {
	t.Helper()
	for _, line := range strings.Split(strings.TrimSpace(stderr), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("stderr line is not a JSON record: %q", line)
		}
	}
	for _, secret := range []string{testToken, hookSecret, hookKey} {
		if strings.Contains(stderr, secret) {
			t.Errorf("the worker logged a secret (%s…)", secret[:4])
		}
	}
}

func TestWorker(t *testing.T) {
	dir := t.TempDir()
	writeWorkerData(t, dir)
	writeWorkerFiles(t, dir, workerAudiences(fastAudience))
	hook := newHookServer(t)
	p := startWorker(t, dir, workerEnv(hook), "--max-concurrent", "2", "--deliver-interval", "200ms")

	if code, body := p.do("GET", "/healthz", ""); code != http.StatusOK || !strings.Contains(string(body), `"ok"`) {
		t.Fatalf("healthz: %d %s", code, body)
	}

	// Mutations need the token; reads do not.
	for _, tok := range []string{"", "wrong", testToken + "x", testToken[:len(testToken)-1]} {
		if code, body := p.do("POST", "/audiences/fast/enable", tok); code != http.StatusUnauthorized {
			t.Fatalf("enable with token %q: %d %s", tok, code, body)
		}
	}
	if code, _ := p.do("GET", "/audiences/fast/enable", testToken); code != http.StatusMethodNotAllowed && code != http.StatusNotFound {
		t.Fatalf("GET on a mutation: %d", code)
	}
	p.post("/audiences/nope/enable", http.StatusNotFound)
	if code, _ := p.do("GET", "/audiences/nope", ""); code != http.StatusNotFound {
		t.Fatalf("GET unknown audience: %d", code)
	}
	if a := p.audience("fast"); a.Enabled || a.Status != "Disabled" || a.Runs != 0 || a.NextRun != nil || a.Schedule != "every 1s" {
		t.Fatalf("fast before enabling: %+v", a)
	}

	// Scheduled runs.
	p.post("/audiences/fast/enable", http.StatusOK)
	p.eventually("fast to run twice on its schedule", func() (bool, string) {
		a := p.audience("fast")
		return a.Runs >= 2 && a.Status == "Live" && a.Members == 2, fmt.Sprintf("%+v", a)
	})
	if a := p.audience("fast"); len(a.History) < 2 || !a.History[0].OK || a.LastCounts == nil || a.LastRun == nil {
		t.Fatalf("fast's history: %+v", a)
	}

	// A manual audience runs only when asked.
	p.post("/audiences/manual_one/run", http.StatusConflict) // disabled
	var m web.Audience
	if err := json.Unmarshal(p.post("/audiences/manual_one/enable", http.StatusOK), &m); err != nil {
		t.Fatal(err)
	}
	if !m.Enabled || m.NextRun != nil || m.Runs != 0 {
		t.Fatalf("manual_one enabled: %+v", m)
	}
	p.post("/audiences/manual_one/run", http.StatusAccepted)
	p.eventually("manual_one to run once", func() (bool, string) {
		a := p.audience("manual_one")
		return a.Runs == 1 && a.Status == "Live" && a.Members == 1, fmt.Sprintf("%+v", a)
	})
	fastRuns := p.audience("fast").Runs
	p.eventually("fast to run twice more", func() (bool, string) {
		a := p.audience("fast")
		return a.Runs >= fastRuns+2, fmt.Sprintf("%+v", a)
	})
	if a := p.audience("manual_one"); a.Runs != 1 || a.NextRun != nil {
		t.Fatalf("manual_one ran on its own: %+v", a)
	}

	// The concurrency limit: four slow audiences every second, two slots
	// (fast shares them). The gauge is sampled, the peak kept by the worker.
	for i := 1; i <= 4; i++ {
		p.post(fmt.Sprintf("/audiences/heavy%d/enable", i), http.StatusOK)
	}
	maxSeen := 0.0
	p.eventually("every heavy audience to run twice", func() (bool, string) {
		mfs := p.metrics()
		running, _ := metric(mfs, "linkaud_cycles_running")
		maxSeen = max(maxSeen, running)
		if running > 2 {
			t.Fatalf("%v cycles running with --max-concurrent 2", running)
		}
		var seen []string
		done := true
		for i := 1; i <= 4; i++ {
			n, _ := metric(mfs, "linkaud_cycles_total", "audience", fmt.Sprintf("heavy%d", i), "result", "ok")
			seen = append(seen, fmt.Sprint(n))
			done = done && n >= 2
		}
		return done, "ok runs " + strings.Join(seen, ",")
	})
	mfs := p.metrics()
	if peak, _ := metric(mfs, "linkaud_cycles_running_peak"); peak != 2 {
		t.Fatalf("peak of running cycles %v, want 2 (the limit, reached)", peak)
	}
	if delayed, _ := metric(mfs, "linkaud_cycles_delayed_total"); delayed == 0 {
		t.Fatal("no run ever waited for a slot: the test did not load the worker")
	}
	if n, _ := metric(mfs, "linkaud_cycle_step_duration_seconds", "step", "query"); n < 2 {
		t.Fatalf("query step durations: %v observations", n)
	}
	if d, ok := metric(mfs, "linkaud_audience_last_cycle_duration_seconds", "audience", "heavy1", "step", "query"); !ok || d <= 0 {
		t.Fatalf("heavy1's last query step: %v, %v", d, ok)
	}
	t.Logf("running cycles: at most %v seen by sampling, peak 2", maxSeen)
	for i := 1; i <= 4; i++ {
		p.post(fmt.Sprintf("/audiences/heavy%d/disable", i), http.StatusOK)
	}

	// Delivery: the webhook failed twice, then got the events, signed.
	p.eventually("the webhook to receive fast's entries", func() (bool, string) {
		evs, reqs, bad := hook.received()
		return len(evs) >= 2 && bad == 0, fmt.Sprintf("%d events, %d requests, %d bad signatures", len(evs), reqs, bad)
	})
	p.eventually("delivery metrics", func() (bool, string) {
		mfs := p.metrics()
		retried, _ := metric(mfs, "linkaud_delivery_errors_total", "destination", "hook", "kind", "retried")
		delivered, _ := metric(mfs, "linkaud_events_delivered_total", "destination", "hook", "event", "Audience Entered")
		emitted, _ := metric(mfs, "linkaud_events_emitted_total", "destination", "audit", "event", "Audience Entered")
		_, backlog := metric(mfs, "linkaud_outbox_backlog", "destination", "hook")
		_, dead := metric(mfs, "linkaud_dead_letters", "destination", "hook")
		members, _ := metric(mfs, "linkaud_audience_members", "audience", "fast")
		return retried >= 1 && delivered >= 2 && emitted >= 2 && backlog && dead && members == 2,
			fmt.Sprintf("retried %v delivered %v emitted %v backlog gauge %v dead-letter gauge %v members %v", retried, delivered, emitted, backlog, dead, members)
	})

	// Reload on file change: the edit is a new version, whose next run
	// diffs against the old membership (u2 enters).
	v1 := p.audience("fast").Version
	writeWorkerFiles(t, dir, workerAudiences(fastEdited))
	p.eventually("the edit to be live", func() (bool, string) {
		a := p.audience("fast")
		return a.Version != v1 && a.StateVersion == a.Version && a.Members == 3 && a.Description == "Gold and silver profiles", fmt.Sprintf("%+v", a)
	})
	if a := p.audience("fast"); a.History[0].Version != a.Version {
		t.Fatalf("last run not on the new version: %+v", a.History[0])
	}
	// A broken workspace is rejected, the old definitions keep running.
	v2 := p.audience("fast").Version
	writeWorkerFiles(t, dir, workerAudiences(fastEdited)+"\naudience broken {\n  match profile -> acount\n}\n")
	p.eventually("the broken workspace to be rejected", func() (bool, string) {
		n, _ := metric(p.metrics(), "linkaud_reloads_total", "result", "rejected")
		return n >= 1, fmt.Sprint(n, " rejected")
	})
	if !strings.Contains(p.stderr.String(), "audiences.la:") || !strings.Contains(p.stderr.String(), "did you mean account?") {
		t.Fatalf("the rejected reload's diagnostics are not in the log:\n%s", p.stderr.String())
	}
	if code, _ := p.do("GET", "/audiences/broken", ""); code != http.StatusNotFound {
		t.Fatalf("the broken workspace's audience exists: %d", code)
	}
	runs := p.audience("fast").Runs
	p.eventually("fast to keep running its definition", func() (bool, string) {
		a := p.audience("fast")
		return a.Runs > runs && a.Version == v2 && a.History[0].Version == v2, fmt.Sprintf("%+v", a)
	})

	// SIGTERM: exit 0, the state intact and closed (it opens again).
	last := p.audience("fast")
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	stderr := p.stderr.String()
	checkLogs(t, stderr)
	for _, want := range []string{`"msg":"worker stopping"`, `"msg":"worker stopped"`, `"msg":"worker exited"`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %s", want)
		}
	}
	st, err := diff.Open(filepath.Join(dir, "state"), diff.Options{})
	if err != nil {
		t.Fatalf("reopening the state: %v", err)
	}
	defer st.Close()
	fast, err := st.State("fast")
	if err != nil {
		t.Fatal(err)
	}
	if !fast.Enabled || fast.Status != diff.Live || fast.Members != 3 || fast.Version != v2 || fast.Generation < last.Generation {
		t.Fatalf("fast's state after the stop: %+v (last seen %+v)", fast, last)
	}
	if mo, _ := st.State("manual_one"); mo.Runs != 1 || !mo.Enabled {
		t.Fatalf("manual_one's state: %+v", mo)
	}
	if h, _ := st.State("heavy1"); h.Enabled || h.Runs < 2 {
		t.Fatalf("heavy1's state: %+v", h)
	}
	if backlog, err := st.Backlogs(); err != nil || len(backlog) != 0 {
		t.Fatalf("outbox after the stop: %v %v (deliveries were not flushed)", backlog, err)
	}
	evs, _, _ := hook.received()
	var got []string
	for _, ev := range evs {
		got = append(got, fmt.Sprint(ev["event"], " ", ev["userId"]))
	}
	slices.Sort(got)
	got = slices.Compact(got)
	if want := []string{"Audience Entered u1", "Audience Entered u2", "Audience Entered u3"}; !slices.Equal(got, want) {
		t.Fatalf("webhook events %v, want %v", got, want)
	}
}

// TestWorkerAbandonAndSIGHUP reloads on SIGHUP with file watching off, then
// stops while a cycle runs far longer than --shutdown-timeout: the cycle is
// abandoned, the worker exits 0, and the abandoned audience kept its
// previous state.
func TestWorkerAbandonAndSIGHUP(t *testing.T) {
	dir := t.TempDir()
	writeWorkerData(t, dir)
	writeWorkerFiles(t, dir, workerAudiences(fastAudience))
	hook := newHookServer(t)
	p := startWorker(t, dir, workerEnv(hook), "--no-watch", "--shutdown-timeout", "3s")

	p.post("/audiences/fast/enable", http.StatusOK)
	p.eventually("fast to run", func() (bool, string) {
		a := p.audience("fast")
		return a.Runs >= 1 && a.Status == "Live", fmt.Sprintf("%+v", a)
	})
	v1 := p.audience("fast").Version
	writeWorkerFiles(t, dir, workerAudiences(fastEdited))
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	p.eventually("SIGHUP to reload the edit", func() (bool, string) {
		a := p.audience("fast")
		return a.Version != v1 && a.Members == 3, fmt.Sprintf("%+v", a)
	})
	if n, _ := metric(p.metrics(), "linkaud_reloads_total", "result", "ok"); n != 1 {
		t.Fatalf("%v reloads, want 1 (SIGHUP; no watching)", n)
	}

	// The state is locked while the worker runs: a second process is
	// told to use the API.
	second := exec.Command(linkaudBin, "worker", dir, "--listen", "127.0.0.1:0")
	out, err := second.CombinedOutput()
	if second.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "in use by another linkaud process") || !strings.Contains(string(out), "HTTP API") {
		t.Fatalf("a second worker on the same state: %v\n%s", err, out)
	}

	// Only slow runs when the stop comes (fast, disabled, keeps its state
	// whatever the machine's load).
	p.post("/audiences/fast/disable", http.StatusOK)
	p.eventually("fast to finish its last run", func() (bool, string) {
		a := p.audience("fast")
		return !a.Running && a.Status == "Disabled", fmt.Sprintf("%+v", a)
	})
	p.post("/audiences/slow/enable", http.StatusOK)
	p.eventually("slow to be running", func() (bool, string) {
		a := p.audience("slow")
		return a.Running, fmt.Sprintf("%+v", a)
	})
	p.post("/audiences/slow/run", http.StatusConflict) // already running
	fast := p.audience("fast")
	if code := p.stop(syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM", code)
	}
	stderr := p.stderr.String()
	checkLogs(t, stderr)
	if !strings.Contains(stderr, "abandoning running cycles") {
		t.Fatalf("no abandoned cycle logged:\n%s", stderr)
	}
	st, err := diff.Open(filepath.Join(dir, "state"), diff.Options{})
	if err != nil {
		t.Fatalf("reopening the state: %v", err)
	}
	defer st.Close()
	slow, err := st.State("slow")
	if err != nil {
		t.Fatal(err)
	}
	if slow.Status != diff.Failed || slow.Generation != 0 || slow.Runs != 1 || !slow.Enabled {
		t.Fatalf("slow after the abandoned cycle: %+v", slow)
	}
	runs, err := st.Runs("slow")
	if err != nil || len(runs) != 1 || runs[0].OK {
		t.Fatalf("slow's runs: %+v %v", runs, err)
	}
	got, err := st.State("fast")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != diff.Disabled || got.Members != 3 || got.Generation != fast.Generation {
		t.Fatalf("fast after the stop: %+v (last seen %+v)", got, fast)
	}
}
