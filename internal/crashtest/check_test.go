package crashtest

import (
	"bufio"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
)

// deliveries are the events of both file destinations of a workspace.
type deliveries struct {
	// events by messageId: the line, prefixed with its file's name (with
	// the timestamp blanked when delivered was asked to).
	events map[string]string
	// dups counts lines that repeat an earlier messageId.
	dups int
}

var (
	messageIDField = regexp.MustCompile(`"messageId":"[^"]*",?`)
	timestampField = regexp.MustCompile(`"timestamp":"[^"]*"`)
)

// delivered reads both destinations' JSONL files and checks them:
//   - each line is a whole JSON event (no torn line);
//   - a messageId seen twice carries the same bytes;
//   - one event (its bytes without the messageId) never comes under two
//     messageIds: a retried or recomputed event keeps its id.
//
// blankTime replaces each timestamp in the returned events (the worker
// stamps events with the wall clock; the checks above use the bytes).
func delivered(t *testing.T, dir string, blankTime bool) deliveries {
	t.Helper()
	return deliveredTo(t, dir, blankTime, "audit.jsonl", "crm.jsonl")
}

// deliveredTo is delivered for the file destinations writing files.
func deliveredTo(t *testing.T, dir string, blankTime bool, files ...string) deliveries {
	t.Helper()
	d := deliveries{events: map[string]string{}}
	idOf := map[string]string{} // event without its messageId → messageId
	for _, name := range files {
		f, err := os.Open(filepath.Join(dir, "ws", name))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		raw := map[string]string{}
		for sc.Scan() {
			var ev struct {
				MessageID string `json:"messageId"`
			}
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.MessageID == "" {
				t.Fatalf("%s: not a whole event (%v): %q", name, err, sc.Text())
			}
			line := sc.Text()
			if prev, ok := raw[ev.MessageID]; ok {
				if prev != line {
					t.Fatalf("messageId %s delivered with different contents:\n%s\n%s", ev.MessageID, prev, line)
				}
				d.dups++
				continue
			}
			if _, ok := d.events[ev.MessageID]; ok {
				t.Fatalf("messageId %s delivered to two destinations", ev.MessageID)
			}
			raw[ev.MessageID] = line
			identity := name + " " + messageIDField.ReplaceAllString(line, "")
			if id, ok := idOf[identity]; ok {
				t.Fatalf("one event delivered under two messageIds, %s and %s:\n%s", id, ev.MessageID, line)
			}
			idOf[identity] = ev.MessageID
			if blankTime {
				line = timestampField.ReplaceAllString(line, `"timestamp":"-"`)
			}
			d.events[ev.MessageID] = name + " " + line
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return d
}

// same fails unless got holds exactly the events of want: none missing
// (nothing lost) and none extra (no event for a change that did not
// happen: every delivered messageId is one the clean run delivered, with
// the same bytes).
func same(t *testing.T, want, got map[string]string) {
	t.Helper()
	var missing, extra []string
	for id, line := range want {
		if got[id] != line {
			missing = append(missing, line)
		}
	}
	for id, line := range got {
		if want[id] != line {
			extra = append(extra, line)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("delivered events differ from a clean run's: %d missing, %d extra or different\nmissing (first 5): %q\nextra (first 5): %q",
			len(missing), len(extra), missing[:min(5, len(missing))], extra[:min(5, len(extra))])
	}
}

// audienceState is a line of `linkaud audiences DIR list --json`.
type audienceState struct {
	Name       string `json:"name"`
	Enabled    bool   `json:"enabled"`
	Status     string `json:"status"`
	Error      string `json:"error"`
	Generation uint64 `json:"generation"`
	Runs       uint64 `json:"runs"`
}

// checkState opens the state the way an operator would (`linkaud
// audiences ws list --json`, which recovers what a killed process left)
// while step is under way, and checks it: the command succeeds, every
// audience is there, enabled, and Live, Failed with a reason, or
// Computing before its first cycle ever ran; its generation is step-1 or
// step. It returns the generations.
func checkState(t *testing.T, dir string, step int) map[string]uint64 {
	t.Helper()
	r := mustRun(t, dir, "audiences", "ws", "list", "--json")
	out := r.stdout
	gens := map[string]uint64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var a audienceState
		if err := json.Unmarshal([]byte(line), &a); err != nil {
			t.Fatalf("audiences list: %v: %s", err, line)
		}
		ok := a.Enabled && a.Generation+1 >= uint64(step) && a.Generation <= uint64(step)
		switch a.Status {
		case "Live":
		case "Failed":
			ok = ok && a.Error != ""
		case "Computing":
			ok = ok && a.Generation == 0 && a.Runs == 0
		default:
			ok = false
		}
		if !ok {
			t.Fatalf("step %d: audience state after reopening: %s", step, line)
		}
		gens[a.Name] = a.Generation
	}
	for _, a := range audiences {
		if _, ok := gens[a]; !ok {
			t.Fatalf("step %d: audience %s missing from the state:\n%s", step, a, out)
		}
	}
	recovered := strings.Count(r.out, "discarding an interrupted cycle")
	tally.add(func(c *counts) { c.stateChecks++; c.recovered += recovered })
	return gens
}

// The memberships `linkaud preview` finds at each step of the reference
// (preview plans and queries, without the state, the differ or the
// outbox): members per audience, and outstanding_balance's (profile,
// credit card) pairs.
var (
	previewMu      sync.Mutex
	previewMembers [steps + 1]map[string]map[string]bool
	previewCards   [steps + 1]map[string]bool
	// previewDue are the due dates of previewCards, as JSON.
	previewDue [steps + 1]map[string]string
)

// checkAgainstPreview records the memberships of step s (whose data dir
// holds) and, at the last step, checks the reference's events against
// them: the events are exactly the changes between consecutive steps'
// memberships, so none is for a change that did not happen and none is
// missing, whatever the differ's state says.
func checkAgainstPreview(t *testing.T, dir string, s int) {
	t.Helper()
	previewMu.Lock()
	defer previewMu.Unlock()
	previewMembers[s] = map[string]map[string]bool{}
	previewCards[s] = map[string]bool{}
	previewDue[s] = map[string]string{}
	for _, a := range audiences {
		out := mustRun(t, dir, "preview", "ws", "-a", a, "--now", stepNow[s], "--format", "jsonl", "--limit", "0").stdout
		m := map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			var p struct {
				Key      string `json:"profile_key"`
				Entities []struct {
					Lowest struct {
						Entity, Key string
					} `json:"lowest"`
					Enrich map[string]json.RawMessage `json:"enrich"`
				} `json:"entities"`
			}
			if err := json.Unmarshal([]byte(line), &p); err != nil {
				t.Fatalf("preview %s: %v: %s", a, err, line)
			}
			m[p.Key] = true
			if a == "outstanding_balance" {
				for _, e := range p.Entities {
					previewCards[s][p.Key+" "+e.Lowest.Key] = true
					previewDue[s][p.Key+" "+e.Lowest.Key] = string(e.Enrich["credit_card.due_date"])
				}
			}
		}
		previewMembers[s][a] = m
	}
	if s < steps {
		return
	}

	want := map[string]bool{}
	diffInto := func(kind string, step int, cur, prev map[string]bool) {
		for k := range cur {
			if !prev[k] {
				want[fmt.Sprintf("%s %d %s", kind, step, k)] = true
			}
		}
	}
	empty := map[string]bool{}
	for step := 1; step <= steps; step++ {
		prevM := func(a string) map[string]bool {
			if step == 1 {
				return empty
			}
			return previewMembers[step-1][a]
		}
		prevCards := empty
		if step > 1 {
			prevCards = previewCards[step-1]
		}
		for _, a := range []string{"outstanding_balance", "card_transactions", "premium_heavy_users"} {
			diffInto("entered "+a, step, previewMembers[step][a], prevM(a))
			if step > 1 {
				diffInto("exited "+a, step, prevM(a), previewMembers[step][a])
			}
		}
		diffInto("identify platinum_cat_owners=true", step, previewMembers[step]["platinum_cat_owners"], prevM("platinum_cat_owners"))
		if step > 1 {
			diffInto("identify platinum_cat_owners=false", step, prevM("platinum_cat_owners"), previewMembers[step]["platinum_cat_owners"])
		}
		diffInto("added outstanding_balance", step, previewCards[step], prevCards)
		if step > 1 {
			diffInto("removed outstanding_balance", step, prevCards, previewCards[step])
			for k := range previewCards[step] {
				if prevCards[k] && previewDue[step][k] != previewDue[step-1][k] {
					want[fmt.Sprintf("changed outstanding_balance %d %s", step, k)] = true
				}
			}
		}
	}

	got := map[string]bool{}
	d := delivered(t, dir, false)
	for _, line := range d.events {
		_, body, _ := strings.Cut(line, " ")
		var ev struct {
			Type, Event, UserID, Timestamp string
			Properties                     struct {
				AudienceKey  string `json:"audience_key"`
				Reason       string `json:"reason"`
				EntityValues string `json:"entity_values"`
				Changes      map[string]struct {
					From, To json.RawMessage
				} `json:"changes"`
				EntityContext struct {
					Account struct {
						CreditCard struct {
							ID string `json:"id"`
						} `json:"credit_card"`
					} `json:"account"`
				} `json:"_entity_context"`
			}
			Traits map[string]any
		}
		if err := json.Unmarshal([]byte(body), &ev); err != nil {
			t.Fatal(err)
		}
		step := slices.Index(stepNow[:], ev.Timestamp)
		var k string
		switch {
		case ev.Type == "identify":
			k = fmt.Sprintf("identify platinum_cat_owners=%v %d %s", ev.Traits["platinum_cat_owners"], step, ev.UserID)
		case ev.Event == "Audience Entered":
			k = fmt.Sprintf("entered %s %d %s", ev.Properties.AudienceKey, step, ev.UserID)
		case ev.Event == "Audience Exited":
			k = fmt.Sprintf("exited %s %d %s", ev.Properties.AudienceKey, step, ev.UserID)
		case ev.Event == "Entity Added":
			k = fmt.Sprintf("added %s %d %s %s", ev.Properties.AudienceKey, step, ev.UserID, ev.Properties.EntityContext.Account.CreditCard.ID)
		case ev.Event == "Entity Removed":
			card := ev.Properties.EntityContext.Account.CreditCard.ID
			k = fmt.Sprintf("removed %s %d %s %s", ev.Properties.AudienceKey, step, ev.UserID, card)
			reason := "no_longer_matches"
			if !previewMembers[step]["outstanding_balance"][ev.UserID] {
				reason = "profile_exited"
			}
			if ev.Properties.Reason != reason || (ev.Properties.EntityValues != "current" && ev.Properties.EntityValues != "last_seen") {
				t.Fatalf("the removal of %s from %s says reason %q, entity_values %q; want reason %q: %s", card, ev.UserID, ev.Properties.Reason, ev.Properties.EntityValues, reason, line)
			}
		case ev.Event == "Entity Changed":
			pair := ev.UserID + " " + ev.Properties.EntityContext.Account.CreditCard.ID
			k = fmt.Sprintf("changed %s %d %s", ev.Properties.AudienceKey, step, pair)
			ch, ok := ev.Properties.Changes["due_date"]
			if !ok || len(ev.Properties.Changes) != 1 || string(ch.From) != previewDue[step-1][pair] || string(ch.To) != previewDue[step][pair] {
				t.Fatalf("Entity Changed of %s: changes %+v, want due_date from %s to %s: %s", pair, ev.Properties.Changes, previewDue[step-1][pair], previewDue[step][pair], line)
			}
		default:
			t.Fatalf("unexpected event: %s", line)
		}
		if got[k] {
			t.Fatalf("two events for one change %q", k)
		}
		got[k] = true
	}
	var missing, extra []string
	kinds := map[string]int{}
	for k := range want {
		if !got[k] {
			missing = append(missing, k)
		}
		f := strings.Fields(k)
		kinds[fmt.Sprintf("%s %s step %s", f[0], f[1], f[2])]++
	}
	for k := range got {
		if !want[k] {
			extra = append(extra, k)
		}
	}
	if len(missing)+len(extra) > 0 {
		slices.Sort(missing)
		slices.Sort(extra)
		t.Fatalf("the clean run's events are not the changes preview finds: %d missing, %d for no change\nmissing (first 5): %q\nextra (first 5): %q",
			len(missing), len(extra), missing[:min(5, len(missing))], extra[:min(5, len(extra))])
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		fmt.Fprintf(&b, "\n  %-60s %5d", k, kinds[k])
	}
	t.Logf("the clean run's %d events are exactly the changes of membership between steps per `linkaud preview`:%s", len(got), b.String())
}
