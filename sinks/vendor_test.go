package sinks_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// fakeVendor is an HTTP server standing in for a marketing API. The vendor's
// handler checks every request against the vendor's documented shape (test
// errors otherwise) and returns the test tags of the objects it accepted;
// fakeVendor adds scripted failures, random storms of 500 and 429, and
// outages.
type fakeVendor struct {
	t      testing.TB
	handle func(t testing.TB, r *http.Request, body []byte) (status int, resp string, tags []string)

	mu        sync.Mutex
	srv       *httptest.Server
	addr      string
	script    []response
	storm     *rand.Rand
	stormRate float64
	received  []string
	requests  []recorded
}

type recorded struct {
	method, path string
	header       http.Header
	body         []byte
}

func newFakeVendor(t testing.TB, handle func(testing.TB, *http.Request, []byte) (int, string, []string)) *fakeVendor {
	f := &fakeVendor{t: t, handle: handle}
	f.start("127.0.0.1:0")
	t.Cleanup(func() { f.server().Close() })
	return f
}

func (f *fakeVendor) start(addr string) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		f.t.Fatalf("listen: %v", err)
	}
	srv := httptest.NewUnstartedServer(f)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	f.mu.Lock()
	f.srv, f.addr = srv, ln.Addr().String()
	f.mu.Unlock()
}

func (f *fakeVendor) server() *httptest.Server {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.srv
}

func (f *fakeVendor) url() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return "http://" + f.addr
}

func (f *fakeVendor) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	f.requests = append(f.requests, recorded{r.Method, r.URL.EscapedPath(), r.Header.Clone(), body})
	var scripted *response
	if len(f.script) > 0 {
		scripted = &f.script[0]
		f.script = f.script[1:]
	} else if f.storm != nil && f.storm.Float64() < f.stormRate {
		resp := response{status: 500}
		if f.storm.IntN(2) == 0 {
			resp = response{status: 429, header: map[string]string{"Retry-After": "0"}}
		}
		scripted = &resp
	}
	f.mu.Unlock()
	if scripted != nil && scripted.status/100 != 2 {
		for k, v := range scripted.header {
			w.Header().Set(k, v)
		}
		w.WriteHeader(scripted.status)
		_, _ = io.WriteString(w, `{"message":"scripted failure"}`)
		return
	}
	status, resp, tags := f.handle(f.t, r, body)
	if status/100 == 2 {
		f.mu.Lock()
		f.received = append(f.received, tags...)
		f.mu.Unlock()
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, resp)
}

func (f *fakeVendor) then(rs ...response) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.script = append(f.script, rs...)
}

func (f *fakeVendor) stormy(seed uint64, rate float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.storm, f.stormRate = rand.New(rand.NewPCG(seed, seed)), rate
}

func (f *fakeVendor) tags() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.received...)
}

func (f *fakeVendor) recorded() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]recorded(nil), f.requests...)
}

func (f *fakeVendor) target(d sinks.Destination) *sinktest.Target {
	return &sinktest.Target{
		Dest:     d,
		Received: func(testing.TB) []string { return f.tags() },
		Fail:     func(n int) { f.then(repeat(n, response{status: 500})...) },
		Throttle: func(n int) {
			f.then(repeat(n, response{status: 429, header: map[string]string{"Retry-After": "0"}})...)
		},
		// A request refused as a whole is split (Braze) or resent item
		// by item (Iterable, Customer.io) to find the events to blame:
		// refuse every request of the isolation too.
		Reject: func() { f.then(repeat(64, response{status: 400})...) },
		Outage: func(testing.TB) func() {
			addr := f.addr
			f.server().Close()
			return func() { f.start(addr) }
		},
	}
}

// decodeStrict decodes body into v refusing fields the vendor does not
// document.
func decodeStrict(t testing.TB, body []byte, v any) bool {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if len(body) > 300 {
			body = append(body[:300:300], "…"...)
		}
		t.Errorf("request body %s: %v", body, err)
		return false
	}
	return true
}

