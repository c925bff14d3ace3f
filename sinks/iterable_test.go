package sinks_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

const iterableKey = "iterable-server-key-42"

// iterableFake implements the four endpoints as Iterable documents them
// (https://api.iterable.com/api/docs), decoding the documented fields:
//
//   - Api-Key header (401 BadApiKey otherwise), JSON, POST;
//   - an event: eventName required, email or userId, optional id,
//     createdAt (Unix seconds), dataFields, campaignId, templateId;
//   - a user: email or userId, optional dataFields, preferUserId,
//     mergeNestedObjects; an email-based project (emailProject) refuses
//     preferUserId, which would create placeholder users there;
//   - bulk answers carry successCount, failCount and the per-identifier
//     lists (invalidEmails, invalidUserIds, disallowedEventNames,
//     failedUpdates.{invalid,notFound,forgotten,conflict,invalidData}
//     {Emails,UserIds}); single answers {"msg","code","params"}.
//
// Identifiers in invalid and notFound are refused; event names in
// disallowed are refused; unnamedFailures, while > 0, adds that many
// failures to failCount of the next bulk answer without naming them (and
// without accepting anything of that request).
type iterableFake struct {
	emailProject bool
	invalid      map[string]bool
	notFound     map[string]bool
	disallowed   map[string]bool

	mu              sync.Mutex
	unnamedFailures int
	// byID counts events received per event id (the dedup key).
	byID map[string]int
}

