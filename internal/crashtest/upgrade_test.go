package crashtest

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/linkaud/linkaud/internal/crashpoint"
)

// The upgrade scenario starts from a state directory written by linkaud
// before entity events were per (profile, entity): engine/testdata/
// state-eb68a96.tar.gz (see engine/upgrade_test.go), one generation of
// audience wishers, two Entity Added for the product t1 has on two
// wishlists, two Audience Entered still in the outbox. Its webhook
// destination becomes a file here. Then four steps: a product back in
// stock (the first cycle after the upgrade, which also delivers the old
// version's pending events), one of the two chains to p1 gone, the other
// gone (Entity Removed, current values), t1's last product out of stock (t1
// exits: Entity Removed profile_exited, Audience Exited).
const upgradeFixture = "../../engine/testdata/state-eb68a96.tar.gz"

var upgradeSteps = [...]struct {
	now   string
	files map[string]string
}{
	{"2026-03-15T13:00:00Z", map[string]string{"products.csv": "id,name,stock\np1,Tent,4\np2,Stove,2\np3,Lamp,5\np9,Kayak,1\n"}},
	{"2026-03-15T14:00:00Z", map[string]string{"wishlist_items.csv": "wishlist_id,product_id\nw1,p9\nw2,p1\nw3,p2\nw3,p2\nw4,p3\n"}},
	{"2026-03-15T15:00:00Z", map[string]string{"wishlist_items.csv": "wishlist_id,product_id\nw1,p9\nw3,p2\nw3,p2\nw4,p3\n"}},
	{"2026-03-15T16:00:00Z", map[string]string{"products.csv": "id,name,stock\np1,Tent,4\np2,Stove,2\np3,Lamp,5\np9,Kayak,0\n"}},
}

// upgradeWorkspace extracts the fixture into dir/ws, with the webhook
// made a file destination.
func upgradeWorkspace(t *testing.T, dir string) {
	t.Helper()
	ws := filepath.Join(dir, "ws")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(upgradeFixture)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("tar", "-xzf", abs, "-C", ws).CombinedOutput(); err != nil {
		t.Fatalf("extracting %s: %v\n%s", upgradeFixture, err, out)
	}
	la := filepath.Join(ws, "ws.la")
	b, err := os.ReadFile(la)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(b), `destination hook { type webhook url env("HOOK_URL") }`, `destination hook { type file path "hook.jsonl" }`, 1)
	if text == string(b) {
		t.Fatal("the fixture's workspace has no webhook destination to replace")
	}
	if err := os.WriteFile(la, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func upgradeStep(t *testing.T, dir string, s int) []string {
	t.Helper()
	for name, body := range upgradeSteps[s].files {
		if err := os.WriteFile(filepath.Join(dir, "ws", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return []string{"run", "ws", "--now", upgradeSteps[s].now, "--log-level", "error", "--no-timings"}
}

// upgradeGeneration reopens the state as an operator would and returns
// wishers' generation; its status must be Live or Failed with a reason.
func upgradeGeneration(t *testing.T, dir string) uint64 {
	t.Helper()
	var a audienceState
	out := mustRun(t, dir, "audiences", "ws", "list", "--json").stdout
	if err := json.Unmarshal([]byte(strings.TrimSpace(out)), &a); err != nil || a.Name != "wishers" {
		t.Fatalf("audiences list: %v: %s", err, out)
	}
	if !(a.Status == "Live" || a.Status == "Failed" && a.Error != "") {
		t.Fatalf("wishers after reopening: %s", out)
	}
	return a.Generation
}

// TestUpgradeCrashPoints upgrades the old state with the current binary,
// killed at a hit of every crash point of each step; finished as an
// operator would, the delivered events, deduplicated by messageId, must be
// a clean upgrade's.
func TestUpgradeCrashPoints(t *testing.T) {
	files := []string{"events.jsonl", "hook.jsonl"}
	clean := t.TempDir()
	upgradeWorkspace(t, clean)
	var hits [len(upgradeSteps)]map[string]int
	for s := range upgradeSteps {
		trace := filepath.Join(clean, fmt.Sprintf("trace%d", s))
		res := linkaud(t, clean, []string{crashpoint.EnvTrace + "=" + trace}, 0, upgradeStep(t, clean, s)...)
		if res.killed || res.code != 0 {
			t.Fatalf("clean step %d: exit %d:\n%s", s, res.code, res.out)
		}
		b, err := os.ReadFile(trace)
		if err != nil {
			t.Fatal(err)
		}
		hits[s] = map[string]int{}
		for _, name := range strings.Fields(string(b)) {
			hits[s][name]++
		}
	}
	want := deliveredTo(t, clean, false, files...)
	var kinds []string
	for _, line := range want.events {
		var ev struct{ Event, UserID string }
		_, body, _ := strings.Cut(line, " ")
		json.Unmarshal([]byte(body), &ev)
		kinds = append(kinds, ev.Event+" "+ev.UserID)
	}
	// The old version's 4 Entity Added and 2 pending Audience Entered, t3's
	// Entity Added and Entered, t1's Entity Removed of p1, then of p9 and
	// its Audience Exited.
	if len(want.events) != 11 {
		t.Fatalf("a clean upgrade delivered %d events, want 11: %q", len(want.events), kinds)
	}
	var mu sync.Mutex
	killed := map[string]int{}
	t.Run("cases", func(t *testing.T) {
		for s := range upgradeSteps {
			for pi, point := range crashpoint.Points {
				ns := picks(point, hits[s][point])
				if len(ns) == 0 {
					continue
				}
				if !full {
					ns = []int{ns[(s+pi)%len(ns)]}
				}
				for _, n := range ns {
					crash := point + ":" + strconv.Itoa(n)
					t.Run(fmt.Sprintf("step%d/%s", s+1, crash), func(t *testing.T) {
						t.Parallel()
						dir := t.TempDir()
						upgradeWorkspace(t, dir)
						for p := 0; p < s; p++ {
							must(t, dir, upgradeStep(t, dir, p)...)
						}
						args := upgradeStep(t, dir, s)
						res := linkaud(t, dir, []string{crashpoint.EnvPoint + "=" + crash}, 0, args...)
						switch {
						case res.killed:
							mu.Lock()
							killed[point]++
							mu.Unlock()
							tally.add(func(c *counts) { c.pointKills++; c.byPoint[point]++ })
							if upgradeGeneration(t, dir) == uint64(s+2) {
								args = append(args, "--deliver-only")
							}
							if out := must(t, dir, args...); strings.Contains(out, "left in the outbox") {
								t.Fatalf("finishing step %d left events in the outbox:\n%s", s+1, out)
							}
						case res.code != 0:
							t.Fatalf("step %d: exit %d:\n%s", s+1, res.code, res.out)
						}
						for p := s + 1; p < len(upgradeSteps); p++ {
							must(t, dir, upgradeStep(t, dir, p)...)
						}
						d := deliveredTo(t, dir, false, files...)
						same(t, want.events, d.events)
						tally.add(func(c *counts) { c.duplicates += d.dups; c.runsCompared++ })
					})
				}
			}
		}
	})
	t.Logf("upgrade: kills by point %v", killed)
	for _, p := range []string{"cycle.planned", "cycle.lookup", "pebble.sync", "cycle.committed", "deliver.sent"} {
		if killed[p] == 0 && !t.Failed() {
			t.Errorf("no upgrade case killed the process at %s", p)
		}
	}
}
