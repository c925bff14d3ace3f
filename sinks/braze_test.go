package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

const brazeKey = "braze-rest-key-0123"

// brazeFake is POST /users/track as Braze documents it
// (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/,
// https://www.braze.com/docs/api/objects_filters/user_attributes_object/,
// https://www.braze.com/docs/api/objects_filters/event_object/), decoded
// from the documented fields, not from linkaud's structs:
//
//   - Bearer auth (401 otherwise), JSON;
//   - at most 75 objects across attributes, events and purchases;
//   - every object has exactly one identifier: external_id, user_alias
//     {alias_name, alias_label}, braze_id, email or phone;
//     _update_existing_only is an optional boolean;
//   - an event has name and an ISO 8601 time, optional app_id and
//     properties, and nothing else;
//   - the request is processed attributes first, then events (the order
//     Braze documents), which is the order received() reports;
//   - an event whose name is in minor gets a minor error (2xx, "errors"
//     with input_array and index); a request holding an object whose
//     test_tag is in fatal is refused whole with 400, as Braze does for a
//     malformed object, without saying which.
type brazeFake struct {
	minor map[string]bool
	fatal map[string]bool
	// seen records the identifier objects and flags of every object.
	seen []map[string]any
}

var brazeIdentifiers = []string{"external_id", "user_alias", "braze_id", "email", "phone"}

func (b *brazeFake) handle(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
	if r.Method != http.MethodPost || r.URL.Path != "/users/track" {
		return 404, `{"message":"Not Found - Invalid URL"}`, nil
	}
	if r.Header.Get("Authorization") != "Bearer "+brazeKey {
		return 401, `{"message":"Unauthorized - Unknown or missing REST API Key."}`, nil
	}
	wantHeader(t, r, "Content-Type", "application/json")
	var req map[string][]map[string]json.RawMessage
	if err := json.Unmarshal(body, &req); err != nil {
		t.Errorf("braze: body is not an object of arrays: %v", err)
		return 400, `{"message":"Invalid JSON"}`, nil
	}
	for k := range req {
		if k != "attributes" && k != "events" && k != "purchases" {
			t.Errorf("braze: undocumented top-level key %q", k)
		}
	}
	if n := len(req["attributes"]) + len(req["events"]) + len(req["purchases"]); n > 75 {
		t.Errorf("braze: %d objects in one request, the limit is 75", n)
		return 400, `{"message":"Too many objects"}`, nil
	}
	check := func(obj map[string]json.RawMessage, event bool) (tag string, ok bool) {
		ids := 0
		for _, k := range brazeIdentifiers {
			if _, has := obj[k]; has {
				ids++
			}
		}
		if ids != 1 {
			t.Errorf("braze: object with %d identifiers: %s", ids, obj)
		}
		if ua, has := obj["user_alias"]; has {
			var alias map[string]string
			if json.Unmarshal(ua, &alias) != nil || alias["alias_name"] == "" || alias["alias_label"] == "" || len(alias) != 2 {
				t.Errorf("braze: user_alias %s, want {alias_name, alias_label}", ua)
			}
		}
		if f, has := obj["_update_existing_only"]; has && string(f) != "true" && string(f) != "false" {
			t.Errorf("braze: _update_existing_only %s", f)
		}
		seen := map[string]any{}
		for _, k := range append(brazeIdentifiers, "_update_existing_only") {
			if v, has := obj[k]; has {
				seen[k] = string(v)
			}
		}
		b.seen = append(b.seen, seen)
		if !event {
			var attrs map[string]any
			_ = json.Unmarshal(mustJSON(obj), &attrs)
			tag, _ = attrs["test_tag"].(string)
			return tag, !b.fatal[tag]
		}
		for k := range obj {
			if !slices.Contains(brazeIdentifiers, k) && !slices.Contains([]string{"_update_existing_only", "app_id", "name", "time", "properties"}, k) {
				t.Errorf("braze: event with undocumented field %q", k)
			}
		}
		var e struct {
			Name       string         `json:"name"`
			Time       string         `json:"time"`
			Properties map[string]any `json:"properties"`
		}
		_ = json.Unmarshal(mustJSON(obj), &e)
		if e.Name == "" || !isRFC3339(e.Time) {
			t.Errorf("braze: event without name or ISO 8601 time: %s", mustJSON(obj))
		}
		tag, _ = e.Properties["test_tag"].(string)
		return tag, !b.fatal[tag]
	}
	var attrTags, eventTags, minor []string
	for _, a := range req["attributes"] {
		tag, ok := check(a, false)
		if !ok {
			return 400, `{"message":"Bad Request","errors":[]}`, nil
		}
		attrTags = append(attrTags, tag)
	}
	for i, e := range req["events"] {
		tag, ok := check(e, true)
		if !ok {
			return 400, `{"message":"Bad Request","errors":[]}`, nil
		}
		var name string
		_ = json.Unmarshal(e["name"], &name)
		if b.minor[name] {
			minor = append(minor, fmt.Sprintf(`{"type":"'%s' is not a valid custom event name","input_array":"events","index":%d}`, name, i))
			continue
		}
		eventTags = append(eventTags, tag)
	}
	resp := fmt.Sprintf(`{"message":"success","attributes_processed":%d,"events_processed":%d`, len(attrTags), len(eventTags))
	if len(minor) > 0 {
		resp += `,"errors":[` + strings.Join(minor, ",") + `]`
	}
	// Braze processes attributes, then events.
	return 201, resp + "}", append(attrTags, eventTags...)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func brazeHandler(minor map[string]bool) func(testing.TB, *http.Request, []byte) (int, string, []string) {
	return (&brazeFake{minor: minor}).handle
}

func openBraze(t testing.TB, f *fakeVendor, extra ...map[string]dsl.Setting) sinks.Destination {
	t.Helper()
	settings := map[string]dsl.Setting{
		"endpoint": {Secret: dsl.Secret{Env: "BRAZE_URL"}},
		"api_key":  {Secret: dsl.Secret{Env: "BRAZE_KEY"}},
	}
	for _, e := range extra {
		for k, v := range e {
			settings[k] = v
		}
	}
	d, err := sinks.Open(&dsl.Destination{Name: "braze", Type: "braze", Settings: settings},
		sinks.OpenOptions{LookupEnv: env(map[string]string{"BRAZE_URL": f.url(), "BRAZE_KEY": brazeKey})})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestBrazeShared(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) *sinktest.Target {
		f := newFakeVendor(t, brazeHandler(nil))
		return f.target(openBraze(t, f))
	})
}

