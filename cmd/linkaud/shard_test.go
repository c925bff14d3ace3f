package main

import (
	"encoding/json"
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

	"github.com/linkaud/linkaud/engine"
)

// shardHook records every event delivered to it; while down it answers
// 503, so events stay in the senders' outboxes.
type shardHook struct {
	*httptest.Server
	mu     sync.Mutex
	down   bool
	events []shardEvent
}

type shardEvent struct {
	MessageID  string `json:"messageId"`
	Event      string `json:"event"`
	UserID     string `json:"userId"`
	Properties struct {
		Audience string `json:"audience_key"`
	} `json:"properties"`
}

func newShardHook(t *testing.T) *shardHook {
	h := &shardHook{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.down {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var batch struct{ Batch []shardEvent }
		if err := json.Unmarshal(body, &batch); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.events = append(h.events, batch.Batch...)
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *shardHook) setDown(down bool) {
	h.mu.Lock()
	h.down = down
	h.mu.Unlock()
}

// received returns "event audience user" → messageIds seen.
func (h *shardHook) received() map[string][]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := map[string][]string{}
	for _, e := range h.events {
		k := e.Event + " " + e.Properties.Audience + " " + e.UserID
		out[k] = append(out[k], e.MessageID)
	}
	return out
}

const shardAudiences = 30

// shardWorkspace: 30 audiences a_00 … a_29, a_i the profiles whose n is at
// least i; Entered and Exited go to one webhook.
func shardWorkspace() string {
	var b strings.Builder
	b.WriteString(`warehouse { load "APP.PROFILES" from "profiles.csv" }
state "state"
graph { profile { table "APP.PROFILES" key segment_id } }
destination hook { type webhook url env("HOOK_URL") }
`)
	for i := range shardAudiences {
		fmt.Fprintf(&b, "audience a_%02d { match trait n >= %d }\n", i, i)
		fmt.Fprintf(&b, "activation in_%02d { audience a_%02d destination hook event audience_entered send_current true }\n", i, i)
		fmt.Fprintf(&b, "activation out_%02d { audience a_%02d destination hook event audience_exited }\n", i, i)
	}
	return b.String()
}

// writeShardProfiles writes 40 profiles, p_j with n = j + shift.
func writeShardProfiles(t *testing.T, dir string, shift int) {
	t.Helper()
	var b strings.Builder
	b.WriteString("segment_id,n\n")
	for j := range 40 {
		fmt.Fprintf(&b, "p_%02d,%d\n", j, j+shift)
	}
	if err := os.WriteFile(filepath.Join(dir, "profiles.csv"), []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// expectedShardEvents are the events of going from shift `from` to shift
// `to` (from < 0: the first cycle, everyone entering).
func expectedShardEvents(from, to int) []string {
	var out []string
	for i := range shardAudiences {
		for j := range 40 {
			was, is := from >= 0 && j+from >= i, j+to >= i
			switch {
			case is && !was:
				out = append(out, fmt.Sprintf("Audience Entered a_%02d p_%02d", i, j))
			case was && !is:
				out = append(out, fmt.Sprintf("Audience Exited a_%02d p_%02d", i, j))
			}
		}
	}
	return out
}

// TestShards runs 3 worker processes, --shard 0/3 … 2/3, each with its own
// state, over 30 audiences: each audience is owned (enabled, run) by
// exactly one. Then, with the webhook down so the next cycle's events stay
// in the outboxes, the workers stop and the cluster shrinks to 2: `state
// move` carries the leaving shard's audiences to their new owners. The 2
// workers deliver every event exactly once per messageId, and no audience
// starts afresh (no second Entered for a member).
func TestShards(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ws.la"), []byte(shardWorkspace()), 0o644); err != nil {
		t.Fatal(err)
	}
	writeShardProfiles(t, dir, 0)
	hook := newShardHook(t)
	env := []string{"LINKAUD_API_TOKEN=" + testToken, "HOOK_URL=" + hook.URL}
	states := []string{filepath.Join(dir, "s0"), filepath.Join(dir, "s1"), filepath.Join(dir, "s2")}
	names := make([]string, shardAudiences)
	for i := range names {
		names[i] = fmt.Sprintf("a_%02d", i)
	}

	start := func(n int) []*workerProc {
		var ws []*workerProc
		for k := range n {
			ws = append(ws, startWorker(t, dir, env, "--shard", fmt.Sprintf("%d/%d", k, n), "--state", states[k], "--deliver-interval", "200ms", "--shutdown-timeout", "3s"))
		}
		return ws
	}
	runsOf := func(w *workerProc, name string) (uint64, string, string) {
		_, b := w.do("GET", "/audiences/"+name, "")
		var a struct {
			Runs    uint64
			Status  string
			Running bool
			Queued  bool
		}
		_ = json.Unmarshal(b, &a)
		if a.Running || a.Queued {
			a.Status = "busy"
		}
		return a.Runs, a.Status, string(b)
	}
	// runAll asks every worker to run every audience once more: only its
	// owner accepts, and the run is done when its run count passed the
	// count before the request.
	runAll := func(ws []*workerProc) {
		t.Helper()
		for _, name := range names {
			owners := 0
			for k, w := range ws {
				before, _, _ := runsOf(w, name)
				code, body := w.do("POST", "/audiences/"+name+"/run", testToken)
				for code == http.StatusConflict { // running already (enabling starts a first run): ask again once it is done
					time.Sleep(pollEvery)
					before, _, _ = runsOf(w, name)
					code, body = w.do("POST", "/audiences/"+name+"/run", testToken)
				}
				switch code {
				case http.StatusAccepted, http.StatusOK:
					owners++
					if want := engine.Owner(name, len(ws)); k != want {
						t.Errorf("%s ran on shard %d/%d, rendezvous hashing gives %d", name, k, len(ws), want)
					}
					w.eventually(name+" run", func() (bool, string) {
						runs, status, b := runsOf(w, name)
						return runs > before && status == "Live", b
					})
				case http.StatusNotFound:
				default:
					t.Fatalf("POST /audiences/%s/run on shard %d: %d %s", name, k, code, body)
				}
			}
			if owners != 1 {
				t.Fatalf("%s is owned by %d of %d shards", name, owners, len(ws))
			}
		}
	}
	waitEvents := func(ws []*workerProc, want []string) {
		t.Helper()
		ws[0].eventually(fmt.Sprintf("%d events", len(want)), func() (bool, string) {
			got := hook.received()
			n := 0
			for _, k := range want {
				if len(got[k]) > 0 {
					n++
				}
			}
			return n == len(want), fmt.Sprintf("%d of %d", n, len(want))
		})
	}
	stopAll := func(ws []*workerProc) {
		t.Helper()
		for _, w := range ws {
			if code := w.stop(syscall.SIGTERM); code != 0 {
				t.Fatalf("worker exited %d", code)
			}
		}
	}

	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	three := start(3)
	phase("3 workers started")
	for _, name := range names {
		owners := 0
		for _, w := range three {
			if code, _ := w.do("POST", "/audiences/"+name+"/enable", testToken); code == http.StatusOK {
				owners++
			}
		}
		if owners != 1 {
			t.Fatalf("%s enabled on %d shards", name, owners)
		}
	}
	runAll(three)
	phase("first cycles")
	first := expectedShardEvents(-1, 0)
	waitEvents(three, first)

	// The second cycle's events wait in the outboxes.
	hook.setDown(true)
	writeShardProfiles(t, dir, -5)
	runAll(three)
	phase("second cycles")
	stopAll(three)
	phase("stopped")

	// Shrink to 2: shard 2's audiences go where rendezvous hashing now
	// puts them; the others stay.
	moves := map[int][]string{}
	for _, name := range names {
		was, now := engine.Owner(name, 3), engine.Owner(name, 2)
		if was != 2 && was != now {
			t.Fatalf("%s moves from shard %d to %d: rendezvous hashing should keep it", name, was, now)
		}
		if was == 2 {
			moves[now] = append(moves[now], name)
		}
	}
	if len(moves[0])+len(moves[1]) == 0 {
		t.Fatal("shard 2 owned no audience: the test proves nothing")
	}
	for to, auds := range moves {
		args := []string{"state", states[2], "move", states[to]}
		for _, a := range auds {
			args = append(args, "--audience", a)
		}
		out, err := exec.Command(linkaudBin, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("state move: %v\n%s", err, out)
		}
		if got := strings.Count(string(out), "moved "); got != len(auds) {
			t.Fatalf("state move printed %d moves, want %d:\n%s", got, len(auds), out)
		}
	}

	phase("moved")
	hook.setDown(false)
	two := start(2)
	phase("2 workers started")
	second := expectedShardEvents(0, -5)
	waitEvents(two, append(slices.Clone(first), second...))
	// One more cycle everywhere: nothing changed, nothing is sent — a
	// moved audience did not lose its generation.
	phase("outboxes delivered")
	runAll(two)
	stopAll(two)
	phase("third cycles")

	got := hook.received()
	want := map[string]bool{}
	for _, k := range append(first, second...) {
		want[k] = true
	}
	for k, ids := range got {
		if !want[k] {
			t.Errorf("unexpected event %s", k)
		}
		if uniq := slices.Compact(slices.Sorted(slices.Values(ids))); len(uniq) != 1 {
			t.Errorf("%s delivered with %d different messageIds: %v", k, len(uniq), uniq)
		}
	}
	if len(got) != len(want) {
		t.Errorf("%d distinct events delivered, want %d", len(got), len(want))
	}
	t.Logf("3 shards → 2: %d + %d events, %d audiences moved (%d to shard 0, %d to shard 1)",
		len(first), len(second), len(moves[0])+len(moves[1]), len(moves[0]), len(moves[1]))
}
