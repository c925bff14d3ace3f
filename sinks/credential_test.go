package sinks_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// httpVendors are every HTTP destination, each on a fake of its documented
// API, for the redirect and credential matrices.
func httpVendors() []struct {
	name string
	open func(t *testing.T) (*fakeVendor, sinks.Destination)
} {
	return []struct {
		name string
		open func(t *testing.T) (*fakeVendor, sinks.Destination)
	}{
		{"webhook", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, webhookHandler)
			d, err := sinks.Open(&dsl.Destination{Name: "hook", Type: "webhook", Settings: map[string]dsl.Setting{
				"url": {Text: f.url() + "/hook"}, "secret": {Secret: dsl.Secret{Env: "HOOK_SECRET"}}, "batch_size": {Text: "20"}}},
				sinks.OpenOptions{LookupEnv: env(map[string]string{"HOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"})})
			if err != nil {
				t.Fatal(err)
			}
			return f, d
		}},
		{"braze", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, brazeHandler(nil))
			return f, openBraze(t, f)
		}},
		{"iterable bulk", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, iterableHandler(nil))
			return f, openIterable(t, f, true)
		}},
		{"iterable single", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, iterableHandler(nil))
			return f, openIterable(t, f, false)
		}},
		{"customerio v2", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, customerIOHandler())
			return f, openCustomerIO(t, f, map[string]dsl.Setting{"request_rate": {Text: "5000"}})
		}},
		{"customerio v1", func(t *testing.T) (*fakeVendor, sinks.Destination) {
			f := newFakeVendor(t, customerIOHandler())
			return f, openCustomerIO(t, f, map[string]dsl.Setting{"api": {Text: "v1"}, "request_rate": {Text: "5000"}})
		}},
	}
}

// webhookHandler accepts {"batch": [events]} and returns their messageIds.
func webhookHandler(t testing.TB, r *http.Request, body []byte) (int, string, []string) {
	return 200, "", batchIDs(t, body)
}

// TestCredentialMatrix: every HTTP destination answers 401, then 403, for
// many delivery passes (the worker makes one every deliver interval for as
// long as the credential stays refused), then 200. While refused, every
// pass stops at once with ErrHalted, sends one request, and dead-letters
// nothing; afterwards everything arrives, in per-profile order, and
// nothing was ever dead-lettered. Iterable's BadApiKey under a 400 halts
// too.
func TestCredentialMatrix(t *testing.T) {
	const passes = 12 // refused passes per status
	for _, v := range httpVendors() {
		for _, refusal := range []struct {
			name   string
			status int
			body   string
		}{
			{"401", 401, `{"message":"Unauthorized - Unknown or missing REST API Key.","code":"BadApiKey"}`},
			{"403", 403, `{"message":"Access Denied","code":"Forbidden"}`},
			{"404 on the API root", 404, `{"message":"Not Found - Invalid URL"}`},
		} {
			t.Run(v.name+"/"+refusal.name, func(t *testing.T) {
				f, d := v.open(t)
				ob := sinktest.NewOutbox()
				msgs := ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 20, PerProfile: 5, Audiences: []string{"a", "b"}})...)
				o := sinktest.FastOptions()
				o.BatchSize = 25
				var halts int
				f.refuse(&response{status: refusal.status, body: refusal.body})
				for range passes {
					before := len(f.recorded())
					st, err := sinks.Deliver(context.Background(), ob, "x", d, o)
					var h *sinks.DestinationHaltedError
					if !errors.Is(err, sinks.ErrHalted) || !errors.As(err, &h) || h.Dest != "x" {
						t.Fatalf("pass refused with %d: %+v, %v; want a halt", refusal.status, st, err)
					}
					// One request, or one per profile in flight for
					// Customer.io v1 (concurrency 10).
					if n := len(f.recorded()) - before; st.DeadLettered != 0 || st.Delivered != 0 || st.Retries != 0 || n < 1 || n > 10 {
						t.Fatalf("halted pass: %+v, %d requests; want one request, nothing delivered or dead-lettered, no retry", st, n)
					}
					if !strings.Contains(err.Error(), fmt.Sprint(refusal.status)) || !strings.Contains(err.Error(), "check") {
						t.Errorf("halt message %q names neither the status nor what to check", err)
					}
					halts++
				}
				f.refuse(nil)
				st, err := sinks.Deliver(context.Background(), ob, "x", d, o)
				if err != nil || st.DeadLettered != 0 || st.Delivered != len(msgs) || ob.Len("x") != 0 || len(ob.DeadLetters("x")) != 0 {
					t.Fatalf("after the credential works: %+v, %v; want all %d delivered, none dead-lettered", st, err, len(msgs))
				}
				sinktest.CheckReceived(t, msgs, f.tags(), msgs)
				t.Logf("%s: %d halted passes, then %d delivered, 0 dead-lettered", refusal.name, halts, st.Delivered)
			})
		}
	}
	t.Run("iterable BadApiKey under 400", func(t *testing.T) {
		f := newFakeVendor(t, iterableHandler(nil))
		d := openIterable(t, f, true)
		f.then(response{status: 400, body: `{"msg":"Invalid API key","code":"BadApiKey","params":null}`})
		ob := sinktest.NewOutbox()
		ob.Append("x", sinktest.Messages(sinktest.GenOptions{Profiles: 3, PerProfile: 1})...)
		st, err := sinks.Deliver(context.Background(), ob, "x", d, sinktest.FastOptions())
		if !errors.Is(err, sinks.ErrHalted) || st.DeadLettered != 0 {
			t.Fatalf("%+v, %v", st, err)
		}
	})
}

