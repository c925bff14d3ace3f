package sinks

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/oklog/ulid/v2"

	"github.com/linkaud/linkaud/diff"
)

func init() {
	Register(Type{
		Name: "customerio",
		Keys: []Key{
			{Name: "site_id", Kind: TextOrSecret, Required: true, Doc: "workspace Site ID (Track API credentials)"},
			{Name: "api_key", Kind: Secret, Required: true, Doc: "Track API key"},
			{Name: "region", Kind: Text, Doc: "us (track.customer.io, default) or eu (track-eu.customer.io)"},
			{Name: "endpoint", Kind: TextOrSecret, Doc: "base URL instead of the region's"},
			{Name: "api", Kind: Text, Doc: "v2 (default: POST /api/v2/batch, many events a request, each with a deduplication id) or v1 (one request per event)"},
			{Name: "identifier", Kind: Text, Doc: "user_id (default: id = the profile key) or email; `from trait.COLUMN` reads the value from a trait"},
			{Name: "concurrency", Kind: Text, Doc: "api v1: requests in flight, for different profiles (default 10)"},
			{Name: "request_rate", Kind: Text, Doc: "requests per second (default 100, Customer.io's fair-use limit)"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
		},
		Open: openCustomerIO,
	})
}

// Customer.io Track API limits (https://docs.customer.io/api/track/ and
// its Track v2 section,
// https://docs.customer.io/integrations/api/track/tag/track_v2/): about 100
// requests per second per workspace; a person's id is at most 150 bytes; a
// v2 /batch request is under 500 KB and each of its entries at most 32 KB.
const (
	customerIORequestsPerSec = 100
	customerIOMaxID          = 150
	customerIOMaxBatchBytes  = 500_000
	customerIOMaxEntryBytes  = 32 << 10
	customerIOMaxBatch       = 1000
	customerIOBatchPath      = "/api/v2/batch"
)

var customerIORegions = map[string]string{
	"us": "https://track.customer.io",
	"eu": "https://track-eu.customer.io",
}

// customerIO maps Segment's presets onto the Track API. Entered / Exited /
// Added / Removed are events, Audience Membership Changed an identify
// setting the audience attribute. Basic auth with site_id:api_key.
//
// api v2 (default) sends POST /api/v2/batch: {"batch": [entries]}, each
// {"type": "person", "identifiers": {"id"|"email": …}, "action": "event",
// "id": ULID, "name", "timestamp", "attributes"} or {…, "action":
// "identify", "attributes"}. The event id is Customer.io's deduplication
// key (a ULID): it is derived from the messageId — the event's time as the
// ULID's time, the first 80 bits of SHA-256(messageId) as its entropy — so
// a redelivery carries the same id and triggers no campaign twice. A 207
// answer lists the entries it refused by batch_index: those alone are dead
// letters. Customer.io does not document the processing order within a
// batch, so a request holds at most one entry per profile (a profile's
// next event goes in the next request, sent after this one's answer).
//
// api v1 sends one request per event (POST
// /api/v1/customers/{id}/events, PUT /api/v1/customers/{id}), different
// profiles concurrently, each profile's in order; it has no event id.
type customerIO struct {
	base        string
	auth        string
	v1          bool
	id          identity
	concurrency int
	http        *httpSender
}

func openCustomerIO(c *Config) (Destination, error) {
	cio := &customerIO{
		base:        baseURL(c, customerIORegions, "us"),
		v1:          c.OneOf("api", "v2", "v1", "v2") == "v1",
		id:          readIdentity(c, "user_id", "email"),
		concurrency: c.Int("concurrency", 10, 1, 100),
		http:        newHTTPSender(c, "customerio", c.Duration("timeout", 10*time.Second)),
	}
	cio.id.maxBytes, cio.id.doc = customerIOMaxID, "https://docs.customer.io/api/track/"
	if !cio.v1 && c.Has("concurrency") {
		c.Errorf("concurrency", "applies to api v1; v2 sends batches one at a time")
	}
	cio.http.fix = "check site_id and api_key (Track API credentials) and region"
	cio.http.limit("", requestRate(c, customerIORequestsPerSec), 10)
	user, pass := c.String("site_id", ""), c.String("api_key", "")
	// The Basic credential encodes the key: an error echoing the request
	// must not show it either.
	enc := base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))
	cio.auth = "Basic " + enc
	c.Redactor.Add(enc)
	return cio, nil
}

