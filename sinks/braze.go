package sinks

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/linkaud/linkaud/diff"
)

func init() {
	Register(Type{
		Name: "braze",
		Keys: []Key{
			{Name: "endpoint", Kind: TextOrSecret, Required: true, Doc: "REST endpoint of the Braze instance, e.g. https://rest.iad-01.braze.com"},
			{Name: "api_key", Kind: Secret, Required: true, Doc: "REST API key with users.track permission"},
			{Name: "request_rate", Kind: Text, Doc: "requests per second (default 1000, Braze's 3,000 per three seconds; raise it if Braze raised yours)"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
			{Name: "identifier", Kind: Text, Doc: "user_id (default: external_id = the profile key), email, or user_alias (with alias_label); `from trait.COLUMN` reads the value from a trait"},
			{Name: "alias_label", Kind: Text, Doc: "the user_alias label, with identifier user_alias"},
			{Name: "update_existing_only", Kind: Text, Doc: "true: send _update_existing_only, so Braze updates existing profiles and creates none (default false, Braze's default)"},
		},
		Open: openBraze,
	})
}

// Braze limits, from its /users/track documentation
// (https://www.braze.com/docs/api/endpoints/user_data/post_user_track/):
// a request carries at most 75 objects across attributes, events and
// purchases (the legacy limit is 75 of each; 75 in all fits both); the
// endpoint takes 3,000 requests per three seconds, and every endpoint
// refuses a body over 4 MB with 413
// (https://www.braze.com/docs/api/endpoints/user_data/).
//
// Braze documents no length limit for external_id, user_alias or email,
// and no deduplication key: /users/track takes no idempotency id, so an
// at-least-once redelivery (a crash between Braze's answer and the outbox
// acknowledgement) records the event twice in Braze. The event's
// properties do not carry the messageId either; docs/destinations.md says
// so.
const (
	brazeMaxPerRequest  = 75
	brazeRequestsPerSec = 1000.0
	brazeUsersTrackPath = "/users/track"
	brazeMaxBody        = 4 << 20
)

// braze maps Segment's Linked Audiences presets onto POST /users/track:
// Audience Entered / Exited and Entity Added / Removed become custom events
// (identifier, name, time, properties); Audience Membership Changed becomes
// an attributes object setting the audience trait on the profile.
// Authenticated with "Authorization: Bearer KEY".
//
// Order: Braze processes a request's attributes, then its events, then its
// purchases (its rate-limit notes on the /users/track page), so an
// attributes object of a profile must not share a request with an earlier
// event of the same profile: such a batch is sent as several requests, in
// order. A request Braze rejects as a whole (400, 413) is split in two and
// each half sent again, down to the one event to blame, which alone is a
// dead letter (Braze's answer does not say which object was bad).
type braze struct {
	url          string
	key          string
	id           identity
	aliasLabel   string
	existingOnly bool
	http         *httpSender
}

func openBraze(c *Config) (Destination, error) {
	b := &braze{
		key:          c.String("api_key", ""),
		id:           readIdentity(c, "user_id", "email", "user_alias"),
		aliasLabel:   c.String("alias_label", ""),
		existingOnly: c.Bool("update_existing_only", false),
		http:         newHTTPSender(c, "braze", c.Duration("timeout", 10*time.Second)),
	}
	b.http.fix = "check api_key: a REST API key of this workspace with the users.track permission"
	b.http.classifyBody = brazeClassify
	e := strings.TrimRight(c.String("endpoint", ""), "/")
	if u, err := url.Parse(e); e != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		c.Errorf("endpoint", "want the instance's REST endpoint URL, such as https://rest.iad-01.braze.com")
	}
	switch {
	case b.id.kind == "user_alias" && b.aliasLabel == "":
		c.Errorf("alias_label", "identifier user_alias needs alias_label, the label of the alias (e.g. \"linkaud_id\")")
	case b.id.kind != "user_alias" && c.Has("alias_label"):
		c.Errorf("alias_label", "only applies to identifier user_alias")
	case b.id.kind == "user_alias" && b.existingOnly:
		// Braze creates alias-only profiles only with
		// _update_existing_only false.
		c.Errorf("update_existing_only", "identifier user_alias needs update_existing_only false: Braze updates alias-only profiles only then")
	}
	b.url = e + brazeUsersTrackPath
	b.http.limit(brazeUsersTrackPath, requestRate(c, brazeRequestsPerSec), 50)
	return b, nil
}

// brazeClassify reads Braze's fatal error table
// (https://www.braze.com/docs/api/errors/): 401 unknown or missing REST
// API key, 403 the key lacks the permission, 404 invalid URL — the
// destination halts; 400 and 413 are rejections of the request as a whole,
// which Send splits to find the object to blame.
func brazeClassify(code int, _ []byte, err error) error {
	if code == http.StatusRequestEntityTooLarge {
		return Permanent(err)
	}
	return nil
}

// MaxBatch is Braze's per-request limit.
func (b *braze) MaxBatch() int { return brazeMaxPerRequest }

// brazeObject is one attributes or events object, as raw JSON, with the
// batch index of its message.
type brazeObject struct {
	at    int
	user  string
	event bool
	body  json.RawMessage
}

