package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/cockroachdb/datadriven"
)

const (
	testVersion   = "v0.0.0-test"
	testCommit    = "0123456789abcdef"
	testBuildTime = "2026-12-01T10:00:00Z"
)

// linkaudBin is the binary under test, built once by TestMain: CLI tests
// run the real program as a subprocess, as users do.
var linkaudBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "linkaud-cli")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	linkaudBin = filepath.Join(dir, "linkaud")
	// The version facts as make build passes them (TestVersion).
	const pkg = "github.com/linkaud/linkaud/internal/buildinfo"
	ldflags := "-X " + pkg + ".version=" + testVersion + " -X " + pkg + ".commit=" + testCommit + " -X " + pkg + ".date=" + testBuildTime
	build := exec.Command("go", "build", "-tags", "duckdb_arrow", "-ldflags", ldflags, "-o", linkaudBin, ".")
	build.Stderr = os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building linkaud:", err)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// TestCLI runs the data-driven CLI scripts in testdata/cli. Each script runs
// in a fresh directory. Commands:
//
//	file path=REL        writes the input to REL (directories are created)
//	copy from=REPO to=REL copies a file or directory of the repository
//	cat path=REL         prints a file (JSONL files one line each)
//	webhook env=NAME status=CODE
//	                     starts (once per script) an HTTP server that
//	                     answers every request with CODE, and passes its URL
//	                     to later linkaud commands in variable NAME; later
//	                     calls change the status; prints the events it has
//	                     received so far
//	linkaud ARGS...      runs the binary; output is stdout, stderr (prefixed
//	                     "stderr: ") and the exit code. The temp dir is
//	                     replaced by $TMP, durations as linkaud prints them
//	                     ("12.3ms", "1.23s") by <dur>, and the time of JSON
//	                     log records by <time>.
func TestCLI(t *testing.T) {
	datadriven.Walk(t, "testdata/cli", func(t *testing.T, path string) {
		dir := t.TempDir()
		var hook *cliHook
		env := []string{}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			switch d.Cmd {
			case "cat":
				var rel string
				d.ScanArgs(t, "path", &rel)
				b, err := os.ReadFile(filepath.Join(dir, rel))
				if err != nil {
					return err.Error() + "\n"
				}
				return string(b)
			case "webhook":
				var name string
				var status int
				d.ScanArgs(t, "env", &name)
				d.ScanArgs(t, "status", &status)
				if hook == nil {
					hook = newCLIHook(t)
					env = append(env, name+"="+hook.srv.URL)
				}
				hook.status.Store(int64(status))
				return hook.received()
			case "file":
				var rel string
				d.ScanArgs(t, "path", &rel)
				p := filepath.Join(dir, rel)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(d.Input+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
				return ""
			case "copy":
				var from, to string
				d.ScanArgs(t, "from", &from)
				d.ScanArgs(t, "to", &to)
				if err := os.CopyFS(filepath.Join(dir, to), os.DirFS(filepath.Join("..", "..", from))); err != nil {
					t.Fatal(err)
				}
				return ""
			case "linkaud":
				var args []string
				for _, a := range d.CmdArgs {
					args = append(args, a.String())
				}
				return runCLIEnv(t, dir, env, args...)
			}
			t.Fatalf("unknown command %q", d.Cmd)
			return ""
		})
	})
}

func runCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	return runCLIEnv(t, dir, nil, args...)
}

// runCLIEnv runs the binary in dir with env added to the environment.
func runCLIEnv(t *testing.T, dir string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(linkaudBin, args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "NO_COLOR=1"), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString(stdout.String())
	for _, line := range strings.SplitAfter(stderr.String(), "\n") {
		if line != "" {
			b.WriteString("stderr: " + line)
		}
	}
	if !strings.HasSuffix(b.String(), "\n") && b.Len() > 0 {
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "exit %d\n", code)
	out := strings.ReplaceAll(b.String(), dir, "$TMP")
	out = durationRE.ReplaceAllString(out, " <dur>")
	return logTimeRE.ReplaceAllString(out, `"time":"<time>"`)
}

var (
	// durationRE matches durations as engine.FormatDuration prints them,
	// with the padding of fixed-width cells.
	durationRE = regexp.MustCompile(` +[0-9]+\.[0-9]+m?s\b`)
	logTimeRE  = regexp.MustCompile(`"time":"[^"]*"`)
)

// cliHook is a webhook destination's far side for CLI scripts.
type cliHook struct {
	srv    *httptest.Server
	status atomic.Int64
	mu     sync.Mutex
	events []string
}

func newCLIHook(t *testing.T) *cliHook {
	h := &cliHook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		code := int(h.status.Load())
		if code/100 == 2 {
			var req struct {
				Batch []struct {
					Event     string `json:"event"`
					UserID    string `json:"userId"`
					MessageID string `json:"messageId"`
				} `json:"batch"`
			}
			if err := json.Unmarshal(body, &req); err != nil {
				t.Errorf("webhook body: %v", err)
			}
			h.mu.Lock()
			for _, e := range req.Batch {
				h.events = append(h.events, e.Event+" "+e.UserID+" "+e.MessageID)
			}
			h.mu.Unlock()
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *cliHook) received() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var b strings.Builder
	fmt.Fprintf(&b, "received %d events\n", len(h.events))
	for _, e := range h.events {
		b.WriteString(e + "\n")
	}
	return b.String()
}
