package main

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// The state's failure modes as users meet them: a damaged file, a state
// older than what was committed, a read-only, unwritable or full state
// directory. Every command either works (reading what it can) or refuses
// in one line saying what to do, exit 2, within seconds, without a panic's
// stack trace or a flood of log lines.

const seedActivations = `
destination audit { type file path "events.jsonl" }
activation cards { audience outstanding_balance destination audit event entity_added credit_card send_current true }
activation cats  { audience platinum_cat_owners destination audit event audience_entered send_current true }
`

// seedWorkspace copies the seed workspace to dir/ws with a file
// destination, enables two audiences and runs one cycle.
func seedWorkspace(t *testing.T, dir string) string {
	t.Helper()
	ws := filepath.Join(dir, "ws")
	if err := os.CopyFS(ws, os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "activations.la"), []byte(seedActivations), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"outstanding_balance", "platinum_cat_owners"} {
		if out := runCLI(t, dir, "audiences", "ws", "enable", a); !strings.HasSuffix(out, "exit 0\n") {
			t.Fatal(out)
		}
	}
	if out := runCLI(t, dir, "run", "ws", "--log-level", "error"); !strings.HasSuffix(out, "exit 0\n") {
		t.Fatal(out)
	}
	return ws
}

var stackTrace = regexp.MustCompile(`goroutine \d+|panic:|\.go:\d+`)

// checkRefusal wants exit 2 and a last line saying what to do, no stack
// trace.
func checkRefusal(t *testing.T, args []string, out string, want ...string) {
	t.Helper()
	if !strings.HasSuffix(out, "exit 2\n") {
		t.Errorf("linkaud %s: want exit 2:\n%s", strings.Join(args, " "), out)
		return
	}
	if stackTrace.MatchString(out) {
		t.Errorf("linkaud %s: a stack trace:\n%.2000s", strings.Join(args, " "), out)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	last := lines[len(lines)-2]
	for _, w := range want {
		if !strings.Contains(last, w) {
			t.Errorf("linkaud %s: the refusal does not say %q:\n%s", strings.Join(args, " "), w, last)
		}
	}
}

// flipInData flips a byte in the middle of each sstable of the state: in a
// data block, which every read of the keys it holds checks.
func flipInData(t *testing.T, state string) []string {
	t.Helper()
	ssts, _ := filepath.Glob(filepath.Join(state, "*.sst"))
	if len(ssts) == 0 {
		t.Fatalf("no sstable in %s", state)
	}
	for _, p := range ssts {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[len(b)/4] ^= 0x20
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ssts
}

// A damaged sstable: every command that reads the state refuses in one
// line naming the file and what to do; export salvages what reads.
func TestDamagedStateRefusedByEveryCommand(t *testing.T) {
	dir := t.TempDir()
	seedWorkspace(t, dir)
	// Close flushes: the whole state is in sstables now.
	flipInData(t, filepath.Join(dir, "ws", ".linkaud"))
	file := ".sst: file " // whichever sstable a command reads first
	for _, args := range [][]string{
		{"audiences", "ws", "list"},
		{"audiences", "ws", "status", "outstanding_balance"},
		{"audiences", "ws", "runs", "outstanding_balance"},
		{"audiences", "ws", "enable", "premium_heavy_users"},
		{"deadletters", "ws", "list"},
		{"outbox", "ws", "list"},
		{"run", "ws"},
		{"state", "ws", "verify"},
	} {
		out := runCLI(t, dir, args...)
		checkRefusal(t, args, out, "state ws verify")
		if !strings.Contains(out, file) {
			t.Errorf("linkaud %s does not name the sstable:\n%s", strings.Join(args, " "), out)
		}
	}
	out := runCLI(t, dir, "state", "ws", "export", "salvage")
	checkRefusal(t, []string{"state", "export"}, out, "damaged ranges could not be read")
	for _, f := range []string{"audiences", "memberships", "outbox", "deadletters"} {
		if _, err := os.Stat(filepath.Join(dir, "salvage", f+".jsonl")); err != nil {
			t.Errorf("export: %v", err)
		}
	}
	// The worker refuses too, and exits.
	cmd := exec.Command(linkaudBin, "worker", "ws", "--listen", "127.0.0.1:0")
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := runWithin(cmd, 30*time.Second); err == nil {
		t.Errorf("the worker ran on a damaged state:\n%s", stderr.String())
	} else {
		checkRefusal(t, []string{"worker"}, stderr.String()+"exit 2\n", file)
	}
}

// runWithin runs cmd, killing it after d.
func runWithin(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return errors.New("killed: still running after " + d.String())
	}
}

// A state older than its commit record — here the Pebble files of an
// earlier run put back under the newer record, as a write-ahead log lost
// with its generation leaves it — is refused, naming the audiences whose
// generation is missing; never a run on it.
func TestRollbackRefused(t *testing.T) {
	dir := t.TempDir()
	ws := seedWorkspace(t, dir)
	state := filepath.Join(ws, ".linkaud")
	old := filepath.Join(dir, "old")
	if err := os.CopyFS(old, os.DirFS(state)); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "data", "credit_cards.csv"), []byte("id,account_id,balance,due_date\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out := runCLI(t, dir, "run", "ws", "--log-level", "error"); !strings.HasSuffix(out, "exit 0\n") {
		t.Fatal(out)
	}
	record, err := os.ReadFile(filepath.Join(state, diff.CommitRecordFile))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(state); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(old, state); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(state, diff.CommitRecordFile), record, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"run", "ws"}, {"audiences", "ws", "list"}} {
		out := runCLI(t, dir, args...)
		checkRefusal(t, args, out, "older than what was committed", "outstanding_balance (generation 1 of 2)", "restore")
	}
	// The tools still read it, and say so.
	out := runCLI(t, dir, "state", "ws", "verify")
	checkRefusal(t, []string{"state", "verify"}, out, "does not verify")
	if !strings.Contains(out, "older than what was committed") {
		t.Errorf("verify does not report the rollback:\n%s", out)
	}
}