// presetMessages are one message of each preset for profile u_123.
func presetMessages() []diff.Message {
	var out []diff.Message
	for j := range 5 {
		out = append(out, sinktest.Message(123, j, sinktest.GenOptions{}))
	}
	return out
}

// TestBrazeRequest: Entered precedes the profile's identify, and Braze
// processes attributes before events, so the identify goes in a second
// request, after Entered was answered.
func TestBrazeRequest(t *testing.T) {
	f := newFakeVendor(t, brazeHandler(nil))
	d := openBraze(t, f)
	if err := d.Send(context.Background(), presetMessages()); err != nil {
		t.Fatal(err)
	}
	reqs := f.recorded()
	if len(reqs) != 2 {
		t.Fatalf("%d requests, want 2", len(reqs))
	}
	wantJSON(t, reqs[0].body, `{"events": [
	    {"external_id": "u0123", "name": "Audience Entered", "time": "2026-11-28T10:00:00Z",
	     "properties": {"audience_key": "outstanding_balance", "outstanding_balance": true, "email": "u0123@example.com", "test_tag": "la-outstanding_balance-0123-000"}}]}`)
	wantJSON(t, reqs[1].body, `{
	  "attributes": [
	    {"external_id": "u0123", "outstanding_balance": true, "test_tag": "la-outstanding_balance-0123-001"}
	  ],
	  "events": [
	    {"external_id": "u0123", "name": "Entity Added", "time": "2026-11-28T10:00:00Z",
	     "properties": {"audience_key": "outstanding_balance", "outstanding_balance": true, "email": "u0123@example.com", "test_tag": "la-outstanding_balance-0123-002",
	       "_entity_context": {"account": {"id": "a_123", "type": "checking", "credit_card": {"id": "cc_123_2", "balance": "Outstanding"}}}}},
	    {"external_id": "u0123", "name": "Entity Removed", "time": "2026-11-28T10:00:00Z",
	     "properties": {"audience_key": "outstanding_balance", "outstanding_balance": false, "email": "u0123@example.com", "test_tag": "la-outstanding_balance-0123-003",
	       "_entity_context": {"account": {"id": "a_123", "type": "checking", "credit_card": {"id": "cc_123_3", "balance": "Outstanding"}}}}},
	    {"external_id": "u0123", "name": "Audience Exited", "time": "2026-11-28T10:00:00Z",
	     "properties": {"audience_key": "outstanding_balance", "outstanding_balance": false, "email": "u0123@example.com", "test_tag": "la-outstanding_balance-0123-004"}}
	  ]
	}`)
	sinktest.CheckReceived(t, presetMessages(), f.tags(), presetMessages())
}

