package web

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// The browser tests drive headless Chromium (Debian's chromium package)
// through the DevTools protocol against a real worker. Without a Chromium
// they skip, unless LINKAUD_REQUIRE_BROWSER=1 (CI sets it), which makes a
// missing browser a failure. Screenshots of each page go to
// LINKAUD_ARTIFACTS (default: a temporary directory, logged).

func chromiumPath(t *testing.T) string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("LINKAUD_REQUIRE_BROWSER") == "1" {
		t.Fatal("LINKAUD_REQUIRE_BROWSER=1 but no chromium on PATH (apt-get install chromium)")
	}
	t.Skip("no chromium on PATH; set LINKAUD_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

type browser struct {
	t         *testing.T
	ctx       context.Context
	base      string
	artifacts string
}

func newBrowser(t *testing.T, base string) *browser {
	path := chromiumPath(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 1000))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancel := chromedp.NewContext(actx)
	// The first run starts the browser and binds its life to bctx: no
	// timeout there; the steps get one.
	if err := chromedp.Do(bctx); err != nil {
		cancel()
		cancelAlloc()
		t.Fatalf("starting %s: %v", path, err)
	}
	ctx, cancelTimeout := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancel(); cancelAlloc() })
	dir := os.Getenv("LINKAUD_ARTIFACTS")
	if dir == "" {
		var err error
		if dir, err = os.MkdirTemp("", "linkaud-console-"); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshots in %s", dir)
	return &browser{t: t, ctx: ctx, base: base, artifacts: dir}
}

func (b *browser) run(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	if err := chromedp.Do(b.ctx, actions...); err != nil {
		b.t.Fatal(err)
	}
}

// open loads path and waits for sel.
func (b *browser) open(path, sel string) {
	b.t.Helper()
	b.run(chromedp.Navigate(b.base+path), chromedp.WaitReady(chromedp.CSS(sel)))
}

func (b *browser) screenshot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.artifacts, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// eval evaluates a JavaScript expression, awaiting a promise.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	v, err := chromedp.Run(b.ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("%s: %v", js, err)
	}
	return v
}

// waitJS polls a JavaScript condition until it holds (a navigation the
// page started has finished, say).
func (b *browser) waitJS(cond string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		ok, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](cond))
		if err == nil && ok {
			return
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (last error %v)", cond, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (b *browser) texts(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q)).map(e => e.textContent.trim())`, sel))
}

func (b *browser) count(sel string) int {
	b.t.Helper()
	return eval[int](b, fmt.Sprintf(`document.querySelectorAll(%q).length`, sel))
}