func (it *iterableFake) handle(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
	if r.Header.Get("Api-Key") != iterableKey {
		return 401, `{"msg":"Invalid API key","code":"BadApiKey","params":null}`, nil
	}
	wantHeader(t, r, "Content-Type", "application/json")
	if r.Method != http.MethodPost {
		t.Errorf("iterable: %s %s", r.Method, r.URL.Path)
	}
	type event struct {
		Email      string         `json:"email"`
		UserID     string         `json:"userId"`
		EventName  string         `json:"eventName"`
		ID         string         `json:"id"`
		CreatedAt  int64          `json:"createdAt"`
		DataFields map[string]any `json:"dataFields"`
		CampaignID int64          `json:"campaignId"`
		TemplateID int64          `json:"templateId"`
	}
	type user struct {
		Email              string         `json:"email"`
		UserID             string         `json:"userId"`
		DataFields         map[string]any `json:"dataFields"`
		PreferUserID       *bool          `json:"preferUserId"`
		MergeNestedObjects bool           `json:"mergeNestedObjects"`
	}
	ident := func(email, userID string) string {
		if email == "" && userID == "" {
			t.Errorf("iterable: object with neither email nor userId")
		}
		if it.emailProject && email == "" {
			t.Errorf("iterable: email-based project got userId %q without email", userID)
		}
		if email != "" {
			return email
		}
		return userID
	}
	var ok, failedIDs []string
	var failedNames []string
	var tags []string
	checkEvent := func(e event) {
		id := ident(e.Email, e.UserID)
		if e.EventName == "" || e.ID == "" || e.CreatedAt < 1e9 || e.DataFields == nil {
			t.Errorf("iterable: event %+v", e)
		}
		switch {
		case it.invalid[id] || it.notFound[id]:
			failedIDs = append(failedIDs, id)
		case it.disallowed[e.EventName]:
			failedNames = append(failedNames, e.EventName)
		default:
			ok = append(ok, id)
			tags = append(tags, tagOf(t, e.DataFields))
			it.mu.Lock()
			if it.byID == nil {
				it.byID = map[string]int{}
			}
			it.byID[e.ID]++
			it.mu.Unlock()
		}
	}
	checkUser := func(u user) {
		id := ident(u.Email, u.UserID)
		if it.emailProject && u.PreferUserID != nil {
			t.Errorf("iterable: email-based project got preferUserId")
		}
		if !it.emailProject && u.UserID != "" && (u.PreferUserID == nil || !*u.PreferUserID) {
			t.Errorf("iterable: userId update without preferUserId")
		}
		if u.DataFields == nil {
			t.Errorf("iterable: user %+v", u)
		}
		if it.invalid[id] || it.notFound[id] {
			failedIDs = append(failedIDs, id)
			return
		}
		ok = append(ok, id)
		tags = append(tags, tagOf(t, u.DataFields))
	}
	bulkResp := func() (int, string, []string) {
		it.mu.Lock()
		unnamed := it.unnamedFailures
		if unnamed > 0 {
			it.unnamedFailures = 0
		}
		it.mu.Unlock()
		if unnamed > 0 {
			return 200, fmt.Sprintf(`{"successCount":%d,"failCount":%d,"invalidEmails":[],"invalidUserIds":[],"disallowedEventNames":[],"filteredOutFields":[],"createdFields":[],"failedUpdates":{}}`,
				len(ok)-unnamed, unnamed), nil
		}
		lists := map[string][]string{"invalidEmails": {}, "invalidUserIds": {}, "notFoundEmails": {}, "notFoundUserIds": {}}
		for _, id := range failedIDs {
			kind := "UserIds"
			if strings.Contains(id, "@") {
				kind = "Emails"
			}
			if it.invalid[id] {
				lists["invalid"+kind] = append(lists["invalid"+kind], id)
			} else {
				lists["notFound"+kind] = append(lists["notFound"+kind], id)
			}
		}
		failedUpdates, _ := json.Marshal(map[string][]string{
			"invalidEmails": {}, "invalidUserIds": {}, "notFoundEmails": lists["notFoundEmails"], "notFoundUserIds": lists["notFoundUserIds"],
			"forgottenEmails": {}, "forgottenUserIds": {}, "conflictEmails": {}, "conflictUserIds": {}, "invalidDataEmails": {}, "invalidDataUserIds": {},
		})
		inv, _ := json.Marshal(lists["invalidEmails"])
		invU, _ := json.Marshal(lists["invalidUserIds"])
		names, _ := json.Marshal(append([]string{}, failedNames...))
		return 200, fmt.Sprintf(`{"successCount":%d,"failCount":%d,"invalidEmails":%s,"invalidUserIds":%s,"disallowedEventNames":%s,"filteredOutFields":[],"createdFields":[],"failedUpdates":%s}`,
			len(ok), len(failedIDs)+len(failedNames), inv, invU, names, failedUpdates), tags
	}
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
			checkEvent(e)
		}
		return bulkResp()
	case "/api/users/bulkUpdate":
		var req struct {
			Users []user `json:"users"`
		}
		if !decodeStrict(t, body, &req) {
			return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
		}
		for _, u := range req.Users {
			checkUser(u)
		}
		return bulkResp()
	case "/api/events/track":
		var e event
		if !decodeStrict(t, body, &e) {
			return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
		}
		checkEvent(e)
		if len(ok) == 0 {
			return 400, `{"msg":"Event rejected","code":"BadParams","params":null}`, nil
		}
		return 200, fmt.Sprintf(`{"msg":"Event with id: %s tracked.","code":"Success","params":{"id":%q}}`, e.ID, e.ID), tags
	case "/api/users/update":
		var u user
		if !decodeStrict(t, body, &u) {
			return 400, `{"msg":"bad json","code":"BadJsonBody"}`, nil
		}
		checkUser(u)
		if len(ok) == 0 {
			return 400, `{"msg":"Invalid user","code":"InvalidUserIdError","params":null}`, nil
		}
		return 200, `{"msg":"","code":"Success","params":null}`, tags
	}
	return 404, `{"msg":"not found","code":"NotFound"}`, nil
}

func iterableHandler(notFound map[string]bool) func(testing.TB, *http.Request, []byte) (int, string, []string) {
	return (&iterableFake{notFound: notFound}).handle
}

