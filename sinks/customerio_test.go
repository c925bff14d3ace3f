package sinks_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

const cioSite, cioKey = "site-7c1aa", "track-key-9d2bb"

// cioFake is Customer.io's Track API (https://docs.customer.io/api/track/,
// Track v2: https://docs.customer.io/integrations/api/track/tag/track_v2/),
// decoded from the documented fields, Basic auth site_id:api_key:
//
//   - v1: PUT /api/v1/customers/{identifier} with attributes, POST
//     /api/v1/customers/{identifier}/events with name, data, timestamp;
//   - v2: POST /api/v2/batch {"batch": [entries]}, under 500 KB, each entry
//     at most 32 KB: {"type": "person", "identifiers": {"id"|"email"|
//     "cio_id": …} (exactly one), "action": "identify"|"event", …}; an
//     event has name, an optional ULID id (the deduplication key: an id
//     seen before is dropped), timestamp and attributes; an identify has
//     attributes. An entry Customer.io refuses is listed in a 207 answer
//     with its batch_index, reason, field and message; the others are
//     accepted.
//
// Identifiers in refuse are refused (207); a request holding an entry
// whose test_tag is in malformed is refused whole with 400.
type cioFake struct {
	refuse    map[string]bool
	malformed map[string]bool

	mu   sync.Mutex
	ids  map[string]bool // event ids seen (deduplication)
	dups int
}

func (c *cioFake) handle(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(cioSite+":"+cioKey))
	if r.Header.Get("Authorization") != auth {
		return 401, `{"meta":{"error":"Unauthorized request"}}`, nil
	}
	wantHeader(t, r, "Content-Type", "application/json")
	if r.URL.Path == "/api/v2/batch" && r.Method == http.MethodPost {
		return c.batch(t, body)
	}
	rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v1/customers/")
	if !ok || rest == "" {
		return 404, `{"meta":{"error":"not found"}}`, nil
	}
	id, isEvent := strings.CutSuffix(rest, "/events")
	switch {
	case isEvent && r.Method == http.MethodPost:
		var e struct {
			Name      string         `json:"name"`
			Data      map[string]any `json:"data"`
			Timestamp int64          `json:"timestamp"`
		}
		if !decodeStrict(t, body, &e) {
			return 400, `{}`, nil
		}
		if e.Name == "" || e.Data == nil || e.Timestamp < 1e9 || e.Data["email"] != id+"@example.com" {
			t.Errorf("customerio: event for %s: %+v", id, e)
		}
		return 200, `{}`, []string{tagOf(t, e.Data)}
	case !isEvent && r.Method == http.MethodPut:
		var attrs map[string]any
		if !decodeStrict(t, body, &attrs) {
			return 400, `{}`, nil
		}
		return 200, `{}`, []string{tagOf(t, attrs)}
	}
	t.Errorf("customerio: %s %s", r.Method, r.URL.Path)
	return 404, `{}`, nil
}