// TestConsoleInBrowser loads every page of a worker that ran cycles and
// asserts on the DOM Chromium rendered, then logs in and retries a dead
// letter with the button.
func TestConsoleInBrowser(t *testing.T) {
	f := newConsoleFixture(t)
	b := newBrowser(t, f.srv.URL)

	// Audiences: names, statuses, a sparkline with a point per run.
	b.open("/", "#audiences")
	b.screenshot("audiences")
	if got := b.texts("#audiences a.name"); strings.Join(got, ",") != "gold,savers" {
		t.Errorf("audience names %q", got)
	}
	if got := b.texts("#audiences .status"); strings.Join(got, ",") != "Live,Live" {
		t.Errorf("statuses %q", got)
	}
	spark := eval[string](b, `document.querySelector('tr[data-audience="savers"] svg.spark').dataset.points + ' ' +
		document.querySelector('tr[data-audience="savers"] svg.spark polyline').getAttribute('points').split(' ').length`)
	if spark != "3 3" {
		t.Errorf("savers sparkline: %q points, want 3 (one per run)", spark)
	}
	if got := b.texts(`tr[data-audience="savers"] .members`); len(got) != 1 || got[0] != "4" {
		t.Errorf("savers size %q, want 4", got)
	}

	// An audience: charts with a point per run, runs, the alert marked,
	// its definition, SQL per dialect, the path picture, the activation's
	// dead letters.
	b.open("/audience/savers", "#runs")
	b.run(chromedp.WaitReady(chromedp.CSS("#changes-chart canvas")))
	b.screenshot("audience")
	if n := b.count("#members-chart circle"); n != 3 {
		t.Errorf("members chart: %d points, want 3 (runs)", n)
	}
	uplotPoints := eval[int](b, `window.linkaudCharts.length === 1 ? window.linkaudCharts[0].data[0].length : -1`)
	if uplotPoints != 3 {
		t.Errorf("entered/exited chart (uPlot): %d points, want 3", uplotPoints)
	}
	if n := b.count("#runs tbody tr[data-run]"); n != 3 {
		t.Errorf("runs table: %d rows, want 3", n)
	}
	if got := b.texts("#runs tr.alerted td:first-child"); strings.Join(got, ",") != "2" {
		t.Errorf("runs marked by the alert: %q, want run 2", got)
	}
	if got := b.texts("#definition .line"); len(got) != 6 || !strings.HasSuffix(got[0], "audience savers {") || !strings.HasSuffix(got[5], "}") {
		t.Errorf("definition lines %q", got)
	}
	if got := b.texts("details.sql summary"); len(got) != 6 || got[0] != "duckdb" {
		t.Errorf("SQL dialects %q", got)
	}
	if got := b.texts("#path-picture g.node .label"); strings.Join(got, ",") != "profile,account" {
		t.Errorf("path picture nodes %q", got)
	}
	if got := b.texts(`#activations tr[data-activation="savers_crm"] .dead-reason`); len(got) == 0 || !strings.Contains(got[0], "HTTP 400") {
		t.Errorf("activation dead letters %q, want the crm's HTTP 400", got)
	}

	// Members: paged, with their entities; the search narrows them.
	b.open("/audience/savers/members", "#members")
	b.screenshot("members")
	if got := b.texts("#members td.key"); strings.Join(got, ",") != "u1,u2,u3,u4" {
		t.Errorf("members %q", got)
	}
	if got := b.texts(`#members tr[data-profile="u1"] .entity`); strings.Join(got, ",") != "account a1,account a6" {
		t.Errorf("u1's entities %q", got)
	}
	b.run(chromedp.SendKeys(chromedp.CSS("#member-search"), "u3"), chromedp.Submit(chromedp.CSS("#member-search")))
	b.waitJS(`location.search.includes("q=u3") && document.readyState === "complete" && document.querySelector("#members") !== null`)
	if got := b.texts("#members td.key"); strings.Join(got, ",") != "u3" {
		t.Errorf("search u3: %q", got)
	}

	// Why: the search box on the audience page explains a member and a
	// profile that is not one (u9 has no account left in the last data).
	b.open("/audience/savers", "#why-profile")
	b.run(chromedp.SendKeys(chromedp.CSS("#why-profile"), "u1"), chromedp.Submit(chromedp.CSS("#why-profile")))
	b.waitJS(`location.pathname.endsWith("/why") && document.readyState === "complete" && document.querySelector("#why-verdict") !== null`)
	b.screenshot("why")
	if got := b.texts("#why-verdict"); len(got) != 1 || got[0] != "“u1” is a member of savers." {
		t.Errorf("why u1: %q", got)
	}
	if got := b.texts(`#why-tree > li[data-kind="path"].holds .step`); len(got) != 1 || !strings.HasPrefix(got[0], "account: 2 of 2 related rows match") {
		t.Errorf("why u1: path evidence %q", got)
	}
	b.open("/audience/savers/why?profile=u9", "#why-verdict")
	if got := b.texts("#why-verdict"); len(got) != 1 || got[0] != "“u9” is not a member of savers." {
		t.Errorf("why u9: %q", got)
	}
	if got := b.texts(`#why-tree > li[data-kind="path"].fails .step`); len(got) != 1 || !strings.HasPrefix(got[0], "account: 0 of 0 related rows match") {
		t.Errorf("why u9: path evidence %q", got)
	}

	// Deliveries: the crm's dead letters with their reason.
	b.open("/deliveries", "#dead-letters")
	b.screenshot("deliveries")
	reasons := b.texts("#dead-letters .dead-reason")
	if len(reasons) == 0 || !strings.Contains(reasons[0], "HTTP 400 Bad Request") || !strings.Contains(reasons[0], "unknown list id") {
		t.Fatalf("dead letter reasons %q", reasons)
	}
	if got := b.texts(`#destinations tr[data-destination="crm"] td:first-child`); len(got) != 1 {
		t.Errorf("destinations table lacks crm")
	}

	// A POST without the CSRF token is refused, even from the page.
	status := eval[int](b, `fetch('/deliveries/crm/retry', {method: 'POST'}).then(r => r.status)`)
	if status != 403 {
		t.Errorf("POST from the page without the CSRF token: %d, want 403", status)
	}
	// Without a login, the retry button is refused (401).
	b.run(chromedp.Click(chromedp.CSS("#dead-letters button.retry")), chromedp.WaitReady(chromedp.CSS("#error")))
	if got := b.texts("#error"); len(got) != 1 || !strings.Contains(got[0], "Log in") {
		t.Errorf("retry without login: %q", got)
	}

	// Log in, then retry one dead letter with its button.
	b.open("/login?next=/deliveries", "#login-form")
	b.screenshot("login")
	b.run(chromedp.SendKeys(chromedp.CSS("#token"), consoleToken), chromedp.Click(chromedp.CSS("#login-button")),
		chromedp.WaitReady(chromedp.CSS("#dead-letters")))
	cookies := eval[string](b, `document.cookie`)
	if strings.Contains(cookies, sessionCookie) {
		t.Errorf("the session cookie is readable by scripts: %q", cookies)
	}
	before := len(b.texts("#dead-letters tr[data-id]"))
	hits := f.crmHit.get()
	b.run(chromedp.Click(chromedp.CSS("#dead-letters button.retry")), chromedp.WaitReady(chromedp.CSS("#notice")))
	b.screenshot("retried")
	if got := b.texts("#notice"); len(got) != 1 || !strings.HasPrefix(got[0], "1 dead letter(s) of crm back in the outbox") {
		t.Fatalf("after retry: notice %q", got)
	}
	// The retried letter went back to crm (which rejects it again).
	f.waitFor("crm to get the retried letter", func() bool { return f.crmHit.get() > hits })
	t.Logf("dead letters before the retry: %d", before)

	// Logged in, Dry run computes the next cycle of savers and commits
	// nothing: the data has not changed since run 3, so nothing would.
	b.open("/audience/savers", "#dry-run-button")
	b.run(chromedp.Click(chromedp.CSS("#dry-run-button")), chromedp.WaitReady(chromedp.CSS("#dry-run-events")))
	b.screenshot("dryrun")
	if got := b.texts("#dry-run td.members"); strings.Join(got, ",") != "4" {
		t.Errorf("dry run members %q, want 4", got)
	}
	if got := b.texts("#dry-run td.entered, #dry-run td.exited, #dry-run td.events"); strings.Join(got, ",") != "0,0,0" {
		t.Errorf("dry run entered, exited, events %q, want none", got)
	}
	if st, _, _ := f.w.Audience("savers", 0); st.Runs != 3 {
		t.Errorf("the dry run recorded a run: %d runs, want 3", st.Runs)
	}

	// Logged in, Run now on the audience page queues a run.
	b.open("/audience/gold", "#run-button")
	b.run(chromedp.Click(chromedp.CSS("#run-button")), chromedp.WaitReady(chromedp.CSS("#notice")))
	if got := b.texts("#notice"); len(got) != 1 || got[0] != "Run of gold queued." {
		t.Errorf("run now: notice %q", got)
	}
	f.runTo("gold", 2)
}
