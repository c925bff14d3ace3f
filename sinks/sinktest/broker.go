package sinktest

import (
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is an in-process kfake broker that can be stopped and started
// again on the same address with its data, like a restarted Kafka.
type Broker struct {
	t     testing.TB
	dir   string
	topic string
	opts  []kfake.Opt

	mu   sync.Mutex
	port int
	c    *kfake.Cluster
}

// StartBroker starts a one-broker cluster with topic (3 partitions); it
// stops when the test ends.
func StartBroker(t testing.TB, topic string, opts ...kfake.Opt) *Broker {
	t.Helper()
	b := &Broker{t: t, dir: t.TempDir(), topic: topic, opts: opts}
	b.Start()
	t.Cleanup(b.Stop)
	return b
}

// Start starts the broker (again), on the address it had. It may be
// called from any goroutine: a failure is reported with Errorf.
func (b *Broker) Start() {
	b.mu.Lock()
	defer b.mu.Unlock()
	opts := append([]kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(b.port),
		kfake.DataDir(b.dir),
		kfake.SeedTopics(3, b.topic),
		kfake.AllowAutoTopicCreation(),
	}, b.opts...)
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		b.t.Errorf("kfake: %v", err)
		return
	}
	_, port, _ := net.SplitHostPort(c.ListenAddrs()[0])
	b.port, _ = strconv.Atoi(port)
	b.c = c
}

// Stop stops the broker; its data stays for the next Start.
func (b *Broker) Stop() {
	b.mu.Lock()
	c := b.c
	b.c = nil
	b.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Cluster is the running cluster (nil while stopped), for faults.
func (b *Broker) Cluster() *kfake.Cluster {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.c
}

// Addr is the broker's address, the same across restarts.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return fmt.Sprintf("127.0.0.1:%d", b.port)
}
