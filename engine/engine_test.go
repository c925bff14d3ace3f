package engine

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
)

const testWorkspace = `
warehouse {
  load "ANALYTICS.PROFILES" from "profiles.csv"
  load "BANK.ACCOUNTS" from "accounts.csv"
  load "BANK.CREDIT_CARDS" from "cards.csv"
}
state "state"
graph {
  profile { table "ANALYTICS.PROFILES" key segment_id }
  entity account { table "BANK.ACCOUNTS" key id }
  entity credit_card { table "BANK.CREDIT_CARDS" key id }
  relationship profile -> account on profile.email = account.email
  relationship account -> credit_card on account.id = credit_card.account_id
}
audience outstanding {
  match profile -> account -> credit_card where balance = "Outstanding"
  enrich credit_card.balance, trait.email
}
destination audit { type file path "events.jsonl" }
activation added { audience outstanding destination audit event entity_added credit_card send_current true }
activation entered { audience outstanding destination audit event audience_entered send_current true }
activation exited { audience outstanding destination audit event audience_exited }
`

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// events reads the file destination's JSONL as "event userId entity" lines, sorted.
func events(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev struct {
			Event      string
			UserID     string
			Properties struct {
				EntityContext map[string]map[string]any `json:"_entity_context"`
			}
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		line := ev.Event + " " + ev.UserID
		if acc, ok := ev.Properties.EntityContext["account"]; ok {
			card, _ := acc["credit_card"].(map[string]any)
			line += " " + card["id"].(string)
		}
		out = append(out, line)
	}
	sort.Strings(out)
	return out
}

// openTestEngine writes testWorkspace with three profiles (u1 and u3 owe on
// a card) to a temp dir and opens an engine on it whose clock reads *now.
func openTestEngine(t *testing.T, now *time.Time) (e *Engine, ws *dsl.Workspace, dir string) {
	t.Helper()
	dir = t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la":        testWorkspace,
		"profiles.csv": "segment_id,email\nu1,a@x\nu2,b@x\nu3,c@x\n",
		"accounts.csv": "id,email\na1,a@x\na2,b@x\na3,c@x\n",
		"cards.csv":    "id,account_id,balance\nc1,a1,Outstanding\nc2,a2,Paid\nc3,a3,Outstanding\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(context.Background(), ws, Options{Now: func() time.Time { return *now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e.Close() })
	return e, ws, dir
}

func TestComputeAndDeliver(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	e, ws, dir := openTestEngine(t, &now)
	aud := ws.Audience("outstanding")
	if _, err := e.Compute(ctx, aud); err == nil {
		t.Fatal("a disabled audience computed")
	}
	if err := e.Store().Enable(aud.Name); err != nil {
		t.Fatal(err)
	}
	res, err := e.Compute(ctx, aud)
	if err != nil {
		t.Fatal(err)
	}
	if res.Members != 2 || res.Entered != 2 {
		t.Fatalf("first cycle: %+v", res.Counts)
	}
	stats, err := e.DeliverAll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if stats["audit"].Delivered != 4 {
		t.Fatalf("delivered %+v", stats)
	}
	evPath := filepath.Join(dir, "events.jsonl")
	want := []string{"Audience Entered u1", "Audience Entered u3", "Entity Added u1 c1", "Entity Added u3 c3"}
	if got := events(t, evPath); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events after cycle 1:\n%s", strings.Join(got, "\n"))
	}

	// u1 pays, u2 owes: one exit, one entry, one entity added.
	now = now.Add(time.Hour)
	writeFiles(t, dir, map[string]string{"cards.csv": "id,account_id,balance\nc1,a1,Paid\nc2,a2,Outstanding\nc3,a3,Outstanding\n"})
	if res, err = e.Compute(ctx, aud); err != nil {
		t.Fatal(err)
	}
	if res.Entered != 1 || res.Exited != 1 || res.Added != 1 || res.Removed != 1 {
		t.Fatalf("second cycle: %+v", res.Counts)
	}
	if _, err := e.DeliverAll(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "Audience Entered u2", "Audience Exited u1", "Entity Added u2 c2")
	sort.Strings(want)
	if got := events(t, evPath); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events after cycle 2:\n%s", strings.Join(got, "\n"))
	}

	// A file gone: the cycle fails, nothing changes, nothing is emitted.
	if err := os.Remove(filepath.Join(dir, "cards.csv")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Compute(ctx, aud); err == nil || !strings.Contains(err.Error(), "cards.csv") {
		t.Fatalf("cycle without cards.csv: %v", err)
	}
	st, err := e.Store().State(aud.Name)
	if err != nil {
		t.Fatal(err)
	}
	if st.Status != diff.Failed || !strings.Contains(st.Error, "cards.csv") || st.Members != 2 {
		t.Fatalf("state after failure: %+v", st)
	}
	if n, _ := e.Store().Backlog("audit"); n != 0 {
		t.Fatalf("a failed cycle left %d events", n)
	}
}

// TestLoadFailsOnlyItsReaders: a load file missing when the engine opens
// fails the cycles of the audiences that read its table, as a user error
// with the load's position, and no other cycle.
func TestLoadFailsOnlyItsReaders(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{
		"ws.la": testWorkspace + `audience emails { match trait email contains "@" }
`,
		"profiles.csv": "segment_id,email\nu1,a@x\nu2,b@x\n",
		"accounts.csv": "id,email\na1,a@x\n",
	})
	ws, diags := dsl.Load(dir, dsl.Options{})
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	e, err := Open(ctx, ws, Options{Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("a missing load file failed Open: %v", err)
	}
	defer e.Close()
	for _, name := range []string{"outstanding", "emails"} {
		if err := e.Store().Enable(name); err != nil {
			t.Fatal(err)
		}
	}
	if res, err := e.Compute(ctx, ws.Audience("emails")); err != nil || res.Members != 2 {
		t.Fatalf("the audience that reads no missing file: %+v %v", res, err)
	}
	_, err = e.Compute(ctx, ws.Audience("outstanding"))
	if !IsUserError(err) || !strings.Contains(err.Error(), `ws.la:5:3: load "BANK.CREDIT_CARDS": the file `) {
		t.Fatalf("the audience that reads the missing file: %v", err)
	}
	st, _ := e.Store().State("outstanding")
	runs, _ := e.Store().Runs("outstanding")
	if st.Status != diff.Failed || !strings.HasPrefix(st.Error, "ws.la:5:3: load") || len(runs) != 1 || runs[0].OK {
		t.Fatalf("state %+v, runs %+v", st, runs)
	}
}
