package sinks

import (
	"context"
	"encoding/json"
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
			{Name: "request_rate", Kind: Text, Doc: "requests per second (default 833, Braze's 50,000 a minute; raise it if Braze raised yours)"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
		},
		Open: openBraze,
	})
}

// Braze limits, from its /users/track documentation: a request carries at
// most 75 events, 75 attribute objects and 75 purchases; the endpoint takes
// 50,000 requests per minute per workspace.
const (
	brazeMaxPerRequest   = 75
	brazeRequestsPerSec  = 50000.0 / 60
	brazeUsersTrackPath  = "/users/track"
	brazeMinorErrorLimit = 100
)

// braze maps Segment's Linked Audiences presets onto POST /users/track:
// Audience Entered / Exited and Entity Added / Removed become custom events
// (external_id, name, time, properties); Audience Membership Changed becomes
// an attributes object setting the audience trait on the profile. A batch is
// one request, authenticated with "Authorization: Bearer KEY". Braze documents
// no processing order between the attributes and events of one request
// (and /users/track is asynchronous): a request is delivered or failed as a
// whole, each array in message order.
type braze struct {
	url  string
	key  string
	http *httpSender
}

func openBraze(c *Config) (Destination, error) {
	b := &braze{
		key:  c.String("api_key", ""),
		http: newHTTPSender(c, "braze", c.Duration("timeout", 10*time.Second)),
	}
	e := strings.TrimRight(c.String("endpoint", ""), "/")
	if u, err := url.Parse(e); e != "" && (err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "") {
		c.Errorf("endpoint", "want the instance's REST endpoint URL, such as https://rest.iad-01.braze.com")
	}
	b.url = e + brazeUsersTrackPath
	b.http.limit(brazeUsersTrackPath, requestRate(c, brazeRequestsPerSec), 50)
	return b, nil
}

// MaxBatch is Braze's per-request limit.
func (b *braze) MaxBatch() int { return brazeMaxPerRequest }

type brazeEvent struct {
	ExternalID string          `json:"external_id"`
	Name       string          `json:"name"`
	Time       string          `json:"time"`
	Properties json.RawMessage `json:"properties"`
}

type brazeRequest struct {
	Attributes []json.RawMessage `json:"attributes,omitempty"`
	Events     []brazeEvent      `json:"events,omitempty"`
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
	var req brazeRequest
	var attrAt, eventAt []int // request array index → batch index
	for i, m := range batch {
		e, err := parseEvent("braze", m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		if e.Type == "identify" {
			attrs, err := objectWith(e.Traits, map[string]any{"external_id": e.UserID})
			if err != nil {
				be.Fail(i, Permanent(fmt.Errorf("braze: traits of %s are not an object: %v", m.ID, err)))
				continue
			}
			req.Attributes = append(req.Attributes, attrs)
			attrAt = append(attrAt, i)
			continue
		}
		req.Events = append(req.Events, brazeEvent{
			ExternalID: e.UserID,
			Name:       e.Event,
			Time:       e.time.UTC().Format(time.RFC3339Nano),
			Properties: e.Properties,
		})
		eventAt = append(eventAt, i)
	}
	if len(attrAt)+len(eventAt) == 0 {
		return be.Err()
	}
	body, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("braze: %w", err)
	}
	hdr := http.Header{"Authorization": {"Bearer " + b.key}}
	_, resp, err := b.http.do(ctx, http.MethodPost, b.url, brazeUsersTrackPath, body, hdr)
	if err != nil {
		for _, i := range append(attrAt, eventAt...) {
			be.Fail(i, err)
		}
		return be.Err()
	}
	// A 2xx answer may list "minor errors": objects Braze refused while
	// accepting the rest. Those are permanent for their messages.
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
				be.Fail(at[me.Index], Permanent(fmt.Errorf("braze: %s rejected: %s", me.InputArray, me.Type)))
			}
		}
	}
	return be.Err()
}

func (b *braze) Close() error { return nil }
