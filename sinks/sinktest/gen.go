package sinktest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/linkaud/linkaud/diff"
)

// GenOptions shape the messages Messages generates.
type GenOptions struct {
	// Profiles and PerProfile: how many profiles, and messages for each.
	Profiles, PerProfile int
	// Audiences the messages are spread over, by profile; default
	// {"outstanding_balance"}.
	Audiences []string
	// ProfileMajor lists each profile's messages together; by default
	// they are interleaved (every profile's first message, then every
	// second…), so a profile's messages land in different batches.
	ProfileMajor bool
	// Time is the events' timestamp; default 2026-11-28T10:00:00Z.
	Time time.Time
	// Pad adds a property of that many bytes to every event, to make
	// payloads big.
	Pad int
}

// The events Messages cycles through for each profile.
var genEvents = []struct{ name, typ string }{
	{"Audience Entered", "track"},
	{"Audience Membership Changed", "identify"},
	{"Entity Added", "track"},
	{"Entity Removed", "track"},
	{"Audience Exited", "track"},
}

// Messages returns realistic outbox messages: Segment-spec payloads as
// DESIGN.md defines them, one messageId each. Seq is left zero (Outbox.Append
// assigns it). Every payload carries its messageId, and a "test_tag"
// property (a trait for identify) holding the same value, so tests of
// destinations that drop messageId (Braze) can still tell messages apart.
func Messages(o GenOptions) []diff.Message {
	if len(o.Audiences) == 0 {
		o.Audiences = []string{"outstanding_balance"}
	}
	if o.Time.IsZero() {
		o.Time = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	}
	var out []diff.Message
	add := func(p, j int) {
		out = append(out, Message(p, j, o))
	}
	if o.ProfileMajor {
		for p := range o.Profiles {
			for j := range o.PerProfile {
				add(p, j)
			}
		}
	} else {
		for j := range o.PerProfile {
			for p := range o.Profiles {
				add(p, j)
			}
		}
	}
	return out
}

// Message returns the j-th message of profile p.
func Message(p, j int, o GenOptions) diff.Message {
	if len(o.Audiences) == 0 {
		o.Audiences = []string{"outstanding_balance"}
	}
	if o.Time.IsZero() {
		o.Time = time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	}
	ev := genEvents[j%len(genEvents)]
	aud := o.Audiences[p%len(o.Audiences)]
	user := fmt.Sprintf("u%04d", p)
	id := fmt.Sprintf("la-%s-%04d-%03d", aud, p, j)
	in := ev.name != "Audience Exited" && ev.name != "Entity Removed"
	payload := map[string]any{
		"type":      ev.typ,
		"userId":    user,
		"messageId": id,
		"timestamp": o.Time.UTC().Format(time.RFC3339),
		"context": map[string]any{
			"personas": map[string]any{"computation_key": aud, "computation_id": diff.ComputationID(aud), "computation_class": "audience"},
			"traits":   map[string]any{"email": user + "@example.com"},
		},
		"integrations": map[string]any{"All": false, "dest": true},
	}
	if ev.typ == "identify" {
		payload["traits"] = map[string]any{aud: in, "test_tag": id}
	} else {
		payload["event"] = ev.name
		props := map[string]any{
			"audience_key": aud,
			aud:            in,
			"email":        user + "@example.com",
			"test_tag":     id,
		}
		if strings.HasPrefix(ev.name, "Entity") {
			props["_entity_context"] = map[string]any{
				"account": map[string]any{
					"id": fmt.Sprintf("a_%d", p), "type": "checking",
					"credit_card": map[string]any{"id": fmt.Sprintf("cc_%d_%d", p, j), "balance": "Outstanding"},
				},
			}
		}
		if o.Pad > 0 {
			props["pad"] = strings.Repeat("x", o.Pad)
		}
		payload["properties"] = props
	}
	b, err := json.Marshal(payload)
	if err != nil {
		panic(err)
	}
	return diff.Message{
		ID:         id,
		Activation: "act_" + aud,
		Audience:   aud,
		Event:      ev.name,
		Type:       ev.typ,
		UserID:     user,
		Payload:    b,
	}
}

// Tag returns the test_tag a generated payload carries (its messageId), or
// "" if it has none.
func Tag(payload []byte) string {
	var p struct {
		Properties struct {
			Tag string `json:"test_tag"`
		} `json:"properties"`
		Traits struct {
			Tag string `json:"test_tag"`
		} `json:"traits"`
	}
	if json.Unmarshal(payload, &p) != nil {
		return ""
	}
	if p.Properties.Tag != "" {
		return p.Properties.Tag
	}
	return p.Traits.Tag
}