// While another process holds the state (a worker), the read-only
// commands read a snapshot; commands that write still point at the
// worker's API.
func TestReadOnlyCommandsWhileHeld(t *testing.T) {
	dir := t.TempDir()
	ws := seedWorkspace(t, dir)
	store, err := diff.Open(filepath.Join(ws, ".linkaud"), diff.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for _, args := range [][]string{
		{"audiences", "ws", "list"},
		{"audiences", "ws", "status", "outstanding_balance"},
		{"audiences", "ws", "runs", "outstanding_balance"},
		{"deadletters", "ws", "list"},
		{"outbox", "ws", "list"},
		{"state", "ws", "verify"},
		{"state", "ws", "backup", "bk"},
		{"state", "ws", "export", "exp"},
	} {
		if out := runCLI(t, dir, args...); !strings.HasSuffix(out, "exit 0\n") {
			t.Errorf("linkaud %s while the state is held:\n%s", strings.Join(args, " "), out)
		}
	}
	if out := runCLI(t, dir, "state", "bk", "verify"); !strings.HasSuffix(out, "exit 0\n") || !strings.Contains(out, "2 audiences") {
		t.Errorf("the backup:\n%s", out)
	}
	out := runCLI(t, dir, "state", "ws", "restore", "bk", "--replace")
	if !strings.HasSuffix(out, "exit 1\n") || !strings.Contains(out, "stop the worker first") {
		t.Errorf("restore over a live state:\n%s", out)
	}
	for _, args := range [][]string{{"audiences", "ws", "enable", "premium_heavy_users"}, {"run", "ws"}} {
		if out := runCLI(t, dir, args...); !strings.HasSuffix(out, "exit 1\n") || !strings.Contains(out, "in use by another linkaud process") {
			t.Errorf("linkaud %s:\n%s", strings.Join(args, " "), out)
		}
	}
	// Nothing of the snapshots is left in the state directory.
	if m, _ := filepath.Glob(filepath.Join(ws, ".linkaud", "readonly-*")); len(m) > 0 {
		t.Errorf("snapshots left behind: %v", m)
	}
}

// mountTmpfs mounts a tmpfs of size bytes at dir, or skips the test where
// mounting is not allowed.
func mountTmpfs(t *testing.T, dir string, size string) {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("mounting a file system needs root")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", dir).Run() })
}

// workerExit starts the worker and returns its exit code and stderr once it
// exits, sending SIGTERM after term (0: never) and failing if it is still
// running past the bound.
func workerExit(t *testing.T, dir string, term, bound time.Duration, env ...string) (int, string, time.Duration) {
	t.Helper()
	cmd := exec.Command(linkaudBin, "worker", "ws", "--listen", "127.0.0.1:0", "--shutdown-timeout", "3s")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, _ := cmd.StdoutPipe()
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
		}
	}()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	if term > 0 {
		select {
		case err := <-done:
			done <- err
		case <-time.After(term):
			cmd.Process.Signal(syscall.SIGTERM)
		}
	}
	select {
	case err := <-done:
		took := time.Since(began)
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), stderr.String(), took
		}
		return 0, stderr.String(), took
	case <-time.After(bound):
		cmd.Process.Kill()
		<-done
		t.Fatalf("the worker did not exit within %s:\n%.3000s", bound, stderr.String())
	}
	return 0, "", 0
}

