package crashtest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
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
	var (
		during  string
		earlier map[string]bool // delivered before the backup's step
		at      backupMoment
	)
	for s := 1; s <= steps; s++ {
		if s > 1 {
			toStepLive(t, dir, s)
		}
		var take func() bool
		if s == backupStep {
			earlier = deliveredIDs(t, dir)
			// Once the outbox holds more events than delivery clears
			// while a backup is taken (600 a second per audience;
			// the CLI's start and the copy take about a second), or
			// once no cycle is left running.
			take = func() bool {
				auds, err := w.audiences()
				if err != nil {
					return false
				}
				running := 0
				for _, a := range auds {
					if a.Running || a.Queued {
						running++
					}
				}
				backlog, _ := w.backlog()
				if backlog < 500 && running > 0 {
					return false
				}
				at.gensBefore = generations(auds)
				at.deliveredBefore = deliveredIDs(t, dir)
				res := mustRun(t, dir, "state", "ws", "backup", backup)
				at.deliveredAfter = deliveredIDs(t, dir)
				// Another read-only command on a snapshot of the held
				// state, as an operator runs while the worker works.
				at.gensListed = listedGenerations(t, dir)
				after, err := w.audiences()
				if err != nil {
					t.Fatal(err)
				}
				at.gensAfter = generations(after)
				at.report = strings.TrimSpace(res.out)
				during = fmt.Sprintf("%d cycles running or queued and %d events in the outbox when the backup started; %s (the command took %s)",
					running, backlog, at.report, res.took.Round(time.Millisecond))
				return true
			}
		}
		converge(t, w, s, take)
		if s == backupStep {
			break // this worker stops here; the restored state goes on
		}
	}
	stopWorker(t, w)
	t.Log(during)
	checked := checkBackup(t, dir, backup, earlier, &at)
	t.Log(checked)

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
	summary := fmt.Sprintf("backup/restore: %s; %s; %d events delivered before the restore, %d after (%d of them again, same messageId and bytes); deduplicated by messageId: %d, a clean run's exactly",
		during, checked, len(first.events), len(second.events), again, len(all))
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

// backupMoment is what the test saw of the worker around the backup.
type backupMoment struct {
	// gensBefore and gensAfter are the audiences' generations the worker
	// had committed when the backup started and once it had ended, and
	// gensListed what `audiences list` showed in between.
	gensBefore, gensAfter, gensListed map[string]uint64
	// deliveredBefore and deliveredAfter are the messageIds in the
	// destinations' files then.
	deliveredBefore, deliveredAfter map[string]bool
	report                          string // the backup command's output
}

var (
	computationKey = regexp.MustCompile(`"computation_key":"([^"]*)"`)
	backupPending  = regexp.MustCompile(`, (\d+) pending events`)
)

