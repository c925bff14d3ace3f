package security

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// marker starts every planted secret, so that even a part of one is found.
const marker = "sEcReT-"

// planted holds the secret values of a test and the environment that
// carries them.
type planted struct {
	values map[string]string // label -> value
	env    []string
}

func newPlanted() *planted { return &planted{values: map[string]string{}} }

// add makes a secret for label; the caller puts it in the environment
// (alone or inside a URL or DSN) with setenv.
func (p *planted) add(label string) string {
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	v := marker + label + "-" + hex.EncodeToString(b)
	p.values[label] = v
	return v
}

func (p *planted) setenv(name, value string) { p.env = append(p.env, name+"="+value) }

// leaks lists every planted secret, or recognisable part or encoding of
// one, found in text: the marker, each value's random half-parts (a value
// cut short), its base64 forms (alone, and as the Basic credential of
// site_id "site-1") and its URL-escaped form.
func (p *planted) leaks(text string) []string {
	var found []string
	if strings.Contains(text, marker) {
		found = append(found, "the marker "+marker)
	}
	for label, v := range p.values {
		r := v[strings.LastIndexByte(v, '-')+1:]
		forms := map[string]string{
			"start of the random part": r[:8], "end of the random part": r[8:],
			"base64":                       base64.StdEncoding.EncodeToString([]byte(v)),
			"base64 Basic site-1:":         base64.StdEncoding.EncodeToString([]byte("site-1:" + v)),
			"base64 url":                   base64.URLEncoding.EncodeToString([]byte(v)),
			"query-escaped":                url.QueryEscape(v),
			"base64 of Basic without site": base64.StdEncoding.EncodeToString([]byte(":" + v)),
		}
		for what, f := range forms {
			if strings.Contains(text, f) {
				found = append(found, fmt.Sprintf("%s of %s", what, label))
			}
		}
	}
	slices.Sort(found)
	return found
}

// scanner accumulates checked outputs and counts the checks.
type leakScanner struct {
	p      *planted
	checks int
	blobs  int
}

// check fails the test if text (named what) holds a planted secret or a
// panic.
func (s *leakScanner) check(t *testing.T, what, text string) {
	t.Helper()
	s.blobs++
	s.checks += len(s.p.values)
	if l := s.p.leaks(text); len(l) > 0 {
		t.Errorf("%s leaks %s:\n%s", what, strings.Join(l, ", "), excerpt(text, s.p))
	}
	if strings.Contains(text, "panic:") || strings.Contains(text, "goroutine ") {
		t.Errorf("%s shows a panic:\n%s", what, text)
	}
}

func (s *leakScanner) result(t *testing.T, r result) {
	t.Helper()
	s.check(t, fmt.Sprintf("linkaud %s stdout", strings.Join(r.args, " ")), r.stdout)
	s.check(t, fmt.Sprintf("linkaud %s stderr", strings.Join(r.args, " ")), r.stderr)
}

// excerpt shows the lines of text holding a leak.
func excerpt(text string, p *planted) string {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		if len(p.leaks(line)) > 0 {
			if len(line) > 600 {
				line = line[:600] + "…"
			}
			out = append(out, "  "+line)
		}
	}
	if len(out) == 0 {
		return "  (across lines)"
	}
	return strings.Join(out, "\n")
}

// vendor is an HTTP destination endpoint (webhook, Braze, Iterable,
// Customer.io) whose answer the test sets: 200, or a failure whose body
// echoes the credential it received — once whole, and once placed across
// the 300th byte, where error messages cut a response body short.
type vendor struct {
	srv    *httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	hits   map[string]int
}

func newVendor(t *testing.T) *vendor {
	v := &vendor{hits: map[string]int{}}
	v.status.Store(200)
	v.srv = httptest.NewServer(http.HandlerFunc(v.serve))
	t.Cleanup(v.srv.Close)
	return v
}

