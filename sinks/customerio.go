package sinks

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

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
			{Name: "concurrency", Kind: Text, Doc: "requests in flight, for different profiles (default 10)"},
			{Name: "request_rate", Kind: Text, Doc: "requests per second (default 100, Customer.io's fair-use limit)"},
			{Name: "timeout", Kind: Text, Doc: "per-request timeout (default 10s)"},
		},
		Open: openCustomerIO,
	})
}

// Customer.io Track API v1: about 100 requests per second per workspace;
// a customer identifier is at most 150 bytes.
const (
	customerIORequestsPerSec = 100
	customerIOMaxID          = 150
)

var customerIORegions = map[string]string{
	"us": "https://track.customer.io",
	"eu": "https://track-eu.customer.io",
}

// customerIO maps Segment's presets onto the Track API v1: Entered / Exited
// / Added / Removed are events (POST /api/v1/customers/{id}/events with
// name, data = the properties, timestamp); Audience Membership Changed is an
// identify (PUT /api/v1/customers/{id} with the audience attribute). Basic
// auth with site_id:api_key. The v1 API takes one call per request, so
// different profiles are sent concurrently, each profile's in order.
type customerIO struct {
	base        string
	user, pass  string
	auth        string
	concurrency int
	http        *httpSender
}

func openCustomerIO(c *Config) (Destination, error) {
	cio := &customerIO{
		base:        baseURL(c, customerIORegions, "us"),
		user:        c.String("site_id", ""),
		pass:        c.String("api_key", ""),
		concurrency: c.Int("concurrency", 10, 1, 100),
		http:        newHTTPSender(c, "customerio", c.Duration("timeout", 10*time.Second)),
	}
	cio.http.limit("", requestRate(c, customerIORequestsPerSec), 10)
	// The Basic credential encodes the key: an error echoing the request
	// must not show it either.
	cio.auth = "Basic " + base64.StdEncoding.EncodeToString([]byte(cio.user+":"+cio.pass))
	c.Redactor.Add(cio.auth[len("Basic "):])
	return cio, nil
}

// MaxBatch bounds the requests one Send makes.
func (cio *customerIO) MaxBatch() int { return 200 }

type customerIOEvent struct {
	Name      string          `json:"name"`
	Data      json.RawMessage `json:"data"`
	Timestamp int64           `json:"timestamp"`
}

type cioCall struct {
	at     int
	method string
	path   string
	body   []byte
}

func (cio *customerIO) Send(ctx context.Context, batch []diff.Message) error {
	be := NewBatchError(len(batch))
	var order []string
	byUser := map[string][]cioCall{}
	for i, m := range batch {
		e, err := parseEvent("customerio", m)
		if err != nil {
			be.Fail(i, err)
			continue
		}
		if len(e.UserID) > customerIOMaxID {
			be.Fail(i, Permanent(fmt.Errorf("customerio: customer id of %s is longer than %d bytes", m.ID, customerIOMaxID)))
			continue
		}
		path := "/api/v1/customers/" + url.PathEscape(e.UserID)
		call := cioCall{at: i, method: http.MethodPut, path: path, body: e.Traits}
		if e.Type == "track" {
			body, err := json.Marshal(customerIOEvent{Name: e.Event, Data: e.Properties, Timestamp: e.time.Unix()})
			if err != nil {
				be.Fail(i, Permanent(fmt.Errorf("customerio: %w", err)))
				continue
			}
			call = cioCall{at: i, method: http.MethodPost, path: path + "/events", body: body}
		}
		if _, ok := byUser[e.UserID]; !ok {
			order = append(order, e.UserID)
		}
		byUser[e.UserID] = append(byUser[e.UserID], call)
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
				for n, call := range calls {
					mu.Lock()
					stopped := stopErr
					mu.Unlock()
					if stopped != nil {
						for _, rest := range calls[n:] {
							be.Fail(rest.at, stopped)
						}
						break
					}
					_, _, err := cio.http.do(ctx, call.method, cio.base+call.path, "", call.body, hdr)
					if err == nil {
						continue
					}
					be.Fail(call.at, err)
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