type brazeResponse struct {
	Message string `json:"message"`
	Errors  []struct {
		Type       string `json:"type"`
		InputArray string `json:"input_array"`
		Index      int    `json:"index"`
	} `json:"errors"`
}

func (b *braze) Send(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	var objs []brazeObject
	for i, m := range batch {
		obj, err := b.object(m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		obj.at = i
		objs = append(objs, obj)
	}
	// Requests in batch order; a new one starts before an attributes
	// object of a profile that already has an event in the current one.
	for len(objs) > 0 {
		n := 0
		evented := map[string]bool{}
		for ; n < len(objs); n++ {
			o := objs[n]
			if !o.event && evented[o.user] {
				break
			}
			if o.event {
				evented[o.user] = true
			}
		}
		if err := b.sendIsolating(ctx, objs[:n], be); err != nil {
			failObjects(be, err, objs[n:])
			break
		}
		objs = objs[n:]
	}
	return be.Err()
}

// sendIsolating sends objs in one request; when Braze rejects the request
// as a whole it sends each half again, in order, so that only the object
// to blame is rejected. It returns a failure worth retrying (after
// recording it for every object not delivered), which stops the batch.
func (b *braze) sendIsolating(ctx context.Context, objs []brazeObject, be *BatchError) error {
	err := b.request(ctx, objs, be)
	if err == nil || Classify(err) == Retry {
		if err != nil {
			failObjects(be, err, objs)
		}
		return err
	}
	if len(objs) == 1 {
		be.Fail(objs[0].at, err)
		return nil
	}
	half := len(objs) / 2
	if err := b.sendIsolating(ctx, objs[:half], be); err != nil {
		failObjects(be, err, objs[half:])
		return err
	}
	return b.sendIsolating(ctx, objs[half:], be)
}

func failObjects(be *BatchError, err error, objs []brazeObject) {
	for _, o := range objs {
		if be.Errs[o.at] == nil {
			be.Fail(o.at, err)
		}
	}
}

// request sends one /users/track request and records the minor errors of
// a 2xx answer (objects Braze refused while accepting the rest) as
// rejections of their messages.
func (b *braze) request(ctx context.Context, objs []brazeObject, be *BatchError) error {
	var attrs, events []json.RawMessage
	var attrAt, eventAt []int
	for _, o := range objs {
		if o.event {
			events, eventAt = append(events, o.body), append(eventAt, o.at)
		} else {
			attrs, attrAt = append(attrs, o.body), append(attrAt, o.at)
		}
	}
	body, err := json.Marshal(struct {
		Attributes []json.RawMessage `json:"attributes,omitempty"`
		Events     []json.RawMessage `json:"events,omitempty"`
	}{attrs, events})
	if err != nil {
		return Permanent(fmt.Errorf("braze: %w", err))
	}
	if len(body) > brazeMaxBody && len(objs) > 1 {
		return Permanent(errors.New("braze: request over Braze's 4 MB limit"))
	}
	hdr := http.Header{"Authorization": {"Bearer " + b.key}}
	_, resp, err := b.http.do(ctx, http.MethodPost, b.url, brazeUsersTrackPath, body, hdr)
	if err != nil {
		return err
	}
	var r brazeResponse
	if json.Unmarshal(resp, &r) == nil {
		for _, me := range r.Errors {
			var at []int
			switch me.InputArray {
			case "attributes":
				at = attrAt
			case "events":
				at = eventAt
			}
			if me.Index >= 0 && me.Index < len(at) {
				be.Fail(at[me.Index], Permanent(fmt.Errorf("braze: %s object rejected: %s", me.InputArray, me.Type)))
			}
		}
	}
	return nil
}

// object maps one message onto an attributes or events object.
func (b *braze) object(m diff.Message) (brazeObject, error) {
	e, err := parseEvent("braze", m)
	if err != nil {
		return brazeObject{}, err
	}
	v, err := b.id.value("braze", m, &e)
	if err != nil {
		return brazeObject{}, err
	}
	ident := map[string]any{}
	switch b.id.kind {
	case "user_id":
		ident["external_id"] = v
	case "email":
		ident["email"] = v
	case "user_alias":
		ident["user_alias"] = map[string]string{"alias_name": v, "alias_label": b.aliasLabel}
	}
	if b.existingOnly {
		ident["_update_existing_only"] = true
	} else if b.id.kind == "user_alias" {
		ident["_update_existing_only"] = false
	}
	obj := brazeObject{user: e.UserID}
	if e.Type == "identify" {
		attrs, err := objectWith(e.Traits, ident)
		if err != nil {
			return obj, Permanent(fmt.Errorf("braze: traits of %s are not an object: %v", m.ID, err))
		}
		obj.body = attrs
		return obj, nil
	}
	ident["name"] = e.Event
	ident["time"] = e.time.UTC().Format(time.RFC3339Nano)
	ident["properties"] = e.Properties
	obj.event = true
	obj.body, err = json.Marshal(ident)
	if err != nil {
		return obj, Permanent(fmt.Errorf("braze: %w", err))
	}
	return obj, nil
}

func (b *braze) Close() error { return nil }