func (c *cioFake) batch(t testing.TB, body []byte) (int, string, []string) {
	if len(body) >= 500_000 {
		t.Errorf("customerio: batch of %d bytes, the limit is 500 KB", len(body))
		return 400, `{"errors":[{"reason":"batch too large"}]}`, nil
	}
	var req struct {
		Batch []json.RawMessage `json:"batch"`
	}
	if !decodeStrict(t, body, &req) {
		return 400, `{"errors":[{"reason":"invalid json"}]}`, nil
	}
	var tags, refused []string
	type entry struct {
		Type        string            `json:"type"`
		Identifiers map[string]string `json:"identifiers"`
		Action      string            `json:"action"`
		ID          string            `json:"id"`
		Name        string            `json:"name"`
		Timestamp   int64             `json:"timestamp"`
		Attributes  map[string]any    `json:"attributes"`
	}
	var accepted []entry
	for i, raw := range req.Batch {
		if len(raw) > 32<<10 {
			t.Errorf("customerio: entry of %d bytes, the limit is 32 KB", len(raw))
		}
		var e entry
		if !decodeStrict(t, raw, &e) {
			return 400, `{"errors":[{"reason":"invalid entry"}]}`, nil
		}
		if e.Type != "person" || len(e.Identifiers) != 1 {
			t.Errorf("customerio: entry %s", raw)
		}
		var ident string
		for k, v := range e.Identifiers {
			if k != "id" && k != "email" && k != "cio_id" {
				t.Errorf("customerio: identifier %q", k)
			}
			ident = v
		}
		switch e.Action {
		case "event":
			if e.Name == "" || e.Timestamp < 1e9 || e.Attributes == nil {
				t.Errorf("customerio: event entry %s", raw)
			}
			if _, err := ulid.ParseStrict(e.ID); err != nil {
				t.Errorf("customerio: event id %q is not a ULID: %v", e.ID, err)
			}
		case "identify":
			if e.ID != "" || e.Name != "" {
				t.Errorf("customerio: identify entry with event fields: %s", raw)
			}
		default:
			t.Errorf("customerio: action %q", e.Action)
		}
		tag := tagOf(t, e.Attributes)
		if c.malformed[tag] {
			return 400, `{"errors":[{"reason":"malformed request"}]}`, nil
		}
		if c.refuse[ident] {
			refused = append(refused, fmt.Sprintf(`{"batch_index":%d,"reason":"invalid","field":"identifiers","message":"identifier %s is not valid"}`, i, ident))
			continue
		}
		accepted = append(accepted, e)
		tags = append(tags, tag)
	}
	c.mu.Lock()
	if c.ids == nil {
		c.ids = map[string]bool{}
	}
	for _, e := range accepted {
		if e.Action == "event" {
			if c.ids[e.ID] {
				c.dups++
			}
			c.ids[e.ID] = true
		}
	}
	c.mu.Unlock()
	if len(refused) > 0 {
		return 207, `{"errors":[` + strings.Join(refused, ",") + `]}`, tags
	}
	return 200, `{}`, tags
}

func customerIOHandler() func(testing.TB, *http.Request, []byte) (int, string, []string) {
	return (&cioFake{}).handle
}

func openCustomerIO(t testing.TB, f *fakeVendor, extra map[string]dsl.Setting) sinks.Destination {
	t.Helper()
	settings := map[string]dsl.Setting{
		"endpoint": {Text: f.url()},
		"site_id":  {Text: cioSite},
		"api_key":  {Secret: dsl.Secret{Env: "CIO_KEY"}},
	}
	for k, v := range extra {
		settings[k] = v
	}
	d, err := sinks.Open(&dsl.Destination{Name: "cio", Type: "customerio", Settings: settings},
		sinks.OpenOptions{LookupEnv: env(map[string]string{"CIO_KEY": cioKey})})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestCustomerIOShared(t *testing.T) {
	for _, api := range []string{"v1", "v2"} {
		t.Run(api, func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) *sinktest.Target {
				f := newFakeVendor(t, customerIOHandler())
				return f.target(openCustomerIO(t, f, map[string]dsl.Setting{"api": {Text: api}, "request_rate": {Text: "5000"}}))
			})
		})
	}
}