// A read-only state directory (a read-only mount: root included): reading
// commands work, writing ones refuse at once saying so, and the worker
// exits 2 within seconds with a handful of log lines, not a retry loop.
func TestReadOnlyStateDir(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, mnt, "16m")
	seedWorkspace(t, mnt)
	if out, err := exec.Command("mount", "-o", "remount,ro", mnt).CombinedOutput(); err != nil {
		t.Fatalf("remount read-only: %v: %s", err, out)
	}
	if out := runCLI(t, mnt, "audiences", "ws", "list"); !strings.HasSuffix(out, "exit 0\n") || !strings.Contains(out, "outstanding_balance") {
		t.Errorf("audiences list on a read-only state:\n%s", out)
	}
	began := time.Now()
	out := runCLI(t, mnt, "run", "ws")
	checkRefusal(t, []string{"run"}, out, "cannot be written")
	if time.Since(began) > 30*time.Second {
		t.Errorf("run took %s to refuse", time.Since(began))
	}
	code, stderr, took := workerExit(t, mnt, 0, 30*time.Second)
	if code != 2 || !strings.Contains(stderr, "cannot be written") {
		t.Errorf("worker on a read-only state: exit %d after %s:\n%.3000s", code, took, stderr)
	}
	if n := strings.Count(stderr, "\n"); n > 20 {
		t.Errorf("the worker logged %d lines", n)
	}
}

// A state directory its user cannot write (permissions; run as nobody,
// since root writes anywhere): the same.
func TestUnwritableStateDir(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("runs the command as another user: needs root")
	}
	dir := t.TempDir()
	seedWorkspace(t, dir)
	// The binary where nobody can run it.
	bin := filepath.Join(dir, "linkaud")
	data, err := os.ReadFile(linkaudBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := dir; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755)
	}
	filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err == nil {
			if info.IsDir() || p == bin {
				os.Chmod(p, 0o555)
			} else {
				os.Chmod(p, 0o444)
			}
		}
		return nil
	})
	t.Cleanup(func() {
		filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
			if err == nil {
				os.Chmod(p, 0o755)
			}
			return nil
		})
	})
	asNobody := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := runWithin(cmd, 30*time.Second)
		code := 0
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("linkaud %s: %v\n%s", strings.Join(args, " "), err, out.String())
		}
		return out.String() + "exit " + string(rune('0'+code)) + "\n"
	}
	if out := asNobody("audiences", "ws", "list"); !strings.HasSuffix(out, "exit 0\n") {
		t.Errorf("audiences list on an unwritable state:\n%s", out)
	}
	out := asNobody("run", "ws")
	checkRefusal(t, []string{"run"}, out, "cannot be written", "permission denied")
	if strings.Contains(out, "in use by another") {
		t.Errorf("a permission error reported as a lock:\n%s", out)
	}
	out = asNobody("worker", "ws", "--listen", "127.0.0.1:0")
	checkRefusal(t, []string{"worker"}, out, "cannot be written")
}