func openIterable(t testing.TB, f *fakeVendor, bulk bool, extra ...map[string]dsl.Setting) sinks.Destination {
	t.Helper()
	settings := map[string]dsl.Setting{
		"endpoint": {Text: f.url()},
		"api_key":  {Secret: dsl.Secret{Env: "ITERABLE_KEY"}},
		"bulk":     {Text: fmt.Sprint(bulk)},
	}
	for _, e := range extra {
		for k, v := range e {
			settings[k] = v
		}
	}
	d, err := sinks.Open(&dsl.Destination{Name: "iterable", Type: "iterable", Settings: settings},
		sinks.OpenOptions{LookupEnv: env(map[string]string{"ITERABLE_KEY": iterableKey})})
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
	wantEvent := func(ident string, j int, name string, in bool, entity string) string {
		ctx := ""
		if entity != "" {
			ctx = `,"_entity_context":{"account":{"id":"a_123","type":"checking","credit_card":{"id":"` + entity + `","balance":"Outstanding"}}}`
		}
		return fmt.Sprintf(`{%s,"eventName":%q,"id":"la-outstanding_balance-0123-00%d","createdAt":1795860000,
		  "dataFields":{"audience_key":"outstanding_balance","outstanding_balance":%v,"email":"u0123@example.com","test_tag":"la-outstanding_balance-0123-00%d"%s}}`, ident, name, j, in, j, ctx)
	}
	byUserID, byEmail := `"userId":"u0123"`, `"email":"u0123@example.com"`
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
		wantJSON(t, reqs[0].body, `{"events":[`+wantEvent(byUserID, 0, "Audience Entered", true, "")+`]}`)
		wantJSON(t, reqs[1].body, `{"users":[{"userId":"u0123","dataFields":{"outstanding_balance":true,"test_tag":"la-outstanding_balance-0123-001"},"preferUserId":true,"mergeNestedObjects":true}]}`)
		wantJSON(t, reqs[2].body, `{"events":[`+wantEvent(byUserID, 2, "Entity Added", true, "cc_123_2")+`,`+
			wantEvent(byUserID, 3, "Entity Removed", false, "cc_123_3")+`,`+wantEvent(byUserID, 4, "Audience Exited", false, "")+`]}`)
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
		wantJSON(t, reqs[0].body, wantEvent(byUserID, 0, "Audience Entered", true, ""))
		wantJSON(t, reqs[3].body, wantEvent(byUserID, 3, "Entity Removed", false, "cc_123_3"))
	})
	t.Run("email-based project", func(t *testing.T) {
		f := newFakeVendor(t, (&iterableFake{emailProject: true}).handle)
		d := openIterable(t, f, true, map[string]dsl.Setting{"identifier": {Text: "email", FromTrait: "email"}})
		if err := d.Send(context.Background(), presetMessages()); err != nil {
			t.Fatal(err)
		}
		reqs := f.recorded()
		wantJSON(t, reqs[0].body, `{"events":[`+wantEvent(byEmail, 0, "Audience Entered", true, "")+`]}`)
		wantJSON(t, reqs[1].body, `{"users":[{"email":"u0123@example.com","dataFields":{"outstanding_balance":true,"test_tag":"la-outstanding_balance-0123-001"},"mergeNestedObjects":true}]}`)
	})
	t.Run("regions", func(t *testing.T) {
		for region, host := range map[string]string{"us": "https://api.iterable.com", "eu": "https://api.eu.iterable.com"} {
			_, err := sinks.Open(&dsl.Destination{Name: "it", Type: "iterable", Settings: map[string]dsl.Setting{
				"region": {Text: region}, "api_key": {Secret: dsl.Secret{Env: "K"}},
			}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"K": iterableKey})})
			if err != nil {
				t.Errorf("region %s (%s): %v", region, host, err)
			}
		}
		_, err := sinks.Open(&dsl.Destination{Name: "it", Type: "iterable", Settings: map[string]dsl.Setting{
			"region": {Text: "apac"}, "api_key": {Secret: dsl.Secret{Env: "K"}},
		}}, sinks.OpenOptions{LookupEnv: env(map[string]string{"K": iterableKey})})
		if err == nil || !strings.Contains(err.Error(), "region: want one of eu, us") {
			t.Errorf("region apac: %v", err)
		}
	})
}

