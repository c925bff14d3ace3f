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

// iterable maps Segment's presets onto Iterable: Entered / Exited / Added /
// Removed are custom events (userId, eventName, id = messageId so a
// redelivery updates rather than duplicates, createdAt, dataFields = the
// properties); Audience Membership Changed is a user update setting the
// audience field in dataFields. Authenticated with the "Api-Key" header.
type iterable struct {
	base string
	key  string
	bulk bool
	http *httpSender
}

func openIterable(c *Config) (Destination, error) {
	it := &iterable{
		base: baseURL(c, iterableRegions, "us"),
		key:  c.String("api_key", ""),
		bulk: c.Bool("bulk", true),
		http: newHTTPSender(c, "iterable", c.Duration("timeout", 10*time.Second)),
	}
	it.http.limit(iterableTrack, 2000, 100)
	it.http.limit(iterableTrackBulk, 10, 1)
	it.http.limit(iterableUpdate, 500, 50)
	it.http.limit(iterableBulkUpdate, 5, 1)
	return it, nil
}

// MaxBatch is the most events or users in one bulk request.
func (it *iterable) MaxBatch() int { return iterableMaxBulk }

type iterableEvent struct {
	UserID     string          `json:"userId"`
	EventName  string          `json:"eventName"`
	ID         string          `json:"id"`
	CreatedAt  int64           `json:"createdAt"`
	DataFields json.RawMessage `json:"dataFields"`
}

type iterableUser struct {
	UserID             string          `json:"userId"`
	DataFields         json.RawMessage `json:"dataFields"`
	PreferUserID       bool            `json:"preferUserId"`
	MergeNestedObjects bool            `json:"mergeNestedObjects"`
}

type iterableFailed struct {
	InvalidUserIDs     []string `json:"invalidUserIds"`
	NotFoundUserIDs    []string `json:"notFoundUserIds"`
	ForgottenUserIDs   []string `json:"forgottenUserIds"`
	ConflictUserIDs    []string `json:"conflictUserIds"`
	InvalidDataUserIDs []string `json:"invalidDataUserIds"`
}

type iterableBulkResponse struct {
	SuccessCount         int            `json:"successCount"`
	FailCount            int            `json:"failCount"`
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
	at    int // index in the batch
	user  string
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
		item := iterableItem{at: i, user: e.UserID}
		if e.Type == "identify" {
			item.upd = &iterableUser{UserID: e.UserID, DataFields: e.Traits, PreferUserID: true, MergeNestedObjects: true}
		} else {
			item.event = &iterableEvent{UserID: e.UserID, EventName: e.Event, ID: e.MessageID, CreatedAt: e.time.Unix(), DataFields: e.Properties}
			if item.event.ID == "" {
				item.event.ID = m.ID
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
		path, body := iterableTrack, any(item.event)
		if item.upd != nil {
			path, body = iterableUpdate, item.upd
		}
		err := it.post(ctx, path, body, nil)
		if err == nil {
			continue
		}
		be.Fail(item.at, err)
		if Classify(err) == Retry {
			for _, rest := range items[n+1:] {
				be.Fail(rest.at, err)
			}
			return
		}
	}
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
		if err := it.sendBulkPart(ctx, events, be); err != nil && Classify(err) == Retry {
			failAll(be, err, events, users, rest)
			return
		}
		if err := it.sendBulkPart(ctx, users, be); err != nil && Classify(err) == Retry {
			failAll(be, err, users, rest)
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

// sendBulkPart sends one bulk request of events or users and records
// per-user rejections. It returns the request's failure, if any.
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
			failAll(be, err, part)
		}
		return err
	}
	rejected := map[string]string{}
	for _, l := range []struct {
		why string
		ids []string
	}{
		{"invalid userId", resp.InvalidUserIDs},
		{"invalid userId", resp.FailedUpdates.InvalidUserIDs},
		{"userId not found", resp.FailedUpdates.NotFoundUserIDs},
		{"userId forgotten (GDPR)", resp.FailedUpdates.ForgottenUserIDs},
		{"userId conflict", resp.FailedUpdates.ConflictUserIDs},
		{"invalid data", resp.FailedUpdates.InvalidDataUserIDs},
	} {
		for _, id := range l.ids {
			rejected[id] = l.why
		}
	}
	disallowed := map[string]bool{}
	for _, name := range resp.DisallowedEventNames {
		disallowed[name] = true
	}
	for _, item := range part {
		if why, ok := rejected[item.user]; ok {
			be.Fail(item.at, Permanent(fmt.Errorf("iterable: %s rejected: %s", path, why)))
		} else if item.event != nil && disallowed[item.event.EventName] {
			be.Fail(item.at, Permanent(fmt.Errorf("iterable: event name %q is disallowed in the project", item.event.EventName)))
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