// TestBrazeIdentifiers: each identifier setting puts the documented
// identifier in every object, and _update_existing_only where asked.
func TestBrazeIdentifiers(t *testing.T) {
	for _, tc := range []struct {
		name     string
		settings map[string]dsl.Setting
		want     map[string]any
	}{
		{"default external_id", nil, map[string]any{"external_id": `"u0123"`}},
		{"external_id, existing only", map[string]dsl.Setting{"update_existing_only": {Text: "true"}},
			map[string]any{"external_id": `"u0123"`, "_update_existing_only": "true"}},
		{"email from trait.email", map[string]dsl.Setting{"identifier": {Text: "email", FromTrait: "email"}},
			map[string]any{"email": `"u0123@example.com"`}},
		{"email (trait.email implied)", map[string]dsl.Setting{"identifier": {Text: "email"}},
			map[string]any{"email": `"u0123@example.com"`}},
		{"user_alias of the profile key", map[string]dsl.Setting{"identifier": {Text: "user_alias"}, "alias_label": {Text: "linkaud_id"}},
			map[string]any{"user_alias": `{"alias_label":"linkaud_id","alias_name":"u0123"}`, "_update_existing_only": "false"}},
		{"user_alias from a trait", map[string]dsl.Setting{"identifier": {Text: "user_alias", FromTrait: "email"}, "alias_label": {Text: "email"}},
			map[string]any{"user_alias": `{"alias_label":"email","alias_name":"u0123@example.com"}`, "_update_existing_only": "false"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := &brazeFake{}
			f := newFakeVendor(t, fake.handle)
			d := openBraze(t, f, tc.settings)
			if err := d.Send(context.Background(), presetMessages()); err != nil {
				t.Fatal(err)
			}
			if len(fake.seen) != 5 {
				t.Fatalf("%d objects, want 5", len(fake.seen))
			}
			for _, got := range fake.seen {
				if fmt.Sprint(got) != fmt.Sprint(tc.want) {
					t.Errorf("object identified by %v, want %v", got, tc.want)
				}
			}
		})
	}
	t.Run("settings refused", func(t *testing.T) {
		f := newFakeVendor(t, brazeHandler(nil))
		for _, tc := range []struct {
			settings map[string]dsl.Setting
			want     string
		}{
			{map[string]dsl.Setting{"identifier": {Text: "user_alias"}}, "identifier user_alias needs alias_label"},
			{map[string]dsl.Setting{"alias_label": {Text: "x"}}, "only applies to identifier user_alias"},
			{map[string]dsl.Setting{"identifier": {Text: "user_alias"}, "alias_label": {Text: "x"}, "update_existing_only": {Text: "true"}}, "needs update_existing_only false"},
			{map[string]dsl.Setting{"identifier": {Text: "phone"}}, "want one of user_id, email, user_alias"},
		} {
			settings := map[string]dsl.Setting{"endpoint": {Text: f.url()}, "api_key": {Secret: dsl.Secret{Env: "K"}}}
			for k, v := range tc.settings {
				settings[k] = v
			}
			_, err := sinks.Open(&dsl.Destination{Name: "b", Type: "braze", Settings: settings}, sinks.OpenOptions{LookupEnv: env(map[string]string{"K": brazeKey})})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%v: %v, want %q", tc.settings, err, tc.want)
			}
		}
	})
	t.Run("an event without the trait is a dead letter", func(t *testing.T) {
		f := newFakeVendor(t, brazeHandler(nil))
		d := openBraze(t, f, map[string]dsl.Setting{"identifier": {Text: "email", FromTrait: "work_email"}})
		ob := sinktest.NewOutbox()
		ob.Append("braze", presetMessages()...)
		st, err := sinks.Deliver(context.Background(), ob, "braze", d, sinktest.FastOptions())
		if err != nil || st.DeadLettered != 5 || len(f.recorded()) != 0 {
			t.Fatalf("Deliver = %+v, %v, %d requests; want 5 dead letters and no request", st, err, len(f.recorded()))
		}
		if r := ob.DeadLetters("braze")[0].Reason; !strings.Contains(r, "carries no trait.work_email") {
			t.Errorf("reason %q", r)
		}
	})
}

