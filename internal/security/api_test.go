package security

import (
	"encoding/base64"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// apiWorkspace is a workspace with two audiences and no destination.
func apiWorkspace(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "ws"), os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	if r := run(t, dir, nil, "audiences", "ws", "enable", "platinum_cat_owners"); r.code != 0 {
		t.Fatalf("%s", r)
	}
	return dir
}

// envWithout is the environment without name, so that a variable set
// where the tests run cannot change what they test.
func envWithout(name string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			out = append(out, kv)
		}
	}
	return out
}

type apiCall struct {
	status int
	body   string
	header http.Header
}

func call(t *testing.T, method, url, auth string) apiCall {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
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
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return apiCall{resp.StatusCode, string(b), resp.Header}
}

// enabled reads an audience's enabled flag through the API.
func enabled(t *testing.T, base, name string) bool {
	t.Helper()
	c := call(t, "GET", base+"/audiences/"+name, "")
	var a struct {
		Enabled bool `json:"enabled"`
	}
	if c.status != 200 || json.Unmarshal([]byte(c.body), &a) != nil {
		t.Fatalf("GET /audiences/%s: %d %s", name, c.status, c.body)
	}
	return a.Enabled
}

var mutations = []string{
	"/audiences/platinum_cat_owners/run",
	"/audiences/platinum_cat_owners/enable",
	"/audiences/platinum_cat_owners/disable",
	"/audiences/outstanding_balance/enable",
	"/audiences/no_such/run",
}

// TestAPIAuth runs the real worker and tries every mutating endpoint with
// no token, wrong tokens (near misses included) and the right one, and with
// LINKAUD_API_TOKEN unset or empty: refused mutations answer 401 (403 when
// mutations are off) and change nothing; GET endpoints need no token.
func TestAPIAuth(t *testing.T) {
	const token = "correct-horse-battery-staple-7f3a"
	dir := apiWorkspace(t)
	checks := 0

	t.Run("token_set", func(t *testing.T) {
		w := startWorker(t, dir, []string{"LINKAUD_API_TOKEN=" + token}, "worker", "ws", "--listen", "127.0.0.1:0", "--no-watch", "--log-format", "json")
		defer w.stop(t)
		wrong := map[string]string{
			"no header":            "",
			"wrong token":          "Bearer not-the-token",
			"empty bearer":         "Bearer ",
			"bearer without space": "Bearer" + token,
			"prefix of the token":  "Bearer " + token[:len(token)-1],
			"token plus a byte":    "Bearer " + token + "x",
			"other case":           "Bearer " + strings.ToUpper(token),
			"token in Basic":       "Basic " + base64.StdEncoding.EncodeToString([]byte("linkaud:"+token)),
			"raw token":            token,
			"token twice":          "Bearer " + token + " " + token,
		}
		for _, path := range mutations {
			before := enabled(t, w.url, "platinum_cat_owners")
			beforeOB := enabled(t, w.url, "outstanding_balance")
			for what, auth := range wrong {
				checks++
				c := call(t, "POST", w.url+path, auth)
				if c.status != http.StatusUnauthorized {
					t.Errorf("POST %s with %s: %d %s, want 401", path, what, c.status, c.body)
				}
				if !strings.HasPrefix(c.header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("POST %s with %s: 401 without a WWW-Authenticate: Bearer challenge", path, what)
				}
			}
			if enabled(t, w.url, "platinum_cat_owners") != before || enabled(t, w.url, "outstanding_balance") != beforeOB {
				t.Errorf("refused POST %s changed an audience", path)
			}
			checks++
			c := call(t, "POST", w.url+path, "Bearer "+token)
			want := map[string]int{"run": http.StatusAccepted, "enable": http.StatusOK, "disable": http.StatusOK}[path[strings.LastIndexByte(path, '/')+1:]]
			if strings.Contains(path, "no_such") {
				want = http.StatusNotFound
			}
			if c.status != want && !(want == http.StatusAccepted && c.status == http.StatusConflict) {
				t.Errorf("POST %s with the token: %d %s, want %d", path, c.status, c.body, want)
			}
		}
		if enabled(t, w.url, "platinum_cat_owners") || !enabled(t, w.url, "outstanding_balance") {
			t.Errorf("the authorized enable/disable calls had no effect")
		}
		for _, path := range []string{"/healthz", "/metrics", "/audiences", "/audiences/platinum_cat_owners"} {
			checks++
			if c := call(t, "GET", w.url+path, ""); c.status != http.StatusOK {
				t.Errorf("GET %s without a token: %d, want 200", path, c.status)
			}
		}
		// Other methods on a mutation are not a way around the check.
		for _, m := range []string{"GET", "PUT", "DELETE", "PATCH"} {
			checks++
			if c := call(t, m, w.url+mutations[2], ""); c.status != http.StatusMethodNotAllowed {
				t.Errorf("%s %s: %d, want 405", m, mutations[2], c.status)
			}
		}
		if !enabled(t, w.url, "outstanding_balance") {
			t.Errorf("a GET/PUT/DELETE/PATCH disabled an audience")
		}
	})

	for _, env := range [][]string{nil, {"LINKAUD_API_TOKEN="}} {
		name := "token_unset"
		if env != nil {
			name = "token_empty"
		}
		t.Run(name, func(t *testing.T) {
			w, err := spawnWorker(t, dir, append(envWithout("LINKAUD_API_TOKEN"), env...), "worker", "ws", "--listen", "127.0.0.1:0", "--no-watch", "--log-format", "json")
			if err != nil {
				t.Fatal(err)
			}
			defer w.stop(t)
			before := enabled(t, w.url, "outstanding_balance")
			for _, path := range mutations {
				for _, auth := range []string{"", "Bearer " + token, "Bearer ", "Bearer x"} {
					checks++
					c := call(t, "POST", w.url+path, auth)
					if c.status != http.StatusForbidden || !strings.Contains(c.body, "LINKAUD_API_TOKEN") {
						t.Errorf("POST %s (auth %q) with mutations off: %d %s, want 403 naming LINKAUD_API_TOKEN", path, auth, c.status, c.body)
					}
				}
			}
			if enabled(t, w.url, "outstanding_balance") != before {
				t.Errorf("a refused mutation changed an audience")
			}
		})
	}
	t.Logf("API: %d authorization checks", checks)
}