// MaxBatch bounds the entries of one Send.
func (cio *customerIO) MaxBatch() int {
	if cio.v1 {
		return 200
	}
	return customerIOMaxBatch
}

// EventULID is the Customer.io event id of an outbox message: a ULID whose
// time is the event's and whose entropy is the first 80 bits of
// SHA-256(messageId), so the same message always gets the same id.
func EventULID(messageID string, at time.Time) string {
	sum := sha256.Sum256([]byte(messageID))
	var id ulid.ULID
	ms := uint64(max(0, at.UnixMilli()))
	if err := id.SetTime(min(ms, ulid.MaxTime())); err != nil {
		panic(err) // in range by construction
	}
	copy(id[6:], sum[:10])
	return id.String()
}

// event decodes m and returns it with the identifier it is sent under, or
// the permanent failure that makes it a dead letter.
func (cio *customerIO) event(m diff.Message) (segmentEvent, string, error) {
	e, err := parseEvent("customerio", m)
	if err != nil {
		return e, "", err
	}
	v, err := cio.id.value("customerio", m, &e)
	return e, v, err
}

// cioEntry is one v2 batch entry with its batch index and profile.
type cioEntry struct {
	at   int
	user string
	body json.RawMessage
}

func (cio *customerIO) Send(ctx context.Context, batch []diff.Message) error {
	if cio.v1 {
		return cio.sendV1(ctx, batch)
	}
	be := NewBatchError(len(batch))
	var entries []cioEntry
	for i, m := range batch {
		e, v, err := cio.event(m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		ident := map[string]string{"id": v}
		if cio.id.kind == "email" {
			ident = map[string]string{"email": v}
		}
		entry := map[string]any{"type": "person", "identifiers": ident}
		if e.Type == "identify" {
			entry["action"] = "identify"
			entry["attributes"] = e.Traits
		} else {
			entry["action"] = "event"
			entry["id"] = EventULID(e.MessageID, e.time)
			entry["name"] = e.Event
			entry["timestamp"] = e.time.Unix()
			entry["attributes"] = e.Properties
		}
		body, err := json.Marshal(entry)
		if err != nil {
			be.Fail(i, Permanent(fmt.Errorf("customerio: %w", err)))
			continue
		}
		if len(body) > customerIOMaxEntryBytes {
			be.Fail(i, Permanent(fmt.Errorf("customerio: message %s is %d bytes as a batch entry, over Customer.io's 32 KB limit", m.ID, len(body))))
			continue
		}
		entries = append(entries, cioEntry{at: i, user: e.UserID, body: body})
	}
	for len(entries) > 0 {
		// One entry per profile and under 500 KB a request.
		n, size := 0, len(`{"batch":[]}`)
		in := map[string]bool{}
		for ; n < len(entries); n++ {
			en := entries[n]
			if in[en.user] || size+len(en.body)+1 > customerIOMaxBatchBytes {
				break
			}
			in[en.user] = true
			size += len(en.body) + 1
		}
		if err := cio.sendBatch(ctx, entries[:n], be); err != nil {
			for _, en := range entries[n:] {
				be.Fail(en.at, err)
			}
			break
		}
		entries = entries[n:]
	}
	return be.Err()
}

// sendBatch sends one /api/v2/batch request and records each entry's
// outcome. A 400 refuses the request as a whole without saying which entry
// is bad: each half is sent again, down to the entry to blame. It returns
// a failure worth retrying (recorded for every entry of the request).
func (cio *customerIO) sendBatch(ctx context.Context, entries []cioEntry, be *BatchError) error {
	var body []byte
	body = append(body, `{"batch":[`...)
	for i, en := range entries {
		if i > 0 {
			body = append(body, ',')
		}
		body = append(body, en.body...)
	}
	body = append(body, "]}"...)
	hdr := http.Header{"Authorization": {cio.auth}}
	code, resp, err := cio.http.do(ctx, http.MethodPost, cio.base+customerIOBatchPath, "", body, hdr)
	switch {
	case err != nil && Classify(err) == Retry:
		for _, en := range entries {
			be.Fail(en.at, err)
		}
		return err
	case err != nil && len(entries) == 1:
		be.Fail(entries[0].at, err)
		return nil
	case err != nil:
		half := len(entries) / 2
		if err := cio.sendBatch(ctx, entries[:half], be); err != nil {
			for _, en := range entries[half:] {
				be.Fail(en.at, err)
			}
			return err
		}
		return cio.sendBatch(ctx, entries[half:], be)
	case code == http.StatusMultiStatus:
		var r struct {
			Errors []struct {
				BatchIndex int    `json:"batch_index"`
				Reason     string `json:"reason"`
				Field      string `json:"field"`
				Message    string `json:"message"`
			} `json:"errors"`
		}
		if json.Unmarshal(resp, &r) != nil || len(r.Errors) == 0 {
			// Some entry was refused and the answer does not say which:
			// acknowledge none of them on it; find them one by one.
			if len(entries) == 1 {
				be.Fail(entries[0].at, Permanent(fmt.Errorf("customerio: entry refused (HTTP 207 without errors)")))
				return nil
			}
			half := len(entries) / 2
			if err := cio.sendBatch(ctx, entries[:half], be); err != nil {
				return err
			}
			return cio.sendBatch(ctx, entries[half:], be)
		}
		for _, e := range r.Errors {
			if e.BatchIndex < 0 || e.BatchIndex >= len(entries) {
				continue
			}
			be.Fail(entries[e.BatchIndex].at, Permanent(cio.http.redact.Error(
				fmt.Errorf("customerio: entry refused: %s (field %s): %s", e.Reason, e.Field, e.Message))))
		}
	}
	return nil
}

// sendV1 is api v1: one request per message, profiles concurrently.
func (cio *customerIO) sendV1(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	type call struct {
		at     int
		method string
		path   string
		body   []byte
	}
	var order []string
	byUser := map[string][]call{}
	for i, m := range batch {
		e, v, err := cio.event(m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		path := "/api/v1/customers/" + url.PathEscape(v)
		c := call{at: i, method: http.MethodPut, path: path, body: e.Traits}
		if e.Type == "track" {
			body, err := json.Marshal(struct {
				Name      string          `json:"name"`
				Data      json.RawMessage `json:"data"`
				Timestamp int64           `json:"timestamp"`
			}{e.Event, e.Properties, e.time.Unix()})
			if err != nil {
				be.Fail(i, Permanent(fmt.Errorf("customerio: %w", err)))
				continue
			}
			c = call{at: i, method: http.MethodPost, path: path + "/events", body: body}
		}
		if _, ok := byUser[e.UserID]; !ok {
			order = append(order, e.UserID)
		}
		byUser[e.UserID] = append(byUser[e.UserID], c)
	}

	// Profiles are worked on concurrently, each profile's calls in order.
	// The first failure worth retrying stops new calls for every profile:
	// the server is in trouble or asking to slow down.
	var (
		mu      sync.Mutex
		stopErr error
		wg      sync.WaitGroup
		next    = make(chan string)
	)
	hdr := http.Header{"Authorization": {cio.auth}}
	for range min(cio.concurrency, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for user := range next {
				calls := byUser[user]
				for n, c := range calls {
					mu.Lock()
					stopped := stopErr
					mu.Unlock()
					if stopped != nil {
						for _, rest := range calls[n:] {
							be.Fail(rest.at, stopped)
						}
						break
					}
					_, _, err := cio.http.do(ctx, c.method, cio.base+c.path, "", c.body, hdr)
					if err == nil {
						continue
					}
					be.Fail(c.at, err)
					if Classify(err) == Retry {
						mu.Lock()
						if stopErr == nil {
							stopErr = err
						}
						mu.Unlock()
						for _, rest := range calls[n+1:] {
							be.Fail(rest.at, err)
						}
						break
					}
				}
			}
		}()
	}
	for _, user := range order {
		next <- user
	}
	close(next)
	wg.Wait()
	return be.Err()
}

func (cio *customerIO) Close() error { return nil }
