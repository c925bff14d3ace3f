package diff_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/diff"
)

// outboxOf lists every pending and dead-lettered message of the scenario's
// destinations without Seqs (a move gives new ones): destination, ID,
// event and payload, in order.
func outboxOf(t *testing.T, s *diff.Store) (pending, dead string) {
	t.Helper()
	var p, d strings.Builder
	for _, dest := range []string{"braze", "crm", "hook"} {
		msgs, err := s.Pending(dest, 0, 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range msgs {
			fmt.Fprintf(&p, "%s %s %s %s\n", dest, m.ID, m.Event, m.Payload)
		}
		dls, err := s.DeadLetters(dest)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range dls {
			fmt.Fprintf(&d, "%s %s %s %s\n", dest, m.ID, m.Reason, m.Payload)
		}
	}
	return p.String(), d.String()
}

func openAt(t *testing.T, dir string) *diff.Store {
	t.Helper()
	o := crashOptions(nil, false)
	o.FS = nil
	s, err := diff.Open(dir, o)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestMoveAudience moves an audience with a generation, pending events and
// dead letters to another state directory: the target holds exactly what
// the source held (same messageIds, same payloads), the source holds
// nothing of it, and the next cycle on the target sends what it would
// have sent on the source.
func TestMoveAudience(t *testing.T) {
	for _, interrupted := range []bool{false, true} {
		t.Run(fmt.Sprintf("interrupted=%v", interrupted), func(t *testing.T) {
			sc, from, _ := realStore(t)
			// The reference: the same history, never moved.
			_, ref, _ := realStore(t)
			defer from.Close()
			defer ref.Close()
			for _, s := range []*diff.Store{from, ref} {
				msgs, err := s.Pending("hook", 0, 2)
				if err != nil || len(msgs) != 2 {
					t.Fatal(msgs, err)
				}
				if err := s.DeadLetter("hook", msgs, "422 unprocessable"); err != nil {
					t.Fatal(err)
				}
			}
			before := take(t, from)
			histBefore, err := from.History("cards")
			if err != nil || len(histBefore) == 0 {
				t.Fatalf("history before the move: %v, %v", histBefore, err)
			}
			pendBefore, deadBefore := outboxOf(t, from)
			toDir := filepath.Join(t.TempDir(), "other")
			to := openAt(t, toDir)
			if interrupted {
				// A crash after the target's batch: both hold it.
				if err := diff.ReceiveOnly(from, to, "cards"); err != nil {
					t.Fatal(err)
				}
			}
			rep, err := diff.MoveAudience(from, to, "cards")
			if err != nil {
				t.Fatal(err)
			}
			if rep.Resumed != interrupted || rep.Generation != 1 {
				t.Errorf("report %+v", rep)
			}
			after := take(t, to)
			if after.status != before.status || after.members != before.members {
				t.Errorf("moved state\n%s\n%s\nwant\n%s\n%s", after.status, after.members, before.status, before.members)
			}
			if h, err := to.History("cards"); err != nil || fmt.Sprint(h) != fmt.Sprint(histBefore) {
				t.Errorf("moved size history %v, %v; want %v", h, err, histBefore)
			}
			pend, dead := outboxOf(t, to)
			if pend != pendBefore || dead != deadBefore {
				t.Errorf("moved outbox\n%s\ndead\n%s\nwant\n%s\ndead\n%s", pend, dead, pendBefore, deadBefore)
			}
			if p, d := outboxOf(t, from); p != "" || d != "" {
				t.Errorf("left in the source: %q %q", p, d)
			}
			if auds, err := from.Audiences(); err != nil || len(auds) != 0 {
				t.Errorf("source audiences %+v, %v", auds, err)
			}
			keys, err := diff.TableKeys(from)
			if err != nil {
				t.Fatal(err)
			}
			if keys[diff.TableEvent] != 0 || keys[diff.TableTemplate] != 0 {
				t.Errorf("source keys %v", keys)
			}
			if rep.Pending == 0 || rep.DeadLetters != 2 || rep.Rows == 0 || rep.Runs != 1 {
				if !interrupted {
					t.Errorf("report %+v", rep)
				}
			}
			// A second move finds nothing to move.
			if _, err := diff.MoveAudience(from, to, "cards"); err == nil {
				t.Error("moving a moved audience again succeeded")
			}

			// Generation 2 on the target and on the reference: the same events.
			if _, err := sc.cycle(t, to, sc.gen2, sc.start2); err != nil {
				t.Fatal(err)
			}
			if _, err := sc.cycle(t, ref, sc.gen2, sc.start2); err != nil {
				t.Fatal(err)
			}
			gotP, gotD := outboxOf(t, to)
			wantP, wantD := outboxOf(t, ref)
			if gotP != wantP || gotD != wantD {
				t.Errorf("after generation 2 on the target:\n%s\nwant (never moved):\n%s", gotP, wantP)
			}
			if a, b := take(t, to), take(t, ref); a.members != b.members || a.status != b.status {
				t.Errorf("generation 2: %s %s, want %s %s", a.status, a.members, b.status, b.members)
			}
			// Both stores reopen: their commit records agree with them.
			if err := to.Close(); err != nil {
				t.Fatal(err)
			}
			to = openAt(t, toDir)
			defer to.Close()
			if v, err := to.Verify(); err != nil || !v.OK() {
				t.Fatalf("verify the target: %+v, %v", v, err)
			}
			if v, err := from.Verify(); err != nil || !v.OK() {
				t.Fatalf("verify the source: %+v, %v", v, err)
			}
		})
	}
}
