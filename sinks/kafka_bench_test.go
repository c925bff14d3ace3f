package sinks_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// BenchmarkKafkaDeliver measures Kafka delivery through the delivery loop
// (outbox → Deliver → the Kafka sink, acked batch by batch) against a raw
// franz-go producer sending the same records, asynchronously with its
// defaults, to the same kfake broker in the same run. It reports both rates
// and their ratio:
//
//	go test -tags duckdb_arrow -run '^$' -bench BenchmarkKafkaDeliver -benchtime 3x ./sinks/
//
// The outbox is the in-memory sinktest.Outbox, so Pebble's cost is not in
// the figure.
func BenchmarkKafkaDeliver(b *testing.B) {
	const events = 100_000
	msgs := sinktest.Messages(sinktest.GenOptions{Profiles: events / 10, PerProfile: 10, Audiences: []string{"a", "b", "c"}})
	bytes := 0
	for _, m := range msgs {
		bytes += len(m.Payload)
	}
	for _, mode := range []struct {
		name     string
		settings map[string]dsl.Setting
		batch    int
	}{
		{"idempotent", nil, 0},
		{"idempotent/batch=5000", nil, 5000},
		{"transactional", map[string]dsl.Setting{"transactional": {Text: "true"}}, 0},
		{"transactional/batch=5000", map[string]dsl.Setting{"transactional": {Text: "true"}}, 5000},
	} {
		b.Run(mode.name, func(b *testing.B) {
			c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, topic), kfake.AllowAutoTopicCreation())
			if err != nil {
				b.Fatal(err)
			}
			defer c.Close()
			addr := c.ListenAddrs()[0]
			d := openKafka(b, addr, mode.settings, nil)
			defer d.Close()
			raw, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.RequiredAcks(kgo.AllISRAcks()))
			if err != nil {
				b.Fatal(err)
			}
			defer raw.Close()
			o := sinks.DeliverOptions{RateLimit: sinks.Unlimited, BatchSize: mode.batch}

			var rawTime, loopTime time.Duration
			iter := 0
			for b.Loop() {
				iter++
				// Raw: every record produced asynchronously, then one flush.
				start := time.Now()
				var wg sync.WaitGroup
				var mu sync.Mutex
				var perr error
				wg.Add(len(msgs))
				for _, m := range msgs {
					raw.Produce(context.Background(), sinks.Record(topic, m), func(_ *kgo.Record, err error) {
						if err != nil {
							mu.Lock()
							perr = err
							mu.Unlock()
						}
						wg.Done()
					})
				}
				wg.Wait()
				rawTime += time.Since(start)
				if perr != nil {
					b.Fatal(perr)
				}

				// The delivery loop, from a full outbox.
				// New messageIds each round: the same ids would rightly be
				// recognised as already committed by the transactional sink.
				round := make([]diff.Message, len(msgs))
				for i, m := range msgs {
					m.ID = fmt.Sprintf("%s-r%d", m.ID, iter)
					round[i] = m
				}
				ob := sinktest.NewOutbox()
				ob.Append("events", round...)
				start = time.Now()
				st, err := sinks.Deliver(context.Background(), ob, "events", d, o)
				loopTime += time.Since(start)
				if err != nil || st.Delivered != len(msgs) {
					b.Fatalf("Deliver = %+v, %v", st, err)
				}
			}
			n := float64(b.N * len(msgs))
			rawRate := n / rawTime.Seconds()
			loopRate := n / loopTime.Seconds()
			b.ReportMetric(rawRate, "raw-events/s")
			b.ReportMetric(loopRate, "deliver-events/s")
			b.ReportMetric(loopRate/rawRate, "ratio")
			b.ReportMetric(float64(bytes)/float64(len(msgs)), "B/event")
			b.Logf("%s: raw %.0f events/s, Deliver %.0f events/s, ratio %.2f (%d events of %d B avg)",
				mode.name, rawRate, loopRate, loopRate/rawRate, len(msgs), bytes/len(msgs))
		})
	}
}
