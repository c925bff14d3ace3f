package sinks_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/apache/arrow-go/v18/arrow"
	"github.com/apache/arrow-go/v18/arrow/array"
	"github.com/apache/arrow-go/v18/arrow/memory"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

// BenchmarkKafkaDeliver measures Kafka delivery through the delivery loop
// (outbox → Deliver → the Kafka sink) against a raw franz-go producer sending
// the same records to the same kfake broker in the same run, interleaved
// round by round (each side first every other round). It reports both rates and their ratio:
//
//	go test -tags duckdb_arrow -run '^$' -bench BenchmarkKafkaDeliver -benchtime 3x ./sinks/
//
// The raw producer is franz-go with its defaults — idempotent, acks=all
// (set explicitly), snappy, 10ms linger, 50000 buffered records — producing
// every record asynchronously and waiting for the last promise (a 0 linger
// or a 200k-record buffer measured no faster here). Deliver starts from a
// full outbox: the in-memory sinktest.Outbox, or, in the pebble modes, the
// real diff.Store on disk, whose acknowledgements are synced batch by batch.
// Each timed part starts after a GC, so that one side's garbage is not
// collected on the other's clock. Besides the rates it reports the CPU time
// per event each side took (the whole process: kfake runs in it too), since
// on a small machine CPU, not latency, is what a pipelined loop runs out of.
func BenchmarkKafkaDeliver(b *testing.B) {
	const events = 100_000
	txn := map[string]dsl.Setting{"transactional": {Text: "true"}}
	for _, mode := range []struct {
		name     string
		settings map[string]dsl.Setting
		batch    int
		pebble   bool
	}{
		{"idempotent", nil, 0, false},
		{"idempotent-batch5000", nil, 5000, false},
		{"idempotent-pebble", nil, 0, true},
		{"idempotent-pebble-batch5000", nil, 5000, true},
		{"transactional", txn, 0, false},
		{"transactional-batch5000", txn, 5000, false},
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
			// Both clients connect, load metadata and a producer ID
			// before the clock runs.
			warm := sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1, Audiences: []string{"warm-up"}})
			if err := raw.ProduceSync(context.Background(), sinks.Record(topic, warm[0])).FirstErr(); err != nil {
				b.Fatal(err)
			}
			wob := sinktest.NewOutbox()
			wob.Append("events", warm...)
			if _, err := sinks.Deliver(context.Background(), wob, "events", d, o); err != nil {
				b.Fatal(err)
			}

			var rawTime, loopTime, rawCPU, loopCPU time.Duration
			bytes, iter := 0, 0
			for b.Loop() {
				iter++
				// A new outbox each round. New messageIds each round: the
				// same ids would rightly be recognised as already
				// committed by the transactional sink.
				var ob sinks.Outbox
				var msgs []diff.Message
				if mode.pebble {
					ob, msgs = storeOutbox(b, events, iter)
				} else {
					msgs = sinktest.Messages(sinktest.GenOptions{Profiles: events / 10, PerProfile: 10, Audiences: []string{"a", "b", "c"}})
					for i := range msgs {
						msgs[i].ID = fmt.Sprintf("%s-r%d", msgs[i].ID, iter)
					}
					mob := sinktest.NewOutbox()
					msgs = mob.Append("events", msgs...)
					ob = mob
				}
				bytes = 0
				for _, m := range msgs {
					bytes += len(m.Payload)
				}

				// Raw: every record produced asynchronously, then one flush.
				runRaw := func() {
					runtime.GC()
					start, cpu := time.Now(), cpuTime(b)
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
					rawCPU += cpuTime(b) - cpu
					if perr != nil {
						b.Fatal(perr)
					}
				}
				// The delivery loop, from a full outbox.
				runLoop := func() {
					runtime.GC()
					start, cpu := time.Now(), cpuTime(b)
					st, err := sinks.Deliver(context.Background(), ob, "events", d, o)
					loopTime += time.Since(start)
					loopCPU += cpuTime(b) - cpu
					if err != nil || st.Delivered != len(msgs) {
						b.Fatalf("Deliver = %+v, %v", st, err)
					}
				}
				// Each goes first every other round: the broker's log grows
				// under both alike.
				if iter%2 == 1 {
					runRaw()
					runLoop()
				} else {
					runLoop()
					runRaw()
				}
				if s, ok := ob.(*diff.Store); ok {
					if err := s.Close(); err != nil {
						b.Fatal(err)
					}
				}
			}
			n := float64(b.N * events)
			rawRate := n / rawTime.Seconds()
			loopRate := n / loopTime.Seconds()
			b.ReportMetric(rawRate, "raw-events/s")
			b.ReportMetric(loopRate, "deliver-events/s")
			b.ReportMetric(loopRate/rawRate, "ratio")
			b.ReportMetric(float64(bytes)/events, "B/event")
			rawUs := float64(rawCPU.Microseconds()) / n
			loopUs := float64(loopCPU.Microseconds()) / n
			b.ReportMetric(rawUs, "raw-cpu-µs/event")
			b.ReportMetric(loopUs, "deliver-cpu-µs/event")
			b.Logf("%s: raw %.0f events/s, Deliver %.0f events/s, ratio %.2f; CPU per event (process, broker included) raw %.2fµs, Deliver %.2fµs (%d events of %d B avg)",
				mode.name, rawRate, loopRate, loopRate/rawRate, rawUs, loopUs, events, bytes/events)
		})
	}
}