func wantHeader(t testing.TB, r *http.Request, key, want string) bool {
	t.Helper()
	if got := r.Header.Get(key); got != want {
		t.Errorf("%s %s: header %s = %q, want %q", r.Method, r.URL.Path, key, got, want)
		return false
	}
	return true
}

func tagOf(t testing.TB, obj map[string]any) string {
	t.Helper()
	tag, _ := obj["test_tag"].(string)
	if tag == "" {
		t.Errorf("object without test_tag: %v", obj)
	}
	return tag
}

func isRFC3339(s string) bool {
	_, err := time.Parse(time.RFC3339Nano, s)
	return err == nil
}

// --- Braze ---

const brazeKey = "braze-rest-key-0123"

// brazeHandler implements POST /users/track as documented: Bearer auth, at
// most 75 attributes and 75 events, each with external_id; events with name,
// ISO 8601 time and properties. It answers 201 with the processed counts,
// and a minor error for events named in reject.
func brazeHandler(reject map[string]bool) func(testing.TB, *http.Request, []byte) (int, string, []string) {
	return func(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
		if r.Method != http.MethodPost || r.URL.Path != "/users/track" {
			t.Errorf("braze: %s %s", r.Method, r.URL.Path)
			return 404, `{"message":"not found"}`, nil
		}
		if !wantHeader(t, r, "Authorization", "Bearer "+brazeKey) {
			return 401, `{"message":"Invalid API key"}`, nil
		}
		wantHeader(t, r, "Content-Type", "application/json")
		var req struct {
			Attributes []map[string]any `json:"attributes"`
			Events     []struct {
				ExternalID string         `json:"external_id"`
				Name       string         `json:"name"`
				Time       string         `json:"time"`
				Properties map[string]any `json:"properties"`
			} `json:"events"`
		}
		if !decodeStrict(t, body, &req) {
			return 400, `{"message":"Invalid JSON"}`, nil
		}
		if len(req.Attributes) > 75 || len(req.Events) > 75 {
			t.Errorf("braze: %d attributes, %d events in one request", len(req.Attributes), len(req.Events))
		}
		var attrTags, eventTags []string
		var minor []string
		for _, a := range req.Attributes {
			if id, _ := a["external_id"].(string); id == "" {
				t.Errorf("braze: attributes object without external_id: %v", a)
			}
			attrTags = append(attrTags, tagOf(t, a))
		}
		for i, e := range req.Events {
			if e.ExternalID == "" || e.Name == "" || !isRFC3339(e.Time) || e.Properties == nil {
				t.Errorf("braze: event %+v", e)
			}
			if reject[e.Name] {
				minor = append(minor, fmt.Sprintf(`{"type":"'%s' is not a valid custom event name","input_array":"events","index":%d}`, e.Name, i))
				continue
			}
			eventTags = append(eventTags, tagOf(t, e.Properties))
		}
		// Braze documents no order between the arrays of one request: the
		// objects arrive together. Each array keeps its order.
		tags := mergeTags(attrTags, eventTags)
		resp := fmt.Sprintf(`{"message":"success","attributes_processed":%d,"events_processed":%d`, len(req.Attributes), len(req.Events)-len(minor))
		if len(minor) > 0 {
			resp += `,"errors":[` + strings.Join(minor, ",") + `]`
		}
		return 201, resp + "}", tags
	}
}

func openBraze(t testing.TB, f *fakeVendor) sinks.Destination {
	t.Helper()
	d, err := sinks.Open(&dsl.Destination{Name: "braze", Type: "braze", Settings: map[string]dsl.Setting{
		"endpoint": {Secret: dsl.Secret{Env: "BRAZE_URL"}},
		"api_key":  {Secret: dsl.Secret{Env: "BRAZE_KEY"}},
	}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"BRAZE_URL": f.url(), "BRAZE_KEY": brazeKey})})
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