// A full disk under the state: the worker says so in a few lines and
// honours SIGTERM within its bound, whatever it was doing.
func TestFullStateDisk(t *testing.T) {
	dir := t.TempDir()
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mountTmpfs(t, mnt, "4m")
	ws := filepath.Join(mnt, "ws")
	if err := os.CopyFS(ws, os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(ws, "activations.la"), []byte(seedActivations), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, a := range []string{"outstanding_balance", "platinum_cat_owners"} {
		if out := runCLI(t, mnt, "audiences", "ws", "enable", a); !strings.HasSuffix(out, "exit 0\n") {
			t.Fatal(out)
		}
	}
	// Fill the disk.
	f, err := os.Create(filepath.Join(mnt, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	began := time.Now()
	out := runCLI(t, mnt, "run", "ws")
	if !strings.HasSuffix(out, "exit 2\n") || stackTrace.MatchString(out) {
		t.Errorf("run on a full disk:\n%.3000s", out)
	}
	if time.Since(began) > 30*time.Second {
		t.Errorf("run took %s", time.Since(began))
	}
	// The worker: SIGTERM after 2s; exits within the shutdown timeout
	// (3s) and its grace.
	code, stderr, took := workerExit(t, mnt, 2*time.Second, 40*time.Second)
	if code == 0 && !strings.Contains(stderr, "worker exited") {
		t.Errorf("worker on a full disk: exit %d after %s:\n%.3000s", code, took, stderr)
	}
	if stackTrace.MatchString(stderr) {
		t.Errorf("a stack trace:\n%.3000s", stderr)
	}
	if n := strings.Count(stderr, "\n"); n > 40 {
		t.Errorf("the worker logged %d lines:\n%.3000s", n, stderr)
	}
}

// Events stranded by a renamed destination: check and every run warn, and
// `outbox move` / `deadletters move|drop` deal with them, counted.
func TestStrandedEvents(t *testing.T) {
	dir := t.TempDir()
	ws := filepath.Join(dir, "ws")
	if err := os.CopyFS(ws, os.DirFS("../../testdata/seed")); err != nil {
		t.Fatal(err)
	}
	acts := func(dest string) string {
		return `destination ` + dest + ` { type webhook url "http://127.0.0.1:1/hook" max_retries 0 }
destination audit { type file path "events.jsonl" }
activation cards { audience outstanding_balance destination ` + dest + ` event entity_added credit_card send_current true }
`
	}
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(ws, "activations.la"), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(acts("hook"))
	runCLI(t, dir, "audiences", "ws", "enable", "outstanding_balance")
	// Nothing listens on port 1: the events stay in hook's outbox.
	if out := runCLI(t, dir, "run", "ws", "--log-level", "error"); !strings.HasSuffix(out, "exit 2\n") || !strings.Contains(out, "left in the outbox") {
		t.Fatalf("run with a dead webhook:\n%s", out)
	}
	write(acts("crm")) // renamed: hook's events are stranded
	out := runCLI(t, dir, "check", "ws")
	if !strings.HasSuffix(out, "exit 0\n") || !strings.Contains(out, "warning: destination hook is not in the workspace but the state holds 3 pending events") {
		t.Errorf("check:\n%s", out)
	}
	out = runCLI(t, dir, "run", "ws", "--deliver-only", "--log-format", "text")
	if !strings.Contains(out, "never delivered") || !strings.Contains(out, "destination=hook") {
		t.Errorf("run does not warn of the stranded events:\n%s", out)
	}
	out = runCLI(t, dir, "outbox", "ws", "list")
	if !strings.Contains(out, "hook         3") || !strings.Contains(out, "stranded") {
		t.Errorf("outbox list:\n%s", out)
	}
	if out := runCLI(t, dir, "outbox", "ws", "move", "hook", "nope"); !strings.HasSuffix(out, "exit 1\n") {
		t.Errorf("move to an unknown destination:\n%s", out)
	}
	out = runCLI(t, dir, "outbox", "ws", "move", "hook", "audit", "--log-format", "text")
	if !strings.HasSuffix(out, "exit 0\n") || !strings.Contains(out, "3 pending events moved from hook to audit") || !strings.Contains(out, "outbox moved") {
		t.Fatalf("outbox move:\n%s", out)
	}
	if out := runCLI(t, dir, "run", "ws", "--deliver-only", "--log-level", "error"); !strings.HasSuffix(out, "exit 0\n") {
		t.Fatalf("deliver after the move:\n%s", out)
	}
	events, err := os.ReadFile(filepath.Join(ws, "events.jsonl"))
	if err != nil || strings.Count(string(events), "\n") != 3 || !strings.Contains(string(events), `"event":"Entity Added"`) {
		t.Fatalf("events.jsonl after the move (%v):\n%s", err, events)
	}
	if out := runCLI(t, dir, "check", "ws"); strings.Contains(out, "warning: destination") {
		t.Errorf("still warned after the move:\n%s", out)
	}
	if out := runCLI(t, dir, "outbox", "ws", "drop", "audit"); !strings.HasSuffix(out, "exit 1\n") || !strings.Contains(out, "--yes") {
		t.Errorf("drop without --yes:\n%s", out)
	}
	if out := runCLI(t, dir, "deadletters", "ws", "drop", "hook", "--yes"); !strings.Contains(out, "0 dead letters of hook dropped") {
		t.Errorf("deadletters drop:\n%s", out)
	}
}