// checkBackup checks the backup in backup against what the worker had
// committed and delivered around it, and describes it per audience:
//   - it holds every cycle the worker had committed when the backup
//     started, and none it committed after the backup ended;
//   - its outbox holds only events of the cycles it holds, and, of those
//     cycles' events, every one not yet delivered when the backup ended
//     (an event delivered while the backup was taken may be in it too:
//     it is sent again under the same messageId). Whether it holds every
//     acknowledgement committed before it started cannot be told from
//     here (a batch is written to the file before its acknowledgement
//     commits); diff's TestSnapshotHoldsWhatWasCommitted checks that;
//   - the backup's report counts its outbox.
//
// earlier are the messageIds delivered before the backup's step; the
// step's events are those the worker delivered since (it delivered them
// all before it stopped).
func checkBackup(t *testing.T, dir, backup string, earlier map[string]bool, at *backupMoment) string {
	t.Helper()
	exp := filepath.Join(t.TempDir(), "export")
	must(t, dir, "state", backup, "export", exp)
	gens := map[string]uint64{}
	readJSONL(t, filepath.Join(exp, "audiences.jsonl"), func(line []byte) {
		var a struct {
			Name       string
			Generation uint64
		}
		if err := json.Unmarshal(line, &a); err != nil {
			t.Fatalf("audiences.jsonl: %v: %s", err, line)
		}
		gens[a.Name] = a.Generation
	})
	pending := map[string]string{} // messageId → audience
	readJSONL(t, filepath.Join(exp, "outbox.jsonl"), func(line []byte) {
		var m struct {
			ID       string `json:"message_id"`
			Audience string `json:"audience"`
		}
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("outbox.jsonl: %v: %s", err, line)
		}
		pending[m.ID] = m.Audience
	})
	if m := backupPending.FindStringSubmatch(at.report); m == nil || m[1] != strconv.Itoa(len(pending)) {
		t.Fatalf("the backup reported %q; its outbox holds %d events", at.report, len(pending))
	}
	stepEvents := map[string][]string{} // audience → messageIds of the backup's step
	for id, line := range delivered(t, dir, false).events {
		if earlier[id] {
			continue
		}
		m := computationKey.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("a delivered event without a computation_key: %s", line)
		}
		stepEvents[m[1]] = append(stepEvents[m[1]], id)
	}
	var desc []string
	for _, a := range audiences {
		g := gens[a]
		if g < at.gensBefore[a] || g > at.gensAfter[a] {
			t.Fatalf("%s: the backup holds generation %d; the worker had committed %d when it started and %d after it ended",
				a, g, at.gensBefore[a], at.gensAfter[a])
		}
		if l := at.gensListed[a]; l < g || l > at.gensAfter[a] {
			t.Fatalf("%s: `audiences list`, after the backup, shows generation %d; the backup holds %d, the worker had committed %d after",
				a, l, g, at.gensAfter[a])
		}
		inBackup, before, after, again := 0, 0, 0, 0
		for _, id := range stepEvents[a] {
			_, p := pending[id]
			switch {
			case g < backupStep && p:
				t.Fatalf("%s: the backup holds generation %d, and an event of generation %d in its outbox: %s", a, g, backupStep, id)
			case g == backupStep && !p && !at.deliveredAfter[id]:
				t.Fatalf("%s: the backup holds generation %d but lost its event %s: not in its outbox, not delivered when the backup ended", a, g, id)
			}
			if p {
				inBackup++
			}
			if at.deliveredBefore[id] {
				before++
				if p {
					again++ // delivered, its acknowledgement not yet committed
				}
			}
			if at.deliveredAfter[id] {
				after++
			}
		}
		desc = append(desc, fmt.Sprintf("%s generation %d (worker: %d at the start, %d after the end): %d events, %d delivered at the start (%d of them pending in the backup), %d at the end, %d pending in the backup",
			a, g, at.gensBefore[a], at.gensAfter[a], len(stepEvents[a]), before, again, after, inBackup))
	}
	for id, a := range pending {
		if !slices.Contains(stepEvents[a], id) {
			t.Fatalf("the backup's outbox holds %s of %s, which is none of the events of its step", id, a)
		}
	}
	return "the backup holds what was committed when it started: " + strings.Join(desc, "; ")
}

// generations are the audiences' generations in the worker's answer.
func generations(auds []workerAudience) map[string]uint64 {
	out := map[string]uint64{}
	for _, a := range auds {
		out[a.Name] = a.Generation
	}
	return out
}

// listedGenerations are the generations `linkaud audiences ws list`
// shows.
func listedGenerations(t *testing.T, dir string) map[string]uint64 {
	t.Helper()
	out := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(mustRun(t, dir, "audiences", "ws", "list", "--json").stdout), "\n") {
		var a audienceState
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("audiences list: %v: %s", err, line)
		}
		out[a.Name] = a.Generation
	}
	return out
}

// deliveredIDs are the messageIds in the destinations' files of the
// workspace in dir, while the worker may be writing them (a last line
// without its newline is not delivered yet).
func deliveredIDs(t *testing.T, dir string) map[string]bool {
	t.Helper()
	ids := map[string]bool{}
	for _, name := range []string{"audit.jsonl", "crm.jsonl"} {
		b, err := os.ReadFile(filepath.Join(dir, "ws", name))
		if err != nil {
			t.Fatal(err)
		}
		whole := b[:bytes.LastIndexByte(b, '\n')+1]
		for _, m := range messageIDValue.FindAllSubmatch(whole, -1) {
			ids[string(m[1])] = true
		}
	}
	return ids
}

var messageIDValue = regexp.MustCompile(`"messageId":"([^"]*)"`)

func readJSONL(t *testing.T, path string, fn func([]byte)) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		fn(sc.Bytes())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}
