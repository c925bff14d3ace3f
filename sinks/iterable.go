package sinks

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/linkaud/linkaud/diff"
)

func init() {
	Register(Type{
		Name: "iterable",
		Keys: []Key{
			{Name: "api_key", Kind: Secret, Required: true, Doc: "server-side API key of the project"},
			{Name: "region", Kind: Text, Doc: "us (api.iterable.com, default) or eu (api.eu.iterable.com)"},
			{Name: "endpoint", Kind: TextOrSecret, Doc: "base URL instead of the region's"},
			{Name: "bulk", Kind: Text, Doc: "true (default): /api/events/trackBulk and /api/users/bulkUpdate; false: one request per event"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
			{Name: "identifier", Kind: Text, Doc: "user_id (default: userId = the profile key, preferUserId) or email (email-based projects); `from trait.COLUMN` reads the value from a trait"},
		},
		Open: openIterable,
	})
}

// Iterable endpoints and their documented limits (requests per second per
// project). Iterable processes bulk and single-event endpoints separately,
// so a destination sticks to one kind to keep a profile's events in order.
const (
	iterableTrack      = "/api/events/track"
	iterableTrackBulk  = "/api/events/trackBulk"
	iterableUpdate     = "/api/users/update"
	iterableBulkUpdate = "/api/users/bulkUpdate"
	iterableMaxBulk    = 1000
)

var iterableRegions = map[string]string{
	"us": "https://api.iterable.com",
	"eu": "https://api.eu.iterable.com",
}

// iterableMaxUserID is Iterable's documented limit on a userId
// (https://api.iterable.com/api/docs, users: "userId … 52 characters").
const iterableMaxUserID = 52

// iterable maps Segment's presets onto Iterable
// (https://api.iterable.com/api/docs): Entered / Exited / Added / Removed
// are custom events (userId or email, eventName, id = messageId — Iterable's
// deduplication key: an event with an id it has updates rather than
// duplicates —, createdAt, dataFields = the properties); Audience
// Membership Changed is a user update setting the audience field in
// dataFields. Authenticated with the "Api-Key" header.
//
// Identification: `identifier user_id` sends userId with preferUserId
// (userID-based and hybrid projects); `identifier email` sends email and no
// preferUserId, which in an email-based project would create placeholder
// users.
//
// Failures follow Iterable's response codes
// (https://support.iterable.com/hc/en-us/articles/39629320560148-API-Response-Codes):
// BadApiKey, BadAuthorizationHeader, Unauthorized (401), Forbidden and
// ForbiddenParamsError (403) halt the destination whatever the status; a
// bulk answer names its failures per identifier (invalidEmails,
// invalidUserIds, failedUpdates.*, disallowedEventNames), matched to each
// event by the identifier it was sent with.
type iterable struct {
	base string
	key  string
	bulk bool
	id   identity
	http *httpSender
}

func openIterable(c *Config) (Destination, error) {
	it := &iterable{
		base: baseURL(c, iterableRegions, "us"),
		key:  c.String("api_key", ""),
		bulk: c.Bool("bulk", true),
		id:   readIdentity(c, "user_id", "email"),
		http: newHTTPSender(c, "iterable", c.Duration("timeout", 10*time.Second)),
	}
	if it.id.kind == "user_id" {
		it.id.maxBytes, it.id.doc = iterableMaxUserID, "https://api.iterable.com/api/docs"
	}
	it.http.fix = "check api_key: a server-side key of this project, and region"
	it.http.classifyBody = iterableClassify
	it.http.limit(iterableTrack, 2000, 100)
	it.http.limit(iterableTrackBulk, 10, 1)
	it.http.limit(iterableUpdate, 500, 50)
	it.http.limit(iterableBulkUpdate, 5, 1)
	return it, nil
}

// iterableKeyCodes are the response codes that mean the key, not the
// request, is at fault.
var iterableKeyCodes = map[string]bool{
	"BadApiKey": true, "BadAuthorizationHeader": true, "Unauthorized": true,
	"Forbidden": true, "ForbiddenParamsError": true,
}

func iterableClassify(code int, body []byte, err error) error {
	var r iterableResponse
	if json.Unmarshal(body, &r) == nil && iterableKeyCodes[r.Code] {
		return Halted(fmt.Sprintf("iterable refused the API key (HTTP %d, %s)", code, r.Code),
			"check api_key: a server-side key of this project, and region", err)
	}
	return nil
}

// MaxBatch is the most events or users in one bulk request.
func (it *iterable) MaxBatch() int { return iterableMaxBulk }

type iterableEvent struct {
	UserID     string          `json:"userId,omitempty"`
	Email      string          `json:"email,omitempty"`
	EventName  string          `json:"eventName"`
	ID         string          `json:"id"`
	CreatedAt  int64           `json:"createdAt"`
	DataFields json.RawMessage `json:"dataFields"`
}

type iterableUser struct {
	UserID             string          `json:"userId,omitempty"`
	Email              string          `json:"email,omitempty"`
	DataFields         json.RawMessage `json:"dataFields"`
	PreferUserID       bool            `json:"preferUserId,omitempty"`
	MergeNestedObjects bool            `json:"mergeNestedObjects"`
}

type iterableFailed struct {
	InvalidEmails      []string `json:"invalidEmails"`
	InvalidUserIDs     []string `json:"invalidUserIds"`
	NotFoundEmails     []string `json:"notFoundEmails"`
	NotFoundUserIDs    []string `json:"notFoundUserIds"`
	ForgottenEmails    []string `json:"forgottenEmails"`
	ForgottenUserIDs   []string `json:"forgottenUserIds"`
	ConflictEmails     []string `json:"conflictEmails"`
	ConflictUserIDs    []string `json:"conflictUserIds"`
	InvalidDataEmails  []string `json:"invalidDataEmails"`
	InvalidDataUserIDs []string `json:"invalidDataUserIds"`
}

type iterableBulkResponse struct {
	SuccessCount         int            `json:"successCount"`
	FailCount            int            `json:"failCount"`
	InvalidEmails        []string       `json:"invalidEmails"`
	InvalidUserIDs       []string       `json:"invalidUserIds"`
	DisallowedEventNames []string       `json:"disallowedEventNames"`
	FailedUpdates        iterableFailed `json:"failedUpdates"`
}

type iterableResponse struct {
	Msg  string `json:"msg"`
	Code string `json:"code"`
}

// item is one message as Iterable wants it.
type iterableItem struct {
	at    int    // index in the batch
	user  string // the profile key (ordering)
	ident string // the identifier sent (matching bulk failures)
	event *iterableEvent
	upd   *iterableUser
}

func (it *iterable) Send(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	var items []iterableItem
	for i, m := range batch {
		e, err := parseEvent("iterable", m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		v, err := it.id.value("iterable", m, &e)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		item := iterableItem{at: i, user: e.UserID, ident: v}
		if e.Type == "identify" {
			item.upd = &iterableUser{DataFields: e.Traits, MergeNestedObjects: true}
			if it.id.kind == "email" {
				item.upd.Email = v
			} else {
				item.upd.UserID, item.upd.PreferUserID = v, true
			}
		} else {
			item.event = &iterableEvent{EventName: e.Event, ID: e.MessageID, CreatedAt: e.time.Unix(), DataFields: e.Properties}
			if item.event.ID == "" {
				item.event.ID = m.ID
			}
			if it.id.kind == "email" {
				item.event.Email = v
			} else {
				item.event.UserID = v
			}
		}
		items = append(items, item)
	}
	if it.bulk {
		it.sendBulk(ctx, items, be)
	} else {
		it.sendEach(ctx, items, be)
	}
	return be.Err()
}

// sendEach sends one request per message, in order, and stops at the first
// failure worth retrying: the rest of the batch waits with it.
func (it *iterable) sendEach(ctx context.Context, items []iterableItem, be *BatchError) {
	for n, item := range items {
		if err := it.sendOne(ctx, item); err != nil {
			be.Fail(item.at, err)
			if Classify(err) == Retry {
				failAll(be, err, items[n+1:])
				return
			}
		}
	}
}

// sendOne sends one event or user update through the single endpoints,
// whose answer is about that item alone.
func (it *iterable) sendOne(ctx context.Context, item iterableItem) error {
	path, body := iterableTrack, any(item.event)
	if item.upd != nil {
		path, body = iterableUpdate, item.upd
	}
	return it.post(ctx, path, body, nil)
}

// sendBulk sends rounds of one trackBulk and one bulkUpdate request. A
// round closes before an event of a profile that already has a user update
// in it, since the events request goes first: so each profile's messages
// are sent in order. A retryable failure stops the batch there.
func (it *iterable) sendBulk(ctx context.Context, items []iterableItem, be *BatchError) {
	for len(items) > 0 {
		var events, users []iterableItem
		updated := map[string]bool{}
		n := 0
		for ; n < len(items); n++ {
			item := items[n]
			if item.event != nil {
				if updated[item.user] || len(events) == iterableMaxBulk {
					break
				}
				events = append(events, item)
			} else {
				if len(users) == iterableMaxBulk {
					break
				}
				users = append(users, item)
				updated[item.user] = true
			}
		}
		rest := items[n:]
		if err := it.sendBulkPart(ctx, events, be); err != nil {
			failAll(be, err, users, rest)
			return
		}
		if err := it.sendBulkPart(ctx, users, be); err != nil {
			failAll(be, err, rest)
			return
		}
		items = rest
	}
}

func failAll(be *BatchError, err error, parts ...[]iterableItem) {
	for _, part := range parts {
		for _, item := range part {
			be.Fail(item.at, err)
		}
	}
}

// sendBulkPart sends one bulk request of events or users and records the
// outcome of each of its items. It returns a failure worth retrying (after
// recording it for the items it leaves undelivered), which stops the batch.
func (it *iterable) sendBulkPart(ctx context.Context, part []iterableItem, be *BatchError) error {
	if len(part) == 0 {
		return nil
	}
	var path string
	var body any
	if part[0].event != nil {
		evs := make([]*iterableEvent, len(part))
		for i, item := range part {
			evs[i] = item.event
		}
		path, body = iterableTrackBulk, map[string]any{"events": evs}
	} else {
		us := make([]*iterableUser, len(part))
		for i, item := range part {
			us[i] = item.upd
		}
		path, body = iterableBulkUpdate, map[string]any{"users": us}
	}
	var resp iterableBulkResponse
	if err := it.post(ctx, path, body, &resp); err != nil {
		if Classify(err) == Reject {
			// The request as a whole was refused (BadParams, a bad
			// body): send each item alone, so only the bad ones are
			// dead letters.
			return it.isolate(ctx, part, be)
		}
		failAll(be, err, part)
		return err
	}
	byIdent := map[string]string{}
	for _, l := range []struct {
		why string
		ids []string
	}{
		{"invalid email", resp.InvalidEmails},
		{"invalid userId", resp.InvalidUserIDs},
		{"invalid email", resp.FailedUpdates.InvalidEmails},
		{"invalid userId", resp.FailedUpdates.InvalidUserIDs},
		{"email not found", resp.FailedUpdates.NotFoundEmails},
		{"userId not found", resp.FailedUpdates.NotFoundUserIDs},
		{"email forgotten (GDPR)", resp.FailedUpdates.ForgottenEmails},
		{"userId forgotten (GDPR)", resp.FailedUpdates.ForgottenUserIDs},
		{"email conflict", resp.FailedUpdates.ConflictEmails},
		{"userId conflict", resp.FailedUpdates.ConflictUserIDs},
		{"invalid data", resp.FailedUpdates.InvalidDataEmails},
		{"invalid data", resp.FailedUpdates.InvalidDataUserIDs},
	} {
		for _, id := range l.ids {
			byIdent[id] = l.why
		}
	}
	disallowed := map[string]bool{}
	for _, name := range resp.DisallowedEventNames {
		disallowed[name] = true
	}
	failed := 0
	var unnamed []iterableItem
	for _, item := range part {
		switch why, ok := byIdent[item.ident]; {
		case ok:
			be.Fail(item.at, Permanent(fmt.Errorf("iterable: %s rejected the %s: %s", path, it.id.kind, why)))
			failed++
		case item.event != nil && disallowed[item.event.EventName]:
			be.Fail(item.at, Permanent(fmt.Errorf("iterable: event name %q is disallowed in the project", item.event.EventName)))
			failed++
		default:
			unnamed = append(unnamed, item)
		}
	}
	if resp.FailCount > failed {
		// Iterable counted failures it did not name: which of the rest
		// went through is unknown, so none is acknowledged on this
		// answer. Each is sent again alone (events carry their id, and
		// a user update sets the same fields, so those that did go
		// through are not duplicated) and judged on its own answer.
		return it.isolate(ctx, unnamed, be)
	}
	return nil
}

// isolate sends items one at a time, in order, recording each outcome; a
// failure worth retrying stops there and fails the rest with it.
func (it *iterable) isolate(ctx context.Context, items []iterableItem, be *BatchError) error {
	for n, item := range items {
		if err := it.sendOne(ctx, item); err != nil {
			be.Fail(item.at, err)
			if Classify(err) == Retry {
				failAll(be, err, items[n+1:])
				return err
			}
		}
	}
	return nil
}

// post sends one JSON request; a 2xx answer whose code is not Success is a
// permanent failure (Iterable reports bad parameters that way).
func (it *iterable) post(ctx context.Context, path string, body any, out any) error {
	b, err := json.Marshal(body)
	if err != nil {
		return Permanent(fmt.Errorf("iterable: %w", err))
	}
	hdr := http.Header{"Api-Key": {it.key}}
	_, resp, err := it.http.do(ctx, http.MethodPost, it.base+path, path, b, hdr)
	if err != nil {
		return err
	}
	if out != nil {
		_ = json.Unmarshal(resp, out)
		return nil
	}
	var r iterableResponse
	if json.Unmarshal(resp, &r) == nil && r.Code != "" && r.Code != "Success" {
		return Permanent(it.http.redact.Error(fmt.Errorf("iterable: %s: %s: %s", path, r.Code, r.Msg)))
	}
	return nil
}

func (it *iterable) Close() error { return nil }
