package sinks_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// BenchmarkCustomerIO measures Customer.io delivery, events per second,
// through the delivery loop against a local fake of the Track API that
// enforces Customer.io's fair-use limit of 100 requests per second (a token
// bucket, burst 20; a request over it gets 429 with Retry-After: 1): api v1
// (one request per event) against api v2 (/api/v2/batch):
//
//	go test -tags duckdb_arrow -run '^$' -bench BenchmarkCustomerIO -benchtime 1x ./sinks/
//
// Each profile has one event (Audience Entered, a send_current): v2 then
// fills requests up to its 1000-message batch and 500 KB. v1's figure is
// bounded by 100 events/s whatever the client does; 1M events then take
// about 2.8 hours, against minutes with v2.
func BenchmarkCustomerIO(b *testing.B) {
	for _, mode := range []struct {
		api    string
		events int
	}{
		{"v1", 400},
		{"v2", 20_000},
	} {
		b.Run(mode.api, func(b *testing.B) {
			limit := rate.NewLimiter(100, 20)
			fake := &cioFake{}
			var requests atomic.Int64
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				body, _ := io.ReadAll(r.Body)
				if !limit.Allow() {
					w.Header().Set("Retry-After", "1")
					w.WriteHeader(429)
					return
				}
				code, resp, _ := fake.handle(b, r, body)
				w.WriteHeader(code)
				_, _ = io.WriteString(w, resp)
			}))
			defer srv.Close()
			d, err := sinks.Open(&dsl.Destination{Name: "cio", Type: "customerio", Settings: map[string]dsl.Setting{
				"endpoint": {Text: srv.URL}, "site_id": {Text: cioSite}, "api_key": {Secret: dsl.Secret{Env: "K"}}, "api": {Text: mode.api}}},
				sinks.OpenOptions{LookupEnv: env(map[string]string{"K": cioKey})})
			if err != nil {
				b.Fatal(err)
			}
			o := sinks.DeliverOptions{RateLimit: sinks.Unlimited, MaxEventBytes: -1}
			var total time.Duration
			for range b.N {
				ob := sinktest.NewOutbox()
				ob.Append("cio", sinktest.Messages(sinktest.GenOptions{Profiles: mode.events, PerProfile: 1})...)
				began := time.Now()
				st, err := sinks.Deliver(context.Background(), ob, "cio", d, o)
				total += time.Since(began)
				if err != nil || st.Delivered != mode.events {
					b.Fatalf("Deliver = %+v, %v", st, err)
				}
			}
			eps := float64(mode.events*b.N) / total.Seconds()
			b.ReportMetric(eps, "events/s")
			b.ReportMetric(float64(requests.Load())/float64(b.N), "requests/op")
			b.ReportMetric(1e6/eps/3600, "h/1M-events")
		})
	}
}
