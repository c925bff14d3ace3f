package web

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const whyWorkspace = workspace + `
destination audit { type file path "events.jsonl" }
activation gold_in { audience gold destination audit event audience_entered send_current true }
`

// TestWhyAndDryRun: GET /audiences/{name}/why is why's JSON (a top-level
// boolean member and the tree; a key no profile has is found false; an
// unknown audience 404); POST /audiences/{name}/dry-run needs the token,
// shows the events with their messageIds and commits nothing: the run
// after it delivers exactly those.
func TestWhyAndDryRun(t *testing.T) {
	const token = "s3cr3t-api-token"
	f := newFixtureFiles(t, token, map[string]string{
		"ws.la":        whyWorkspace,
		"profiles.csv": "segment_id,plan\nu1,gold\nu2,silver\nu3,gold\n",
	})
	for _, tc := range []struct {
		profile     string
		member      bool
		found       bool
		traitHolds  bool
		traitValues string
	}{{"u1", true, true, true, `"gold"`}, {"u2", false, true, false, `"silver"`}, {"nobody", false, false, false, ""}} {
		var res map[string]any
		body := f.want("GET", "/audiences/gold/why?profile="+tc.profile, "", http.StatusOK)
		if err := json.Unmarshal(body, &res); err != nil {
			t.Fatal(err)
		}
		if m, ok := res["member"].(bool); !ok || m != tc.member || res["found"] != tc.found {
			t.Fatalf("why %s: %s", tc.profile, body)
		}
		if tc.found {
			tree := res["condition"].(map[string]any)
			v, _ := json.Marshal(tree["values"].([]any)[0].(map[string]any)["value"])
			if tree["kind"] != "trait" || tree["holds"] != tc.traitHolds || string(v) != tc.traitValues {
				t.Fatalf("why %s: tree %s", tc.profile, body)
			}
		}
	}
	f.want("GET", "/audiences/gold/why", "", http.StatusBadRequest)
	f.want("GET", "/audiences/gold/why?profile=u1&max_rows=0", "", http.StatusBadRequest)
	if body := f.want("GET", "/audiences/gol/why?profile=u1", "", http.StatusNotFound); !strings.Contains(string(body), "did you mean gold") {
		t.Fatalf("unknown audience: %s", body)
	}

	for _, auth := range []string{"", "Bearer wrong"} {
		f.want("POST", "/audiences/gold/dry-run", auth, http.StatusUnauthorized)
	}
	var dry DryRun
	if err := json.Unmarshal(f.want("POST", "/audiences/gold/dry-run", "Bearer "+token, http.StatusOK), &dry); err != nil {
		t.Fatal(err)
	}
	if dry.Generation != 1 || dry.Counts == nil || dry.Counts.Entered != 2 || len(dry.Events) != 2 || dry.Events[0].MessageID == "" {
		t.Fatalf("dry run: %+v", dry)
	}
	var a Audience
	if err := json.Unmarshal(f.want("GET", "/audiences/gold", "", http.StatusOK), &a); err != nil {
		t.Fatal(err)
	}
	if a.Enabled || a.Generation != 0 || a.Runs != 0 {
		t.Fatalf("the dry run changed the state: %+v", a)
	}
	f.want("POST", "/audiences/gold/enable", "Bearer "+token, http.StatusOK)
	f.want("POST", "/audiences/gold/run", "Bearer "+token, http.StatusAccepted)
	file := filepath.Join(f.dir, "events.jsonl")
	deadline := time.Now().Add(time.Minute)
	for {
		b, _ := os.ReadFile(file)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(b) > 0 && len(lines) == len(dry.Events) {
			for i, l := range lines {
				var ev struct {
					MessageID string `json:"messageId"`
				}
				if err := json.Unmarshal([]byte(l), &ev); err != nil || ev.MessageID != dry.Events[i].MessageID {
					t.Fatalf("event %d delivered %s, the dry run showed %s", i, l, dry.Events[i].Payload)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the run delivered %q", b)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
