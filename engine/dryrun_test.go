package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestDryRunThenRun: a dry run commits nothing (same generation, runs and
// outbox after it, nothing in the file destination), and the real run
// right after emits exactly the events the dry run printed, byte for
// byte, messageIds included; also on a second cycle with changed data and
// with events of an earlier cycle still in the outbox.
func TestDryRunThenRun(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e, _, dir := openTestEngine(t, &now)
	if err := e.Store().Enable("outstanding"); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "events.jsonl")
	for cycle := 1; cycle <= 3; cycle++ {
		before, err := e.Store().State("outstanding")
		if err != nil {
			t.Fatal(err)
		}
		backlog, _ := e.Store().Backlog("audit")
		delivered := lines(t, file)
		dry, err := e.DryRun(ctx, RunOptions{})
		if err != nil {
			t.Fatal(err)
		}
		after, _ := e.Store().State("outstanding")
		if after.Generation != before.Generation || after.Runs != before.Runs {
			t.Fatalf("cycle %d: the dry run changed the state: %+v → %+v", cycle, before, after)
		}
		if n, _ := e.Store().Backlog("audit"); n != backlog || len(lines(t, file)) != len(delivered) {
			t.Fatalf("cycle %d: the dry run queued or delivered events", cycle)
		}
		if len(dry.Audiences) != 1 || dry.Audiences[0].Err != nil || dry.Audiences[0].Result.Generation != before.Generation+1 {
			t.Fatalf("cycle %d: dry run %+v", cycle, dry.Audiences)
		}
		var b strings.Builder
		if err := dry.WriteSummary(&b); err != nil || !strings.Contains(b.String(), "nothing was committed or delivered") {
			t.Fatalf("summary %q, %v", b.String(), err)
		}
		if cycle == 3 {
			break // unchanged data: the third dry run has nothing to send
		}
		rep, err := e.RunOnce(ctx, RunOptions{})
		if err != nil || rep.Err() != nil {
			t.Fatal(err, rep.Err())
		}
		got := lines(t, file)[len(delivered):]
		var want []string
		for _, m := range dry.Events {
			var c bytes.Buffer
			if err := json.Compact(&c, m.Payload); err != nil {
				t.Fatal(err)
			}
			want = append(want, c.String())
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") || len(want) == 0 && cycle == 1 {
			t.Fatalf("cycle %d: the real run delivered\n%s\nthe dry run showed\n%s", cycle, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		t.Logf("cycle %d: %d events, the same in the dry run and the run", cycle, len(got))
		// The next hour: a card paid, another outstanding.
		writeFiles(t, dir, map[string]string{"cards.csv": "id,account_id,balance\nc1,a1,Paid\nc2,a2,Outstanding\nc3,a3,Outstanding\n"})
		now = now.Add(time.Hour)
	}
}

func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
}
