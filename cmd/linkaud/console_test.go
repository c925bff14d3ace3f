package main

import (
	"bufio"
	"io"
	"net/http"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConsoleCommand: `linkaud console DIR` serves the console's pages
// over the demo's state without a worker, refuses actions, and stops on
// SIGTERM with exit 0.
func TestConsoleCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "demo")
	if out, err := exec.Command(linkaudBin, "demo", "--dir", dir).CombinedOutput(); err != nil {
		t.Fatalf("linkaud demo: %v\n%s", err, out)
	}
	cmd := exec.Command(linkaudBin, "console", dir, "--listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &syncBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "linkaud console: listening on "); ok {
				addr <- strings.TrimSuffix(a, " (read-only)")
			}
		}
		exited <- cmd.Wait()
	}()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	var base string
	select {
	case base = <-addr:
	case err := <-exited:
		t.Fatalf("console exited: %v\n%s", err, stderr.String())
	case <-time.After(time.Minute):
		t.Fatalf("console not listening\n%s", stderr.String())
	}
	get := func(path string) (int, string) {
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	code, body := get("/")
	for _, want := range []string{"outstanding_balance", "platinum_cat_owners", "premium_heavy_users", "read-only", "status-Live"} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("GET /: %d, lacks %q", code, want)
		}
	}
	if code, body := get("/audience/outstanding_balance/members"); code != 200 || !strings.Contains(body, `data-profile="ann"`) {
		t.Errorf("members page: %d\n%s", code, body)
	}
	resp, err := http.PostForm(base+"/audience/outstanding_balance/run", url.Values{"csrf": {strings.Repeat("a", 64)}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("POST to the read-only console: %d, want 403", resp.StatusCode)
	}
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("console exit after SIGTERM: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("console did not stop on SIGTERM")
	}
}
