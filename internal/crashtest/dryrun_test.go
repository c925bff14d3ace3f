package crashtest

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/internal/crashpoint"
)

// TestDryRunThenRun: `linkaud run --dry-run` prints the events of the next
// cycle; then a dry run killed inside its cycle and a real run killed
// after its second audience committed; the step is finished as an
// operator would (finish). The events delivered for the step must be
// exactly those the dry run printed: the same messageIds, the same bytes.
// At step 1 (every activation's first cycle, send_current) and step 2 (a
// mutation of the data).
func TestDryRunThenRun(t *testing.T) {
	for _, step := range []int{1, 2} {
		t.Run("step"+string(rune('0'+step)), func(t *testing.T) {
			dir := setup(t)
			for s := 1; s < step; s++ {
				toStep(t, dir, s)
				must(t, dir, runArgs(s)...)
			}
			toStep(t, dir, step)
			before := map[string]int{}
			for _, f := range []string{"audit.jsonl", "crm.jsonl"} {
				before[f] = len(fileLines(t, filepath.Join(dir, "ws", f)))
			}
			dry := mustRun(t, dir, append(runArgs(step), "--dry-run")...)
			want := map[string]string{}
			for _, l := range strings.Split(strings.TrimSpace(dry.stdout), "\n") {
				var ev struct {
					Destination string          `json:"destination"`
					MessageID   string          `json:"messageId"`
					Payload     json.RawMessage `json:"payload"`
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil {
					t.Fatalf("dry run line %q: %v", l, err)
				}
				var c bytes.Buffer
				if err := json.Compact(&c, ev.Payload); err != nil {
					t.Fatal(err)
				}
				want[ev.MessageID] = ev.Destination + ".jsonl " + c.String()
			}
			if len(want) < 100 {
				t.Fatalf("the dry run of step %d shows only %d events:\n%s", step, len(want), dry.out)
			}
			for _, kill := range []struct {
				point string
				args  []string
			}{
				{"cycle.batch:2", append(runArgs(step), "--dry-run")},
				{"cycle.committed:2", runArgs(step)},
			} {
				r := linkaud(t, dir, []string{crashpoint.EnvPoint + "=" + kill.point}, 0, kill.args...)
				if !r.killed {
					t.Fatalf("%s was not reached (exit %d):\n%s", kill.point, r.code, r.out)
				}
				name, _, _ := strings.Cut(kill.point, ":")
				tally.add(func(c *counts) { c.pointKills++; c.byPoint[name]++ })
			}
			finish(t, dir, step)
			got := map[string]string{}
			for _, f := range []string{"audit.jsonl", "crm.jsonl"} {
				for _, l := range fileLines(t, filepath.Join(dir, "ws", f))[before[f]:] {
					var ev struct {
						MessageID string `json:"messageId"`
					}
					if err := json.Unmarshal([]byte(l), &ev); err != nil {
						t.Fatalf("%s: %q: %v", f, l, err)
					}
					got[ev.MessageID] = f + " " + l
				}
			}
			same(t, want, got)
			tally.add(func(c *counts) { c.runsCompared++ })
			t.Logf("step %d: %d events, the dry run's exactly, after two kills", step, len(got))
		})
	}
}

func fileLines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}