// TestIterableMixedRejections: a bulk answer names an invalid email, a
// user not found and a disallowed event name; exactly the events sent with
// those identifiers or that name are dead letters, with the reason, and
// `deadletters retry` sends them again once Iterable takes them.
func TestIterableMixedRejections(t *testing.T) {
	fake := &iterableFake{
		invalid:    map[string]bool{"u0001@example.com": true},
		notFound:   map[string]bool{"u0003@example.com": true},
		disallowed: map[string]bool{"Entity Removed": true},
	}
	f := newFakeVendor(t, fake.handle)
	d := openIterable(t, f, true, map[string]dsl.Setting{"identifier": {Text: "email"}})
	ob := sinktest.NewOutbox()
	msgs := ob.Append("iterable", sinktest.Messages(sinktest.GenOptions{Profiles: 6, PerProfile: 5})...)
	st, err := sinks.Deliver(context.Background(), ob, "iterable", d, sinktest.FastOptions())
	if err != nil {
		t.Fatal(err)
	}
	var bad, good []diff.Message
	for _, m := range msgs {
		if m.UserID == "u0001" || m.UserID == "u0003" || m.Event == "Entity Removed" {
			bad = append(bad, m)
		} else {
			good = append(good, m)
		}
	}
	dead := ob.DeadLetters("iterable")
	if st.DeadLettered != len(bad) || st.Delivered != len(good) || len(dead) != len(bad) {
		t.Fatalf("Stats %+v, %d dead letters; want %d", st, len(dead), len(bad))
	}
	for _, dl := range dead {
		var want string
		switch {
		case dl.Msg.UserID == "u0001":
			want = "invalid email"
		case dl.Msg.UserID == "u0003":
			want = "email not found"
		default:
			want = `event name "Entity Removed" is disallowed`
		}
		if !strings.Contains(dl.Reason, want) {
			t.Errorf("dead letter %s (%s, %s): %q, want %q", dl.Msg.ID, dl.Msg.UserID, dl.Msg.Event, dl.Reason, want)
		}
	}
	sinktest.CheckReceived(t, msgs, f.tags(), good)

	fake.invalid, fake.notFound, fake.disallowed = nil, nil, nil
	if n, _ := ob.Retry("iterable", nil); n != len(bad) {
		t.Fatalf("retried %d", n)
	}
	st, err = sinks.Deliver(context.Background(), ob, "iterable", d, sinktest.FastOptions())
	if err != nil || st.Delivered != len(bad) || st.DeadLettered != 0 {
		t.Fatalf("after retry: %+v, %v", st, err)
	}
}

// TestIterableUnaccountedFailCount: an answer counting 5 failures without
// naming any acknowledges nothing; each event of that request is sent again
// alone and judged on its own answer. Events carry their id, so none is
// counted twice by Iterable.
func TestIterableUnaccountedFailCount(t *testing.T) {
	fake := &iterableFake{unnamedFailures: 5}
	f := newFakeVendor(t, fake.handle)
	d := openIterable(t, f, true)
	ob := sinktest.NewOutbox()
	// Track events only (Entered), 20 profiles.
	msgs := ob.Append("iterable", sinktest.Messages(sinktest.GenOptions{Profiles: 20, PerProfile: 1})...)
	st, err := sinks.Deliver(context.Background(), ob, "iterable", d, sinktest.FastOptions())
	if err != nil || st.Delivered != len(msgs) || st.DeadLettered != 0 {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	var singles int
	for _, r := range f.recorded() {
		if r.path == "/api/events/track" {
			singles++
		}
	}
	if singles != len(msgs) {
		t.Errorf("%d single requests after an unaccounted failCount, want %d (each event alone)", singles, len(msgs))
	}
	// Iterable keeps one event per id: the resent ones replaced, not
	// added to, what the ambiguous request may have stored.
	if len(fake.byID) != len(msgs) {
		t.Errorf("%d distinct event ids stored, want %d", len(fake.byID), len(msgs))
	}
	for _, m := range msgs {
		if fake.byID[m.ID] == 0 {
			t.Errorf("event %s not stored under its messageId", m.ID)
		}
	}
	sinktest.CheckReceived(t, msgs, f.tags(), msgs)
}

// TestIterableUserIDLimit: a userId over Iterable's 52 characters is a dead
// letter naming the limit, and is never sent.
func TestIterableUserIDLimit(t *testing.T) {
	f := newFakeVendor(t, iterableHandler(nil))
	d := openIterable(t, f, true)
	m := sinktest.Message(1, 0, sinktest.GenOptions{})
	long := strings.Repeat("x", 53)
	m.Payload = []byte(strings.Replace(string(m.Payload), `"userId":"u0001"`, `"userId":"`+long+`"`, 1))
	m.UserID = long
	ob := sinktest.NewOutbox()
	ob.Append("iterable", m, sinktest.Message(2, 0, sinktest.GenOptions{}))
	st, err := sinks.Deliver(context.Background(), ob, "iterable", d, sinktest.FastOptions())
	if err != nil || st.DeadLettered != 1 || st.Delivered != 1 {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	if r := ob.DeadLetters("iterable")[0].Reason; !strings.Contains(r, "53 bytes, over the iterable limit of 52") {
		t.Errorf("reason %q", r)
	}
	for _, r := range f.recorded() {
		if strings.Contains(string(r.body), long) {
			t.Errorf("the over-long userId was sent")
		}
	}
	if got := f.tags(); !slices.Equal(got, []string{sinktest.Message(2, 0, sinktest.GenOptions{}).ID}) {
		t.Errorf("received %v", got)
	}
}