func TestBrazeRequest(t *testing.T) {
	f := newFakeVendor(t, brazeHandler(nil))
	d := openBraze(t, f)
	if err := d.Send(context.Background(), presetMessages()); err != nil {
		t.Fatal(err)
	}
	reqs := f.recorded()
	if len(reqs) != 1 {
		t.Fatalf("%d requests, want 1", len(reqs))
	}
	wantJSON(t, reqs[0].body, `{
	  "attributes": [
	    {"external_id": "u0123", "outstanding_balance": true, "test_tag": "la-outstanding_balance-0123-001"}
	  ],
	  "events": [
	    {"external_id": "u0123", "name": "Audience Entered", "time": "2026-11-28T10:00:00Z",
	     "properties": {"audience_key": "outstanding_balance", "outstanding_balance": true, "email": "u0123@example.com", "test_tag": "la-outstanding_balance-0123-000"}},
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
	if st.Sends != (len(msgs)+74)/75 {
		t.Errorf("%d requests for %d messages, want batches of 75", st.Sends, len(msgs))
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
}

// --- Iterable ---

const iterableKey = "iterable-server-key-42"

// iterableHandler implements the four endpoints as documented: Api-Key
// header; track/trackBulk events with userId, eventName, id, createdAt (Unix
// seconds) and dataFields; update/bulkUpdate users with userId and
// dataFields. Users in notFound are reported as failed updates.
func iterableHandler(notFound map[string]bool) func(testing.TB, *http.Request, []byte) (int, string, []string) {
	type event struct {
		UserID     string         `json:"userId"`
		EventName  string         `json:"eventName"`
		ID         string         `json:"id"`
		CreatedAt  int64          `json:"createdAt"`
		DataFields map[string]any `json:"dataFields"`
	}
	type user struct {
		UserID             string         `json:"userId"`
		DataFields         map[string]any `json:"dataFields"`
		PreferUserID       bool           `json:"preferUserId"`
		MergeNestedObjects bool           `json:"mergeNestedObjects"`
	}
	checkEvent := func(t testing.TB, e event) bool {
		if e.UserID == "" || e.EventName == "" || e.ID == "" || e.CreatedAt < 1e9 || e.DataFields == nil {
			t.Errorf("iterable: event %+v", e)
		}
		return !notFound[e.UserID]
	}
	checkUser := func(t testing.TB, u user) bool {
		if u.UserID == "" || u.DataFields == nil || !u.PreferUserID {
			t.Errorf("iterable: user %+v", u)
		}
		return !notFound[u.UserID]
	}
	bulkResp := func(ok int, failed []string) string {
		f, _ := json.Marshal(failed)
		if failed == nil {
			f = []byte("[]")
		}
		return fmt.Sprintf(`{"successCount":%d,"failCount":%d,"invalidEmails":[],"invalidUserIds":[],"disallowedEventNames":[],"filteredOutFields":[],"createdFields":[],"failedUpdates":{"invalidEmails":[],"invalidUserIds":[],"notFoundEmails":[],"notFoundUserIds":%s,"forgottenEmails":[],"forgottenUserIds":[]}}`, ok, len(failed), f)
	}
	return func(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
		if !wantHeader(t, r, "Api-Key", iterableKey) {
			return 401, `{"msg":"Invalid API key","code":"BadApiKey","params":null}`, nil
		}
		wantHeader(t, r, "Content-Type", "application/json")
		if r.Method != http.MethodPost {
			t.Errorf("iterable: %s %s", r.Method, r.URL.Path)
		}
		var tags, failed []string
		switch r.URL.Path {
		case "/api/events/trackBulk":
			var req struct {
				Events []event `json:"events"`
			}
			if !decodeStrict(t, body, &req) {
				return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
			}
			if len(req.Events) > 1000 {
				t.Errorf("iterable: %d events in one trackBulk", len(req.Events))
			}
			for _, e := range req.Events {
				if checkEvent(t, e) {
					tags = append(tags, tagOf(t, e.DataFields))
				} else {
					failed = append(failed, e.UserID)
				}
			}
			return 200, bulkResp(len(tags), failed), tags
		case "/api/users/bulkUpdate":
			var req struct {
				Users []user `json:"users"`
			}
			if !decodeStrict(t, body, &req) {
				return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
			}
			for _, u := range req.Users {
				if checkUser(t, u) {
					tags = append(tags, tagOf(t, u.DataFields))
				} else {
					failed = append(failed, u.UserID)
				}
			}
			return 200, bulkResp(len(tags), failed), tags
		case "/api/events/track":
			var e event
			if !decodeStrict(t, body, &e) {
				return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
			}
			if !checkEvent(t, e) {
				return 400, `{"msg":"User not found","code":"BadParams","params":null}`, nil
			}
			return 200, fmt.Sprintf(`{"msg":"Event with id: %s tracked.","code":"Success","params":{"id":%q}}`, e.ID, e.ID), []string{tagOf(t, e.DataFields)}
		case "/api/users/update":
			var u user
			if !decodeStrict(t, body, &u) {
				return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
			}
			if !checkUser(t, u) {
				return 200, `{"msg":"User not found","code":"BadParams","params":null}`, nil
			}
			return 200, `{"msg":"","code":"Success","params":null}`, []string{tagOf(t, u.DataFields)}
		}
		t.Errorf("iterable: %s %s", r.Method, r.URL.Path)
		return 404, `{"msg":"not found"}`, nil
	}
}

func openIterable(t testing.TB, f *fakeVendor, bulk bool) sinks.Destination {
	t.Helper()
	d, err := sinks.Open(&dsl.Destination{Name: "iterable", Type: "iterable", Settings: map[string]dsl.Setting{
		"endpoint": {Text: f.url()},
		"api_key":  {Secret: dsl.Secret{Env: "ITERABLE_KEY"}},
		"bulk":     {Text: fmt.Sprint(bulk)},
	}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"ITERABLE_KEY": iterableKey})})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestIterableShared(t *testing.T) {
	for _, bulk := range []bool{true, false} {
		t.Run(fmt.Sprintf("bulk=%v", bulk), func(t *testing.T) {
			sinktest.Run(t, func(t *testing.T) *sinktest.Target {
				f := newFakeVendor(t, iterableHandler(nil))
				tg := f.target(openIterable(t, f, bulk))
				// The bulk endpoints allow 10 and 5 requests per second:
				// keep the number of batches small.
				tg.Options = func(o *sinks.DeliverOptions) {
					if bulk {
						o.BatchSize = 1000
					}
				}
				return tg
			})
		})
	}
}

func TestIterableRequests(t *testing.T) {
	wantEvent := func(j int, name string, in bool, entity string) string {
		ctx := ""
		if entity != "" {
			ctx = `,"_entity_context":{"account":{"id":"a_123","type":"checking","credit_card":{"id":"` + entity + `","balance":"Outstanding"}}}`
		}
		return fmt.Sprintf(`{"userId":"u0123","eventName":%q,"id":"la-outstanding_balance-0123-00%d","createdAt":1795860000,
		  "dataFields":{"audience_key":"outstanding_balance","outstanding_balance":%v,"email":"u0123@example.com","test_tag":"la-outstanding_balance-0123-00%d"%s}}`, name, j, in, j, ctx)
	}
	user := `{"userId":"u0123","dataFields":{"outstanding_balance":true,"test_tag":"la-outstanding_balance-0123-001"},"preferUserId":true,"mergeNestedObjects":true}`
	t.Run("bulk", func(t *testing.T) {
		f := newFakeVendor(t, iterableHandler(nil))
		d := openIterable(t, f, true)
		if err := d.Send(context.Background(), presetMessages()); err != nil {
			t.Fatal(err)
		}
		reqs := f.recorded()
		// Entered precedes the identify, so round one holds [Entered] and
		// [the user update]; Added comes after the update of the same
		// profile, so it opens round two.
		if len(reqs) != 3 || reqs[0].path != "/api/events/trackBulk" || reqs[1].path != "/api/users/bulkUpdate" || reqs[2].path != "/api/events/trackBulk" {
			t.Fatalf("requests %v", paths(reqs))
		}
		wantJSON(t, reqs[0].body, `{"events":[`+wantEvent(0, "Audience Entered", true, "")+`]}`)
		wantJSON(t, reqs[1].body, `{"users":[`+user+`]}`)
		wantJSON(t, reqs[2].body, `{"events":[`+wantEvent(2, "Entity Added", true, "cc_123_2")+`,`+
			wantEvent(3, "Entity Removed", false, "cc_123_3")+`,`+wantEvent(4, "Audience Exited", false, "")+`]}`)
	})
	t.Run("single", func(t *testing.T) {
		f := newFakeVendor(t, iterableHandler(nil))
		d := openIterable(t, f, false)
		if err := d.Send(context.Background(), presetMessages()); err != nil {
			t.Fatal(err)
		}
		reqs := f.recorded()
		want := []string{"/api/events/track", "/api/users/update", "/api/events/track", "/api/events/track", "/api/events/track"}
		if strings.Join(paths(reqs), " ") != strings.Join(want, " ") {
			t.Fatalf("requests %v, want %v", paths(reqs), want)
		}
		wantJSON(t, reqs[0].body, wantEvent(0, "Audience Entered", true, ""))
		wantJSON(t, reqs[1].body, user)
		wantJSON(t, reqs[3].body, wantEvent(3, "Entity Removed", false, "cc_123_3"))
	})
	t.Run("regions", func(t *testing.T) {
		for region, host := range map[string]string{"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"} {
			_, err := sinks.Open(&dsl.Destination{Name: "it", Type: "iterable", Settings: map[string]dsl.Setting{
				"region": {Text: region}, "api_key": {Secret: dsl.Secret{Env: "K"}},
			}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"K": "k"})})
			if err != nil {
				t.Errorf("region %s (%s): %v", region, host, err)
			}
		}
		_, err := sinks.Open(&dsl.Destination{Name: "it", Type: "iterable", Settings: map[string]dsl.Setting{
			"region": {Text: "apac"}, "api_key": {Secret: dsl.Secret{Env: "K"}},
		}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"K": "k"})})
		if err == nil || !strings.Contains(err.Error(), "region: want one of eu, us") {
			t.Errorf("region apac: %v", err)
		}
	})
}

func TestIterableRejectedUsers(t *testing.T) {
	f := newFakeVendor(t, iterableHandler(map[string]bool{"u0002": true}))
	d := openIterable(t, f, true)
	ob := sinktest.NewOutbox()
	msgs := ob.Append("iterable", sinktest.Messages(sinktest.GenOptions{Profiles: 5, PerProfile: 3})...)
	st, err := sinks.Deliver(context.Background(), ob, "iterable", d, sinktest.FastOptions())
	if err != nil || st.DeadLettered != 3 || st.Delivered != len(msgs)-3 {
		t.Fatalf("Deliver = %+v, %v; want u0002's 3 messages dead-lettered", st, err)
	}
	for _, dl := range ob.DeadLetters("iterable") {
		if dl.Msg.UserID != "u0002" || !strings.Contains(dl.Reason, "userId not found") {
			t.Errorf("dead letter %s of %s: %s", dl.Msg.ID, dl.Msg.UserID, dl.Reason)
		}
	}
}

// --- Customer.io ---

const cioSite, cioKey = "site-7c1", "track-key-9d2"

// customerIOHandler implements Track API v1 identify (PUT
// /api/v1/customers/{id} with attributes) and track (POST
// /api/v1/customers/{id}/events with name, data, timestamp), Basic auth.
func customerIOHandler() func(testing.TB, *http.Request, []byte) (int, string, []string) {
	auth := "Basic " + base64.StdEncoding.EncodeToString([]byte(cioSite+":"+cioKey))
	return func(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
		if !wantHeader(t, r, "Authorization", auth) {
			return 401, `{"meta":{"error":"Unauthorized request"}}`, nil
		}
		wantHeader(t, r, "Content-Type", "application/json")
		rest, ok := strings.CutPrefix(r.URL.EscapedPath(), "/api/v1/customers/")
		if !ok || rest == "" {
			t.Errorf("customerio: %s %s", r.Method, r.URL.Path)
			return 404, `{}`, nil
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
	sinktest.Run(t, func(t *testing.T) *sinktest.Target {
		f := newFakeVendor(t, customerIOHandler())
		return f.target(openCustomerIO(t, f, map[string]dsl.Setting{"request_rate": {Text: "5000"}}))
	})
}

func TestCustomerIORequests(t *testing.T) {
	f := newFakeVendor(t, customerIOHandler())
	d := openCustomerIO(t, f, nil)
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
	wantJSON(t, reqs[2].body, `{"name":"Entity Added","timestamp":1795860000,
	  "data":{"audience_key":"outstanding_balance","outstanding_balance":true,"email":"u0123@example.com","test_tag":"la-outstanding_balance-0123-002",
	          "_entity_context":{"account":{"id":"a_123","type":"checking","credit_card":{"id":"cc_123_2","balance":"Outstanding"}}}}}`)
	t.Run("ids are escaped", func(t *testing.T) {
		f := newFakeVendor(t, func(_ testing.TB, r *http.Request, _ []byte) (int, string, []string) {
			return 200, `{}`, []string{r.URL.EscapedPath()}
		})
		d := openCustomerIO(t, f, nil)
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

// --- storms ---

// TestHTTPStorms answers a random 40% of requests with 500 or 429 (seeded,
// so each run is the same storm): after the storm every event has arrived,
// in per-profile order, and nothing was acknowledged without arriving.
func TestHTTPStorms(t *testing.T) {
	vendors := []struct {
		name string
		open func(t *testing.T) (*fakeVendor, sinks.Destination)
	}{
		{"webhook", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, func(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
				var b struct {
					Batch []struct{ MessageID string } `json:"batch"`
				}
				if err := json.Unmarshal(body, &b); err != nil {
					t.Errorf("webhook body: %v", err)
					return 400, "", nil
				}
				var ids []string
				for _, e := range b.Batch {
					ids = append(ids, e.MessageID)
				}
				return 200, "", ids
			})
			d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
				"url": {Text: f.url() + "/hook"}, "batch_size": {Text: "20"}}}, sinks.OpenOptions{})
			if err != nil {
				t.Fatal(err)
			}
			return f, d
		}},
		{"braze", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, brazeHandler(nil))
			return f, openBraze(t, f)
		}},
		{"iterable", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, iterableHandler(nil))
			return f, openIterable(t, f, false)
		}},
		{"customerio", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, customerIOHandler())
			return f, openCustomerIO(t, f, map[string]dsl.Setting{"concurrency": {Text: "4"}, "request_rate": {Text: "5000"}})
		}},
	}
	for _, v := range vendors {
		t.Run(v.name, func(t *testing.T) {
			f, d := v.open(t)
			defer d.Close()
			f.stormy(7, 0.4)
			ob := sinktest.NewOutbox()
			msgs := ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 30, PerProfile: 5, Audiences: []string{"a", "b"}})...)
			o := sinktest.FastOptions()
			o.MaxRetries = 3
			o.BatchSize = 25
			var st sinks.Stats
			calls := 0
			for ; ob.Len("x") > 0; calls++ {
				if calls == 50 {
					t.Fatalf("%d pending after %d Deliver calls", ob.Len("x"), calls)
				}
				s, _ := sinks.Deliver(context.Background(), ob, "x", d, o)
				st.Delivered += s.Delivered
				st.Retries += s.Retries
				st.Throttled += s.Throttled
				st.DeadLettered += s.DeadLettered
			}
			if st.Delivered != len(msgs) || st.DeadLettered != 0 || st.Retries == 0 || st.Throttled == 0 {
				t.Fatalf("Stats %+v after %d calls; want all %d delivered through retries and throttling", st, calls, len(msgs))
			}
			acked := map[string]bool{}
			for _, id := range f.tags() {
				acked[id] = true
			}
			for _, m := range ob.Acked("x") {
				if !acked[m.ID] {
					t.Errorf("%s acknowledged but never arrived", m.ID)
				}
			}
			dups := sinktest.CheckReceived(t, msgs, f.tags(), msgs)
			t.Logf("%d messages, %d requests, %d retries, %d throttle waits, %d Deliver calls, %d duplicates",
				len(msgs), len(f.recorded()), st.Retries, st.Throttled, calls, dups)
		})
	}
}

func paths(reqs []recorded) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.path)
	}
	return out
}

// wantJSON compares JSON documents semantically (key order and spacing
// ignored, numbers exact).
func wantJSON(t testing.TB, got []byte, want string) {
	t.Helper()
	norm := func(b []byte) string {
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, b)
		}
		out, _ := json.MarshalIndent(v, "", "  ")
		return string(out)
	}
	if g, w := norm(got), norm([]byte(want)); g != w {
		t.Errorf("request body\n%s\nwant\n%s", g, w)
	}
}

// mergeTags merges two lists of generated tags, each kept in its own order,
// taking the smaller head first (a tag sorts by audience, profile and message
// number), as objects that arrived in one request.
func mergeTags(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for len(a) > 0 && len(b) > 0 {
		if b[0] < a[0] {
			out, b = append(out, b[0]), b[1:]
		} else {
			out, a = append(out, a[0]), a[1:]
		}
	}
	return append(append(out, a...), b...)
}

// TestSecretsNeverLogged runs failing deliveries for each HTTP destination
// with every secret-capable setting given as env(…) and checks that no
// secret value appears in the logs, errors or dead-letter reasons.
func TestSecretsNeverLogged(t *testing.T) {
	for _, tc := range []struct {
		typ      string
		settings map[string]dsl.Setting
	}{
		{"braze", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"iterable", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"customerio", map[string]dsl.Setting{"endpoint": {Secret: dsl.Secret{Env: "URL"}}, "site_id": {Secret: dsl.Secret{Env: "SITE"}}, "api_key": {Secret: dsl.Secret{Env: "KEY"}}}},
		{"webhook", map[string]dsl.Setting{"url": {Secret: dsl.Secret{Env: "URL"}}, "secret": {Secret: dsl.Secret{Env: "KEY"}}}},
	} {
		t.Run(tc.typ, func(t *testing.T) {
			// The server echoes the request (headers included) in its
			// error, as a careless API might.
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusBadRequest)
				fmt.Fprintf(w, "bad request %s %v", r.URL, r.Header)
			}))
			defer srv.Close()
			secrets := map[string]string{"URL": srv.URL + "/tok-url-5150", "KEY": "key-8d9e0f", "SITE": "site-31337"}
			if tc.typ != "webhook" {
				secrets["URL"] = srv.URL
			}
			var logs bytes.Buffer
			d, err := sinks.Open(&dsl.Destination{Name: "x", Type: tc.typ, Settings: tc.settings},
				sinks.OpenOptions{LookupEnv: env(secrets)})
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			ob := sinktest.NewOutbox()
			ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 2})...)
			o := sinktest.FastOptions()
			o.Logger = slogTo(&logs)
			_, err = sinks.Deliver(context.Background(), ob, "x", d, o)
			srv.Close()
			ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1, Audiences: []string{"z"}})...)
			o.MaxRetries = 1
			_, err2 := sinks.Deliver(context.Background(), ob, "x", d, o)
			text := logs.String() + fmt.Sprint(err) + fmt.Sprint(err2)
			for _, dl := range ob.DeadLetters("x") {
				text += dl.Reason
			}
			if len(ob.DeadLetters("x")) == 0 || err2 == nil {
				t.Fatalf("expected dead letters and a failing second call: %v", err2)
			}
			secrets["BASIC"] = base64.StdEncoding.EncodeToString([]byte(secrets["SITE"] + ":" + secrets["KEY"]))
			for name, v := range secrets {
				if name == "URL" && tc.typ != "webhook" {
					v = strings.TrimPrefix(v, "http://")
					// A bare host:port is not a secret by itself; the
					// full URL is.
					v = "http://" + v
				}
				if strings.Contains(text, v) {
					t.Errorf("secret %s leaked:\n%s", name, text)
				}
			}
		})
	}
}

func slogTo(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