// TestKafkaMissingTopicHalts: a topic that does not exist is never created
// by producing to it; the destination halts with a message naming the
// topic, dead-letters nothing, and delivers once the topic exists —
// created by someone, or by linkaud with create_topic true.
func TestKafkaMissingTopicHalts(t *testing.T) {
	b := sinktest.StartBroker(t, "other-topic")
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 5, PerProfile: 2})...)
	d := openKafka(t, b.Addr(), nil, nil) // topic: the tests' topic, not seeded
	defer d.Close()
	for range 3 {
		st, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions())
		if !errors.Is(err, sinks.ErrHalted) || st.DeadLettered != 0 || st.Delivered != 0 || !strings.Contains(err.Error(), fmt.Sprintf("topic %q does not exist", topic)) || !strings.Contains(err.Error(), "create_topic true") {
			t.Fatalf("Deliver to a missing topic: %+v, %v", st, err)
		}
	}
	if recs := sinktest.ReadTopic(t, b.Addr(), "other-topic", false); len(recs) != 0 {
		t.Fatalf("%d records elsewhere", len(recs))
	}
	created := openKafka(t, b.Addr(), map[string]dsl.Setting{"create_topic": {Text: "true"}, "partitions": {Text: "4"}, "replication_factor": {Text: "1"}}, nil)
	defer created.Close()
	st, err := sinks.Deliver(context.Background(), ob, "events", created, sinktest.FastOptions())
	if err != nil || st.Delivered != len(msgs) {
		t.Fatalf("with create_topic: %+v, %v", st, err)
	}
	if recs := sinktest.ReadTopic(t, b.Addr(), topic, false); len(recs) != len(msgs) {
		t.Fatalf("%d records in %s, want %d", len(recs), topic, len(msgs))
	}
	// The first destination finds it now too.
	ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1, Audiences: []string{"z"}})...)
	if st, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions()); err != nil || st.Delivered != 1 {
		t.Fatalf("after the topic exists: %+v, %v", st, err)
	}
	if _, err := sinks.Open(&dsl.Destination{Name: "k", Type: "kafka", Settings: map[string]dsl.Setting{
		"brokers": {Text: b.Addr()}, "topic": {Text: "t"}, "partitions": {Text: "3"}}}, sinks.OpenOptions{}); err == nil || !strings.Contains(err.Error(), "apply to a topic create_topic true makes") {
		t.Errorf("partitions without create_topic: %v", err)
	}
}