func TestBrazeBatchLimitAndMinorErrors(t *testing.T) {
	f := newFakeVendor(t, brazeHandler(map[string]bool{"Entity Removed": true}))
	d := openBraze(t, f)
	ob := sinktest.NewOutbox()
	msgs := ob.Append("braze", sinktest.Messages(sinktest.GenOptions{Profiles: 40, PerProfile: 5})...)
	st, err := sinks.Deliver(context.Background(), ob, "braze", d, sinktest.FastOptions())
	if err != nil {
		t.Fatal(err)
	}
	var removed, others []diff.Message
	for _, m := range msgs {
		if m.Event == "Entity Removed" {
			removed = append(removed, m)
		} else {
			others = append(others, m)
		}
	}
	if st.DeadLettered != len(removed) || st.Delivered != len(others) {
		t.Fatalf("Stats %+v; want the %d Entity Removed events dead-lettered", st, len(removed))
	}
	for _, dl := range ob.DeadLetters("braze") {
		if dl.Msg.Event != "Entity Removed" || !strings.Contains(dl.Reason, "not a valid custom event name") {
			t.Errorf("dead letter %s: %s", dl.Msg.ID, dl.Reason)
		}
	}
	sinktest.CheckReceived(t, others, f.tags(), others)
	t.Logf("%d messages in %d requests", len(msgs), st.Sends)
}

// TestBrazeOneBadEventAmong75: Braze refuses a request holding one bad
// object with a 400 that does not say which; the batch is split and resent
// until the bad one is alone: exactly it is dead-lettered, the 74 others
// arrive in per-profile order, and `deadletters retry` (Outbox.Retry)
// sends it again.
func TestBrazeOneBadEventAmong75(t *testing.T) {
	msgs := sinktest.Messages(sinktest.GenOptions{Profiles: 75, PerProfile: 1})
	bad := msgs[41]
	fake := &brazeFake{fatal: map[string]bool{bad.ID: true}}
	f := newFakeVendor(t, fake.handle)
	d := openBraze(t, f)
	ob := sinktest.NewOutbox()
	msgs = ob.Append("braze", msgs...)
	st, err := sinks.Deliver(context.Background(), ob, "braze", d, sinktest.FastOptions())
	if err != nil {
		t.Fatal(err)
	}
	dead := ob.DeadLetters("braze")
	if st.DeadLettered != 1 || len(dead) != 1 || dead[0].Msg.ID != bad.ID || st.Delivered != 74 {
		t.Fatalf("Stats %+v, dead letters %v; want only %s", st, dead, bad.ID)
	}
	if !strings.Contains(dead[0].Reason, "HTTP 400") {
		t.Errorf("reason %q", dead[0].Reason)
	}
	good := slices.DeleteFunc(slices.Clone(msgs), func(m diff.Message) bool { return m.ID == bad.ID })
	sinktest.CheckReceived(t, msgs, f.tags(), good)
	t.Logf("1 bad event among 75 isolated in %d requests", len(f.recorded()))

	// Fixed on Braze's side: the retried dead letter goes through.
	fake.fatal = nil
	if n, err := ob.Retry("braze", nil); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	st, err = sinks.Deliver(context.Background(), ob, "braze", d, sinktest.FastOptions())
	if err != nil || st.Delivered != 1 || len(ob.DeadLetters("braze")) != 0 {
		t.Fatalf("after retry: %+v, %v", st, err)
	}
	if tags := f.tags(); tags[len(tags)-1] != bad.ID {
		t.Errorf("last arrival %s, want the retried %s", tags[len(tags)-1], bad.ID)
	}
}

// TestBrazeOrdering: however a profile's identify and events are mixed in a
// batch, Braze's processing order (attributes, then events) never makes an
// identify overtake an earlier event of the same profile.
func TestBrazeOrdering(t *testing.T) {
	f := newFakeVendor(t, brazeHandler(nil))
	d := openBraze(t, f)
	ob := sinktest.NewOutbox()
	// Profile-major: each profile's Entered, identify, Added, Removed,
	// Exited in a row, 15 profiles: 75 messages in one batch.
	msgs := ob.Append("braze", sinktest.Messages(sinktest.GenOptions{Profiles: 15, PerProfile: 5, ProfileMajor: true})...)
	st, err := sinks.Deliver(context.Background(), ob, "braze", d, sinktest.FastOptions())
	if err != nil || st.Delivered != len(msgs) {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	sinktest.CheckReceived(t, msgs, f.tags(), msgs)
	t.Logf("%d messages, %d requests", len(msgs), len(f.recorded()))
}