// TestTokenComparedInConstantTime reads web/ (the HTTP API and console): the bearer token
// must be compared with crypto/subtle, and never with ==, !=,
// bytes.Equal or strings.EqualFold, whose time depends on where the first
// difference is.
func TestTokenComparedInConstantTime(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, "../../web", func(fi os.FileInfo) bool { return !strings.HasSuffix(fi.Name(), "_test.go") }, 0)
	if err != nil {
		t.Fatal(err)
	}
	tokenish := regexp.MustCompile(`(?i)token|auth|got|sum|bearer`)
	subtleCalls := 0
	for _, pkg := range pkgs {
		for name, f := range pkg.Files {
			ast.Inspect(f, func(n ast.Node) bool {
				switch n := n.(type) {
				case *ast.CallExpr:
					sel, ok := n.Fun.(*ast.SelectorExpr)
					if !ok {
						return true
					}
					x, _ := sel.X.(*ast.Ident)
					if x == nil {
						return true
					}
					fn := x.Name + "." + sel.Sel.Name
					if fn == "subtle.ConstantTimeCompare" {
						subtleCalls++
					}
					if slices.Contains([]string{"bytes.Equal", "strings.EqualFold", "strings.Compare", "bytes.Compare"}, fn) && tokenish.MatchString(exprText(n)) {
						t.Errorf("%s: %s compares a token in variable time: %s", fset.Position(n.Pos()), name, exprText(n))
					}
				case *ast.BinaryExpr:
					if (n.Op == token.EQL || n.Op == token.NEQ) && (tokenish.MatchString(exprText(n.X)) && !isConst(n.Y) || tokenish.MatchString(exprText(n.Y)) && !isConst(n.X)) {
						t.Errorf("%s: a token compared with %s: %s", fset.Position(n.Pos()), n.Op, exprText(n))
					}
				}
				return true
			})
		}
	}
	if subtleCalls == 0 {
		t.Error("web/ does not call subtle.ConstantTimeCompare")
	}
}

// exprText is the identifiers of e, in order.
func exprText(e ast.Node) string {
	var names []string
	ast.Inspect(e, func(n ast.Node) bool {
		if id, ok := n.(*ast.Ident); ok {
			names = append(names, id.Name)
		}
		return true
	})
	return strings.Join(names, " ")
}

// isConst reports whether e is a literal or a well-known constant (a
// length compared with 0, a status code, nil): comparing those reveals
// nothing about a token.
func isConst(e ast.Expr) bool {
	switch e := e.(type) {
	case *ast.BasicLit:
		return true
	case *ast.Ident:
		return e.Name == "nil" || e.Name == "true" || e.Name == "false"
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		return ok && x.Name == "http"
	}
	return false
}

// TestWorkerListensOnLoopback checks the worker's default address and
// where it binds: without --listen it binds 127.0.0.1:8080 (when that port
// is taken, the error names that address), `--help` shows that default,
// and an address beyond loopback is used only when given, with a warning.
func TestWorkerListensOnLoopback(t *testing.T) {
	r := run(t, t.TempDir(), nil, "worker", "--help")
	if !regexp.MustCompile(`--listen="127\.0\.0\.1:8080"`).MatchString(r.stdout) {
		t.Errorf("worker --help does not show the loopback default:\n%s", r)
	}
	dir := apiWorkspace(t)

	t.Run("default", func(t *testing.T) {
		w, err := spawnWorker(t, dir, os.Environ(), "worker", "ws", "--no-watch", "--log-format", "json")
		if err != nil {
			// The port is taken on this machine: the worker must have
			// tried the loopback address, and no other.
			if !strings.Contains(err.Error(), "listening on 127.0.0.1:8080") {
				t.Fatalf("without --listen: %v", err)
			}
			t.Logf("port 8080 is in use here; the worker tried 127.0.0.1:8080: %v", err)
			return
		}
		logs := w.stop(t)
		if w.url != "http://127.0.0.1:8080" {
			t.Errorf("without --listen the worker listens on %s, want http://127.0.0.1:8080", w.url)
		}
		if strings.Contains(logs, "beyond loopback") {
			t.Errorf("a loopback worker warns about exposure:\n%s", logs)
		}
	})

	t.Run("explicit_all_interfaces", func(t *testing.T) {
		w := startWorker(t, dir, nil, "worker", "ws", "--listen", ":0", "--no-watch", "--log-format", "json")
		host, _, err := net.SplitHostPort(strings.TrimPrefix(w.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		if ip := net.ParseIP(host); ip == nil || ip.IsLoopback() {
			t.Errorf("--listen :0 bound %s, want every interface", w.url)
		}
		if logs := w.stop(t); !strings.Contains(logs, "beyond loopback") {
			t.Errorf("a worker listening beyond loopback does not warn:\n%s", logs)
		}
	})
}