// storeOutbox returns a diff.Store on disk whose outbox holds n events for
// the destination "events" (Audience Entered and Membership Changed for
// n/2 profiles, from a first cycle with send_current), and the events.
func storeOutbox(b *testing.B, n, round int) (*diff.Store, []diff.Message) {
	b.Helper()
	s, err := diff.Open(b.TempDir(), diff.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		b.Fatal(err)
	}
	aud := &dsl.Audience{Name: "bench_" + strconv.Itoa(round), Version: "v1"}
	dest := &dsl.Destination{Name: "events", Type: "kafka"}
	acts := []*dsl.Activation{
		{Name: "entered", Audience: aud, Destination: dest, Event: dsl.AudienceEntered, EntityStep: -1, SendCurrent: true},
		{Name: "synced", Audience: aud, Destination: dest, Event: dsl.AudienceMembershipChanged, EntityStep: -1, SendCurrent: true},
	}
	if err := s.Enable(aud.Name); err != nil {
		b.Fatal(err)
	}
	schema := arrow.NewSchema([]arrow.Field{{Name: "profile_key", Type: arrow.BinaryTypes.String}}, nil)
	rb := array.NewRecordBuilder(memory.DefaultAllocator, schema)
	defer rb.Release()
	var recs []arrow.RecordBatch
	for i := range n / 2 {
		rb.Field(0).(*array.StringBuilder).Append(fmt.Sprintf("u%08d", i))
		if (i+1)%2048 == 0 || i == n/2-1 {
			recs = append(recs, rb.NewRecordBatch())
		}
	}
	rr, err := array.NewRecordReader(schema, recs)
	if err != nil {
		b.Fatal(err)
	}
	defer rr.Release()
	if _, err := s.Cycle(context.Background(), diff.CycleInput{
		Audience: aud, Layout: diff.LayoutOf(aud), Activations: acts, Rows: rr, Start: time.Unix(1_800_000_000, 0),
	}); err != nil {
		b.Fatal(err)
	}
	msgs, err := s.Pending("events", 0, n+1)
	if err != nil || len(msgs) != n {
		b.Fatalf("outbox holds %d events, %v; want %d", len(msgs), err, n)
	}
	return s, msgs
}

// cpuTime is the CPU time (user and system) the process used so far: the
// broker's, the producers' and the outbox's, which share the machine's cores.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
