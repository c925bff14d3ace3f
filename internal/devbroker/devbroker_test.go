package devbroker_test

import (
	"context"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/linkaud/linkaud/internal/devbroker"
)

// produce writes n records to topic with an ordinary franz-go client.
func produce(t *testing.T, addr, topic string, n int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	p, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.AllowAutoTopicCreation())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for i := range n {
		r := &kgo.Record{Topic: topic, Key: []byte{byte('a' + i%3)}, Value: []byte{byte(i)}}
		if err := p.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatalf("produce: %v", err)
		}
	}
}

// consume reads topic from the start until it has want records.
func consume(t *testing.T, addr, topic string, want int) []*kgo.Record {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := kgo.NewClient(kgo.SeedBrokers(addr), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var got []*kgo.Record
	for len(got) < want {
		fs := c.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d records of %s", len(got), want, topic)
		}
		fs.EachRecord(func(r *kgo.Record) { got = append(got, r) })
	}
	return got
}

func TestDevBroker(t *testing.T) {
	dir := t.TempDir()
	b, err := devbroker.Start(devbroker.Options{Addr: "127.0.0.1:0", Partitions: 4, Topics: []string{"seeded"}, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	addr := b.Addr()
	produce(t, addr, "auto-created", 30)
	consume(t, addr, "auto-created", 30)
	produce(t, addr, "seeded", 40)
	parts := map[int32]bool{}
	for _, r := range consume(t, addr, "seeded", 40) {
		parts[r.Partition] = true
	}
	if len(parts) < 2 || len(parts) > 4 {
		t.Fatalf("records in partitions %v of a 4-partition topic", parts)
	}
	b.Close()

	// With a data directory the records survive a restart on the same
	// address.
	b, err = devbroker.Start(devbroker.Options{Addr: addr, DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	consume(t, addr, "auto-created", 30)
	produce(t, addr, "auto-created", 5)
	consume(t, addr, "auto-created", 35)
}

func TestDevBrokerRefusesUnspecifiedHost(t *testing.T) {
	if _, err := devbroker.Start(devbroker.Options{Addr: "0.0.0.0:0"}); err == nil {
		t.Fatal("0.0.0.0 accepted")
	}
}