func (v *vendor) serve(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	v.mu.Lock()
	v.hits[r.URL.Path]++
	v.mu.Unlock()
	code := int(v.status.Load())
	if code == 200 {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"message":"success","code":"Success"}`)
		return
	}
	cred := r.Header.Get("Api-Key")
	if a := r.Header.Get("Authorization"); a != "" {
		_, cred, _ = strings.Cut(a, " ")
	}
	if tok := r.URL.Query().Get("token"); tok != "" {
		cred = tok
	}
	first := "invalid credential " + cred
	pad := strings.Repeat("x", max(1, 300-8-len(first)-2))
	w.WriteHeader(code)
	io.WriteString(w, first+" "+pad+" "+cred)
}

func (v *vendor) total() int {
	v.mu.Lock()
	defer v.mu.Unlock()
	n := 0
	for _, c := range v.hits {
		n += c
	}
	return n
}

const secretsDestinations = `
destination hook     { type webhook    url env("HOOK_URL")  secret env("HOOK_SECRET") }
destination braze    { type braze      endpoint env("VENDOR_URL")  api_key env("BRAZE_KEY") }
destination iterable { type iterable   endpoint env("VENDOR_URL")  api_key env("ITERABLE_KEY") }
destination cio      { type customerio endpoint env("VENDOR_URL")  site_id "site-1"  api_key env("CIO_KEY") }
destination kafka_ok   { type kafka brokers env("KAFKA_BROKERS")  topic "la"  sasl_mechanism "PLAIN"  sasl_user "admin"  sasl_password env("KAFKA_PASS") }
destination kafka_auth { type kafka brokers env("KAFKA_BROKERS")  topic "la"  sasl_mechanism "PLAIN"  sasl_user "admin"  sasl_password env("KAFKA_BAD_PASS")  timeout 3s }
destination kafka_down { type kafka brokers env("KAFKA_DOWN")  topic "la"  sasl_mechanism "PLAIN"  sasl_user "admin"  sasl_password env("KAFKA_PASS")  timeout 3s }
`

var secretDestNames = []string{"hook", "braze", "iterable", "cio", "kafka_ok", "kafka_auth", "kafka_down"}

func secretsActivations() string {
	var b strings.Builder
	for _, d := range secretDestNames {
		fmt.Fprintf(&b, "activation to_%s { audience platinum_cat_owners  destination %s  event audience_entered  send_current true }\n", d, d)
	}
	return b.String()
}

// closedPort is a local port nothing listens on.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestPlantedSecrets plants a distinct secret in every env("…") secret
// setting (Kafka sasl_password, webhook secret and a token in its URL,
// Braze / Iterable / Customer.io api_key, Snowflake dsn password and
// private key, LINKAUD_API_TOKEN) and reads everything linkaud shows: the
// output of check, plan (both dialects), run and worker with debug logs in
// text and JSON — while deliveries succeed, fail with 500 and with 401
// answers that echo the credential, and while Kafka refuses the SASL
// password or cannot be reached —, audiences status/list/runs --json,
// deadletters list, /metrics and every HTTP API response. None may hold a
// secret, a part of one, or an encoding of one.
func TestPlantedSecrets(t *testing.T) {
	p := newPlanted()
	scan := &leakScanner{p: p}

	kafkaPass := p.add("kafka")
	broker, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "admin", kafkaPass),
		kfake.AllowAutoTopicCreation(), kfake.SeedTopics(1, "la"))
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	vend := newVendor(t)
	p.setenv("HOOK_URL", vend.srv.URL+"/hook?token="+p.add("hookurl"))
	p.setenv("HOOK_SECRET", p.add("hooksecret"))
	p.setenv("VENDOR_URL", vend.srv.URL)
	p.setenv("BRAZE_KEY", p.add("braze"))
	p.setenv("ITERABLE_KEY", p.add("iterable"))
	p.setenv("CIO_KEY", p.add("cio"))
	p.setenv("KAFKA_BROKERS", strings.Join(broker.ListenAddrs(), ","))
	p.setenv("KAFKA_PASS", kafkaPass)
	p.setenv("KAFKA_BAD_PASS", p.add("kafkabad"))
	p.setenv("KAFKA_DOWN", closedPort(t))
	token := p.add("apitoken")
	sfPassword, sfKey := p.add("sfpassword"), p.add("sfkey")
	env := p.env

	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "ws"), os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ws", "destinations.la"), []byte(secretsDestinations+secretsActivations()), 0o644); err != nil {
		t.Fatal(err)
	}
	debug := func(format string, args ...string) []string {
		return append(args, "--log-level", "debug", "--log-format", format)
	}

	t.Run("check_plan", func(t *testing.T) {
		for _, format := range []string{"text", "json"} {
			scan.result(t, run(t, dir, env, debug(format, "check", "ws")...))
			for _, d := range []string{"duckdb", "snowflake"} {
				r := run(t, dir, env, debug(format, "plan", "ws", "--audience", "platinum_cat_owners", "--dialect", d)...)
				if r.code != 0 {
					t.Fatalf("%s", r)
				}
				scan.result(t, r)
			}
		}
	})

	t.Run("run", func(t *testing.T) {
		r := run(t, dir, env, "audiences", "ws", "enable", "platinum_cat_owners")
		if r.code != 0 {
			t.Fatalf("%s", r)
		}
		scan.result(t, r)
		// Run 1: the HTTP vendors and kafka_ok accept; kafka_auth
		// (wrong SASL password) and kafka_down (no broker) fail.
		r = run(t, dir, env, debug("json", "run", "ws", "--now", "2026-03-15T12:00:00Z", "--retries", "0")...)
		scan.result(t, r)
		if vend.total() == 0 {
			t.Fatalf("no request reached the vendors:\n%s", r)
		}
		if !strings.Contains(r.stdout, "kafka_ok (kafka): 3 delivered") {
			t.Errorf("kafka_ok with the right SASL password should deliver:\n%s", r)
		}
		for _, d := range []string{"kafka_auth", "kafka_down"} {
			if !strings.Contains(r.stdout, d+" (kafka): 0 delivered") {
				t.Errorf("%s should fail:\n%s", d, r)
			}
		}
		// Run 2: a new member; the vendors answer 500 echoing the
		// credential. Run 3: they answer 401, so the backlog is
		// dead-lettered with the answer as reason.
		if err := os.WriteFile(filepath.Join(dir, "ws", "data", "pets.csv"), []byte("id,name,type\np1,Tom,cat\np2,Rex,dog\np3,Felix,cat\np4,Kitty,cat\np5,Nemo,fish\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		vend.status.Store(500)
		r = run(t, dir, env, debug("text", "run", "ws", "--now", "2026-03-15T13:00:00Z", "--retries", "0")...)
		scan.result(t, r)
		if !strings.Contains(r.stdout, "HTTP 500") {
			t.Errorf("run 2 should report the vendors' 500s:\n%s", r)
		}
		// Run 3: they answer 401 (a revoked key): the vendors halt,
		// nothing is dead-lettered. Run 4: 400 echoing the credential:
		// the backlog is dead-lettered with the answer as reason.
		vend.status.Store(401)
		r = run(t, dir, env, debug("json", "run", "ws", "--deliver-only", "--retries", "0")...)
		scan.result(t, r)
		if !strings.Contains(r.stdout, "HALTED") || regexp.MustCompile(`\d+ dead-lettered`).MatchString(r.stdout) {
			t.Errorf("run 3 should halt the vendors on the 401s, dead-lettering nothing:\n%s", r)
		}
		vend.status.Store(400)
		r = run(t, dir, env, debug("json", "run", "ws", "--deliver-only", "--retries", "0")...)
		scan.result(t, r)
		if !strings.Contains(r.stdout, "dead-lettered") {
			t.Errorf("run 4 should dead-letter the 400s:\n%s", r)
		}
	})

	t.Run("state", func(t *testing.T) {
		for _, args := range [][]string{
			{"audiences", "ws", "status", "platinum_cat_owners", "--json"},
			{"audiences", "ws", "status", "platinum_cat_owners"},
			{"audiences", "ws", "list", "--json"},
			{"audiences", "ws", "runs", "platinum_cat_owners", "--json"},
			{"deadletters", "ws", "list"},
			{"deadletters", "ws", "list", "--json"},
		} {
			r := run(t, dir, env, debug("json", args...)...)
			if r.code != 0 {
				t.Errorf("%s", r)
			}
			scan.result(t, r)
		}
		if r := run(t, dir, env, "deadletters", "ws", "list"); !strings.Contains(r.stdout, "HTTP 400") {
			t.Errorf("the dead letters should give the 400 as reason:\n%s", r)
		}
	})

	// The worker, once per log format: the dead letters go back to the
	// outbox and fail again; every API endpoint answers, with and without
	// the token.
	for _, format := range []string{"json", "text"} {
		t.Run("worker_"+format, func(t *testing.T) {
			if r := run(t, dir, env, "deadletters", "ws", "retry"); r.code != 0 {
				t.Fatalf("%s", r)
			}
			w := startWorker(t, dir, append(slices.Clone(env), "LINKAUD_API_TOKEN="+token),
				debug(format, "worker", "ws", "--listen", "127.0.0.1:0", "--deliver-interval", "500ms", "--shutdown-timeout", "2s", "--no-watch")...)
			apiResponses(t, w.url, token, p.values["hooksecret"], scan)
			// Wait until every failing destination has failed in the
			// worker: the vendors dead-letter, the Kafka ones retry.
			w.waitLog(t, func(logs string) bool {
				for _, d := range []string{"hook", "braze", "iterable", "cio", "kafka_auth", "kafka_down"} {
					re := regexp.MustCompile(`(?m)^.*(dead-letter|delivery failed).*\b` + d + `\b.*$`)
					if !re.MatchString(logs) {
						return false
					}
				}
				return true
			})
			scan.check(t, "worker ("+format+") output", w.stop(t))
		})
	}

	t.Run("snowflake", func(t *testing.T) { snowflakeSecrets(t, dir, sfPassword, sfKey, scan) })
	t.Run("databricks", func(t *testing.T) { databricksSecrets(t, dir, p.add("databricks"), scan) })

	t.Logf("secrets: %d planted values, %d outputs read, %d checks (outputs × values, each also for parts and encodings)", len(p.values), scan.blobs, scan.checks)
}

// worker is a running `linkaud worker`.
type worker struct {
	cmd  *exec.Cmd
	url  string
	mu   sync.Mutex
	out  strings.Builder
	done chan struct{}
}

func (w *worker) write(p []byte) {
	w.mu.Lock()
	w.out.Write(p)
	w.mu.Unlock()
}

func (w *worker) logs() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.out.String()
}

type writerFunc func([]byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

// startWorker starts the worker with extra added to the environment and
// waits for the address it prints.
func startWorker(t *testing.T, dir string, extra []string, args ...string) *worker {
	t.Helper()
	w, err := spawnWorker(t, dir, append(os.Environ(), extra...), args...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// spawnWorker starts the worker with exactly env and waits for the address
// it prints; an exit before that is an error holding its output.
func spawnWorker(t *testing.T, dir string, env []string, args ...string) (*worker, error) {
	t.Helper()
	w := &worker{done: make(chan struct{})}
	w.cmd = exec.Command(linkaud(t), args...)
	w.cmd.Dir = dir
	w.cmd.Env = env
	w.cmd.Stderr = writerFunc(w.write)
	stdout, err := w.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := w.cmd.Start(); err != nil {
		return nil, err
	}
	urls := make(chan string, 1)
	go func() {
		defer close(w.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			line := sc.Text()
			w.write([]byte(line + "\n"))
			if u, ok := strings.CutPrefix(line, "linkaud worker: listening on "); ok {
				urls <- u
			}
		}
	}()
	t.Cleanup(func() {
		if w.cmd.ProcessState == nil {
			w.cmd.Process.Kill()
			w.cmd.Wait()
		}
	})
	select {
	case w.url = <-urls:
		return w, nil
	case <-w.done:
		w.cmd.Wait()
		return nil, fmt.Errorf("the worker exited before listening:\n%s", w.logs())
	case <-time.After(time.Minute):
		return nil, fmt.Errorf("the worker did not listen within a minute:\n%s", w.logs())
	}
}

// waitLog waits until ok holds for the worker's output so far.
func (w *worker) waitLog(t *testing.T, ok func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for !ok(w.logs()) {
		if time.Now().After(deadline) {
			t.Fatalf("the worker's output never showed what the test waits for:\n%s", w.logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stop sends SIGTERM, waits for the exit and returns the whole output.
func (w *worker) stop(t *testing.T) string {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-w.done
	if err := w.cmd.Wait(); err != nil {
		t.Errorf("worker exit: %v\n%s", err, w.logs())
	}
	return w.logs()
}

// apiResponses calls every endpoint of the API in every way and checks
// the answers (status lines, headers and bodies) for secrets.
func apiResponses(t *testing.T, base, token, otherSecret string, scan *leakScanner) {
	t.Helper()
	auths := map[string]string{
		"none": "", "wrong": "Bearer not-the-token", "right": "Bearer " + token,
		"another secret": "Bearer " + otherSecret, "basic": "Basic " + base64.StdEncoding.EncodeToString([]byte("admin:"+token)),
	}
	paths := []string{
		"GET /healthz", "GET /metrics", "GET /audiences", "GET /audiences/platinum_cat_owners",
		"GET /audiences/no_such", "GET /nope", "GET /audiences/platinum_cat_owners/run",
		"POST /audiences/platinum_cat_owners/run", "POST /audiences/no_such/run",
		"POST /audiences/platinum_cat_owners/enable", "POST /audiences/outstanding_balance/disable",
		"DELETE /audiences/platinum_cat_owners",
	}
	for _, pth := range paths {
		method, path, _ := strings.Cut(pth, " ")
		for what, auth := range auths {
			req, err := http.NewRequest(method, base+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var hdr strings.Builder
			resp.Header.Write(&hdr)
			scan.check(t, fmt.Sprintf("%s %s (token %s): %s", method, path, what, resp.Status), resp.Status+"\n"+hdr.String()+"\n"+string(body))
		}
	}
}

// snowflakeSecrets checks a Snowflake warehouse whose DSN holds a planted
// password (and, in a second workspace, a planted private key): check,
// plan, check --warehouse and run, which cannot connect.
func snowflakeSecrets(t *testing.T, dir, password, key string, scan *leakScanner) {
	t.Helper()
	// A Snowflake login endpoint that refuses every login, quoting the
	// password it was sent, as a careless server might.
	sfl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Data struct {
				Password string `json:"PASSWORD"`
			} `json:"data"`
		}
		body, _ := io.ReadAll(r.Body)
		if zr, err := gzip.NewReader(bytes.NewReader(body)); err == nil {
			if b, err := io.ReadAll(zr); err == nil {
				body = b
			}
		}
		_ = json.Unmarshal(body, &req)
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{
			"data": nil, "code": "390100", "success": false,
			"message": "Incorrect username or password was specified: " + req.Data.Password,
		})
	}))
	defer sfl.Close()
	host, port, _ := net.SplitHostPort(strings.TrimPrefix(sfl.URL, "http://"))
	dsns := map[string]string{
		"sf":     "admin:" + password + "@" + host + ":" + port + "/DB/PUBLIC?account=acct&protocol=http&loginTimeout=5",
		"sf_jwt": "admin@" + host + ":" + port + "/DB/PUBLIC?account=acct&protocol=http&loginTimeout=5&authenticator=SNOWFLAKE_JWT&privateKey=" + key,
	}
	for name, dsn := range dsns {
		ws := filepath.Join(dir, name)
		if err := os.MkdirAll(ws, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"graph.la", "audiences.la"} {
			b, err := os.ReadFile(filepath.Join("../../testdata/seed", f))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(ws, f), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(ws, "warehouse.la"), []byte(`warehouse { type snowflake  dsn env("SNOWFLAKE_DSN") }`+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env := []string{"SNOWFLAKE_DSN=" + dsn}
		for _, format := range []string{"text", "json"} {
			for _, args := range [][]string{
				{"check", name},
				{"plan", name, "--audience", "outstanding_balance"},
				{"check", name, "--warehouse"},
				{"audiences", name, "enable", "outstanding_balance"},
				{"run", name, "--retries", "0"},
				{"audiences", name, "status", "outstanding_balance", "--json"},
				{"audiences", name, "runs", "outstanding_balance", "--json"},
			} {
				r := run(t, dir, env, append(args, "--log-level", "debug", "--log-format", format)...)
				if name == "sf" && args[0] == "check" && len(args) == 3 && !strings.Contains(r.stderr, "Incorrect username or password") {
					t.Errorf("the login should reach the server and fail there:\n%s", r)
				}
				scan.result(t, r)
			}
		}
	}
}

// databricksSecrets checks a Databricks warehouse whose token is planted:
// check, plan, check --warehouse and run against a workspace that refuses
// the token and, as a careless server might, quotes it in its message.
func databricksSecrets(t *testing.T, dir, token string, scan *leakScanner) {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusForbidden)
		json.NewEncoder(w).Encode(map[string]any{"error_code": "403", "message": "Invalid access token: " + strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")})
	}))
	defer srv.Close()
	ws := filepath.Join(dir, "dbx")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"graph.la", "audiences.la"} {
		b, err := os.ReadFile(filepath.Join("../../testdata/seed", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(ws, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	wh := `warehouse { type databricks  host env("DBX_HOST")  warehouse_id "0123456789abcdef"  token env("DBX_TOKEN") }` + "\n"
	if err := os.WriteFile(filepath.Join(ws, "warehouse.la"), []byte(wh), 0o644); err != nil {
		t.Fatal(err)
	}
	env := []string{"DBX_HOST=" + srv.URL, "DBX_TOKEN=" + token}
	for _, format := range []string{"text", "json"} {
		for _, args := range [][]string{
			{"check", "dbx"},
			{"plan", "dbx", "--audience", "outstanding_balance"},
			{"check", "dbx", "--warehouse"},
			{"audiences", "dbx", "enable", "outstanding_balance"},
			{"run", "dbx", "--retries", "0"},
			{"audiences", "dbx", "status", "outstanding_balance", "--json"},
		} {
			r := run(t, dir, env, append(args, "--log-level", "debug", "--log-format", format)...)
			if args[0] == "check" && len(args) == 3 && !strings.Contains(r.stderr, "Invalid access token") {
				t.Errorf("the request should reach the workspace and fail there:\n%s", r)
			}
			scan.result(t, r)
		}
	}
}