func TestCustomerIORequests(t *testing.T) {
	t.Run("v2", func(t *testing.T) {
		f := newFakeVendor(t, customerIOHandler())
		d := openCustomerIO(t, f, nil)
		if err := d.Send(context.Background(), presetMessages()); err != nil {
			t.Fatal(err)
		}
		reqs := f.recorded()
		// One entry per profile a request: the five presets of u0123 go
		// one after the other.
		if len(reqs) != 5 {
			t.Fatalf("%d requests, want 5", len(reqs))
		}
		at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
		wantJSON(t, reqs[0].body, `{"batch":[{"type":"person","identifiers":{"id":"u0123"},"action":"event",
		  "id":"`+sinks.EventULID("la-outstanding_balance-0123-000", at)+`","name":"Audience Entered","timestamp":1795860000,
		  "attributes":{"audience_key":"outstanding_balance","outstanding_balance":true,"email":"u0123@example.com","test_tag":"la-outstanding_balance-0123-000"}}]}`)
		wantJSON(t, reqs[1].body, `{"batch":[{"type":"person","identifiers":{"id":"u0123"},"action":"identify",
		  "attributes":{"outstanding_balance":true,"test_tag":"la-outstanding_balance-0123-001"}}]}`)
	})
	t.Run("v2 by email", func(t *testing.T) {
		f := newFakeVendor(t, customerIOHandler())
		d := openCustomerIO(t, f, map[string]dsl.Setting{"identifier": {Text: "email"}})
		if err := d.Send(context.Background(), presetMessages()[:1]); err != nil {
			t.Fatal(err)
		}
		if b := string(f.recorded()[0].body); !strings.Contains(b, `"identifiers":{"email":"u0123@example.com"}`) {
			t.Errorf("body %s", b)
		}
	})
	t.Run("v1", func(t *testing.T) {
		f := newFakeVendor(t, customerIOHandler())
		d := openCustomerIO(t, f, map[string]dsl.Setting{"api": {Text: "v1"}})
		if err := d.Send(context.Background(), presetMessages()); err != nil {
			t.Fatal(err)
		}
		reqs := f.recorded()
		want := []string{"POST /api/v1/customers/u0123/events", "PUT /api/v1/customers/u0123", "POST /api/v1/customers/u0123/events",
			"POST /api/v1/customers/u0123/events", "POST /api/v1/customers/u0123/events"}
		var got []string
		for _, r := range reqs {
			got = append(got, r.method+" "+r.path)
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Fatalf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		wantJSON(t, reqs[0].body, `{"name":"Audience Entered","timestamp":1795860000,
		  "data":{"audience_key":"outstanding_balance","outstanding_balance":true,"email":"u0123@example.com","test_tag":"la-outstanding_balance-0123-000"}}`)
		wantJSON(t, reqs[1].body, `{"outstanding_balance":true,"test_tag":"la-outstanding_balance-0123-001"}`)
	})
	t.Run("v1 ids are escaped", func(t *testing.T) {
		f := newFakeVendor(t, func(_ testing.TB, r *http.Request, _ []byte) (int, string, []string) {
			return 200, `{}`, []string{r.URL.EscapedPath()}
		})
		d := openCustomerIO(t, f, map[string]dsl.Setting{"api": {Text: "v1"}})
		m := sinktest.Message(1, 1, sinktest.GenOptions{})
		m.Payload = []byte(`{"type":"identify","userId":"a/b c@x","timestamp":"2026-11-28T10:00:00Z","traits":{"x":true}}`)
		if err := d.Send(context.Background(), []diff.Message{m}); err != nil {
			t.Fatal(err)
		}
		if got := f.tags(); len(got) != 1 || got[0] != "/api/v1/customers/a%2Fb%20c@x" {
			t.Fatalf("path %v", got)
		}
	})
}

// TestCustomerIOEventIDs: the event id is a ULID derived from the
// messageId and the event time — the same for a redelivery, different for
// different messages — and Customer.io drops the redelivered event.
func TestCustomerIOEventIDs(t *testing.T) {
	at := time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC)
	a, b := sinks.EventULID("la-1", at), sinks.EventULID("la-1", at)
	if a != b || a == sinks.EventULID("la-2", at) {
		t.Fatalf("ids %s %s %s", a, b, sinks.EventULID("la-2", at))
	}
	u := ulid.MustParseStrict(a)
	if !ulid.Time(u.Time()).Equal(at) {
		t.Errorf("ULID time %v, want %v", ulid.Time(u.Time()), at)
	}
	fake := &cioFake{}
	f := newFakeVendor(t, fake.handle)
	d := openCustomerIO(t, f, nil)
	msgs := sinktest.Messages(sinktest.GenOptions{Profiles: 30, PerProfile: 1})
	for range 2 { // an acknowledgement lost: the batch goes again
		if err := d.Send(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
	}
	if fake.dups != len(msgs) || len(fake.ids) != len(msgs) {
		t.Errorf("%d distinct ids, %d deduplicated; want %d and %d", len(fake.ids), fake.dups, len(msgs), len(msgs))
	}
}

// TestCustomerIOMixedRejections: a 207 answer refuses two profiles' entries
// (by batch_index) and a 400 refuses a request holding one malformed entry:
// exactly those entries are dead letters; the rest arrive in per-profile
// order; `deadletters retry` sends them again.
func TestCustomerIOMixedRejections(t *testing.T) {
	msgs := sinktest.Messages(sinktest.GenOptions{Profiles: 40, PerProfile: 3})
	malformed := msgs[57]
	fake := &cioFake{refuse: map[string]bool{"u0005": true, "u0017": true}, malformed: map[string]bool{malformed.ID: true}}
	f := newFakeVendor(t, fake.handle)
	d := openCustomerIO(t, f, nil)
	ob := sinktest.NewOutbox()
	msgs = ob.Append("cio", msgs...)
	st, err := sinks.Deliver(context.Background(), ob, "cio", d, sinktest.FastOptions())
	if err != nil {
		t.Fatal(err)
	}
	var bad, good []diff.Message
	for _, m := range msgs {
		if m.UserID == "u0005" || m.UserID == "u0017" || m.ID == malformed.ID {
			bad = append(bad, m)
		} else {
			good = append(good, m)
		}
	}
	dead := ob.DeadLetters("cio")
	if st.DeadLettered != len(bad) || st.Delivered != len(good) {
		t.Fatalf("Stats %+v; want %d dead letters", st, len(bad))
	}
	for _, dl := range dead {
		want := "identifier " + dl.Msg.UserID + " is not valid"
		if dl.Msg.ID == malformed.ID {
			want = "HTTP 400"
		}
		if !strings.Contains(dl.Reason, want) {
			t.Errorf("dead letter %s: %q, want %q", dl.Msg.ID, dl.Reason, want)
		}
	}
	sinktest.CheckReceived(t, msgs, f.tags(), good)
	fake.refuse, fake.malformed = nil, nil
	if n, _ := ob.Retry("cio", nil); n != len(bad) {
		t.Fatalf("retried %d", n)
	}
	if st, err := sinks.Deliver(context.Background(), ob, "cio", d, sinktest.FastOptions()); err != nil || st.Delivered != len(bad) {
		t.Fatalf("after retry: %+v, %v", st, err)
	}
}

// TestCustomerIOLimits: an identifier over 150 bytes and an entry over 32
// KB are dead letters with the reason, never sent.
func TestCustomerIOLimits(t *testing.T) {
	f := newFakeVendor(t, customerIOHandler())
	d := openCustomerIO(t, f, nil)
	long := sinktest.Message(1, 0, sinktest.GenOptions{})
	id := strings.Repeat("i", 151)
	long.Payload = []byte(strings.Replace(string(long.Payload), `"userId":"u0001"`, `"userId":"`+id+`"`, 1))
	big := sinktest.Message(2, 0, sinktest.GenOptions{Pad: 40 << 10})
	ok := sinktest.Message(3, 0, sinktest.GenOptions{})
	ob := sinktest.NewOutbox()
	ob.Append("cio", long, big, ok)
	o := sinktest.FastOptions()
	o.MaxEventBytes = -1
	st, err := sinks.Deliver(context.Background(), ob, "cio", d, o)
	if err != nil || st.DeadLettered != 2 || st.Delivered != 1 {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	reasons := ""
	for _, dl := range ob.DeadLetters("cio") {
		reasons += dl.Reason + "\n"
	}
	if !strings.Contains(reasons, "151 bytes, over the customerio limit of 150") || !strings.Contains(reasons, "over Customer.io's 32 KB limit") {
		t.Errorf("reasons:\n%s", reasons)
	}
}
