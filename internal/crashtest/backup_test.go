package crashtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// backupStep is the step during which the backup is taken.
const backupStep = steps

// converge asks the worker to run, once, each audience whose generation is
// below step, and waits until every audience is at step and the outbox is
// empty. during, when set, is called after the runs were requested, at
// each poll until it returns true (while the worker computes and
// delivers).
func converge(t *testing.T, w *worker, step int, during func() bool) {
	t.Helper()
	triggered := map[string]bool{}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if time.Now().After(deadline) {
			auds, err := w.audiences()
			t.Fatalf("step %d did not converge in 2 minutes: %+v %v\n%s", step, auds, err, w.stderr.String())
		}
		if w.exited() {
			t.Fatalf("step %d: the worker exited with %d:\n%s", step, w.code, w.stderr.String())
		}
		auds, err := w.audiences()
		if err != nil {
			time.Sleep(20 * time.Millisecond)
			continue
		}
		done := len(auds) == len(audiences)
		for _, a := range auds {
			switch {
			case a.Generation > uint64(step):
				t.Fatalf("step %d: %s ran twice: generation %d", step, a.Name, a.Generation)
			case a.Generation < uint64(step):
				done = false
				if !a.Running && !a.Queued && !triggered[a.Name] {
					if err := w.run(a.Name); err != nil {
						t.Fatalf("step %d: %v", step, err)
					}
					triggered[a.Name] = true
				}
			}
		}
		if during != nil && len(triggered) > 0 && during() {
			during = nil
		}
		if done {
			if n, err := w.backlog(); err == nil && n == 0 {
				return
			}
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func stopWorker(t *testing.T, w *worker) {
	t.Helper()
	_ = w.cmd.Process.Signal(syscall.SIGTERM)
	<-w.done
	if w.code != 0 || w.killed {
		t.Fatalf("the worker's graceful stop: exit %d, killed %t:\n%s", w.code, w.killed, w.stderr.String())
	}
}

// TestBackupWhileWorkerDelivers takes `linkaud state ws backup` while a
// worker computes and delivers a step (through a second, read-only handle
// on a snapshot of the state: the worker holds Pebble's lock), lets that
// worker finish the step and stops it, restores the backup in another
// directory and continues there with another worker to the last step. The
// events both delivered, deduplicated by messageId, must be a clean worker
// run's exactly: nothing lost in the backup, nothing invented by the
// restore, and everything sent twice sent under the same messageId with
// the same bytes.
func TestBackupWhileWorkerDelivers(t *testing.T) {
	want := workerReference(t)
	dir := workerSetup(t)
	slowDelivery(t, dir)
	backup := filepath.Join(t.TempDir(), "backup")
	w := startWorker(t, dir, 0, "")
	var during string
	for s := 1; s <= steps; s++ {
		if s > 1 {
			toStepLive(t, dir, s)
		}
		var at func() bool
		if s == backupStep {
			// Once the outbox has events (delivery under way), or
			// once no cycle is left running.
			at = func() bool {
				auds, _ := w.audiences()
				running := 0
				for _, a := range auds {
					if a.Running || a.Queued {
						running++
					}
				}
				backlog, _ := w.backlog()
				if backlog == 0 && running > 0 {
					return false
				}
				out := must(t, dir, "state", "ws", "backup", backup)
				during = fmt.Sprintf("%d cycles running or queued and %d events in the outbox when the backup started; %s",
					running, backlog, strings.TrimSpace(out))
				return true
			}
		}
		converge(t, w, s, at)
		if s == backupStep {
			break // this worker stops here; the restored state goes on
		}
	}
	stopWorker(t, w)
	t.Log(during)

	// Another directory: the workspace at the backup's step, the state
	// restored from the backup, a new worker from there.
	dir2 := workerSetup(t)
	slowDelivery(t, dir2)
	toStep(t, dir2, backupStep)
	out := must(t, dir2, "state", "ws", "restore", backup, "--replace")
	t.Log(strings.TrimSpace(out))
	w2 := startWorker(t, dir2, 0, "")
	for s := backupStep; s <= steps; s++ {
		if s > backupStep {
			toStepLive(t, dir2, s)
		}
		converge(t, w2, s, nil)
	}
	stopWorker(t, w2)

	first, second := delivered(t, dir, true), delivered(t, dir2, true)
	all := map[string]string{}
	for id, line := range first.events {
		all[id] = line
	}
	again := 0
	for id, line := range second.events {
		if prev, ok := all[id]; ok {
			if prev != line {
				t.Fatalf("messageId %s delivered with different contents before and after the restore:\n%s\n%s", id, prev, line)
			}
			again++
			continue
		}
		all[id] = line
	}
	same(t, want, all)
	summary := fmt.Sprintf("backup/restore: %s; %d events delivered before the restore, %d after (%d of them again, same messageId and bytes); deduplicated by messageId: %d, a clean run's exactly",
		during, len(first.events), len(second.events), again, len(all))
	t.Log(summary)
	tally.add(func(c *counts) { c.backup = summary })
}

// slowDelivery rate-limits both destinations of the workspace in dir, so
// that a step's deliveries last long enough for the backup to start with
// events in the outbox. (The events are the same: a rate limit is not part
// of an activation's identity.)
func slowDelivery(t *testing.T, dir string) {
	t.Helper()
	p := filepath.Join(dir, "ws", "crashtest.la")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(`batch_size 200 }`, `batch_size 200 rate_limit 600 }`, `batch_size 300 }`, `batch_size 300 rate_limit 600 }`).Replace(string(b))
	if text == string(b) {
		t.Fatal("the destinations of crashtest.la changed: update slowDelivery")
	}
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"audit.jsonl", "crm.jsonl"} {
		if err := os.WriteFile(filepath.Join(dir, "ws", f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
