// Package devbroker runs an in-process Kafka-protocol broker for local
// development and the demo: `linkaud devbroker` and tests start one with
// Start. It is franz-go's kfake, a fake cluster that speaks the Kafka wire
// protocol well enough for ordinary clients (franz-go, librdkafka's kcat,
// confluent-kafka) — produce, fetch, consumer groups, transactions.
//
// NOT FOR PRODUCTION: one broker, no replication, data in memory unless
// DataDir is set, no security by default.
package devbroker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Banner is printed by the CLI and logged by Start so nobody mistakes the
// broker for a real one.
const Banner = "NOT FOR PRODUCTION: in-process Kafka-protocol broker (franz-go kfake) for development and demos"

// Options configure Start.
type Options struct {
	// Addr is host:port to listen on and to advertise to clients; default
	// 127.0.0.1:9092. Port 0 picks a free port (see Broker.Addr). The host
	// must be one clients can reach: 0.0.0.0 is refused because it would be
	// advertised as is.
	Addr string
	// Partitions of auto-created topics; default 3.
	Partitions int
	// Topics are created at start, with Partitions partitions.
	Topics []string
	// DataDir keeps the broker's data across restarts; default none (in
	// memory).
	DataDir string
	// Logger receives the broker's warnings; default slog.Default().
	Logger *slog.Logger
}

// Broker is a running development broker.
type Broker struct {
	c    *kfake.Cluster
	addr string
}

// Start starts a one-broker cluster. Topics are created automatically when
// a client asks for one that does not exist (as Kafka does with
// auto.create.topics.enable).
func Start(o Options) (*Broker, error) {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:9092"
	}
	if o.Partitions <= 0 {
		o.Partitions = 3
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	host, _, err := net.SplitHostPort(o.Addr)
	if err != nil {
		return nil, fmt.Errorf("devbroker: address %q: %w", o.Addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		return nil, errors.New("devbroker: give a host clients can reach, such as 127.0.0.1:9092; the broker advertises its listen address")
	}
	opts := []kfake.Opt{
		kfake.NumBrokers(1),
		// kfake listens on 127.0.0.1 by default; listen where asked.
		kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, o.Addr) }),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(o.Partitions),
		kfake.ClusterID("linkaud-devbroker"),
		kfake.WithLogger(logger{o.Logger}),
	}
	if len(o.Topics) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(o.Partitions), o.Topics...))
	}
	if o.DataDir != "" {
		opts = append(opts, kfake.DataDir(o.DataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return nil, fmt.Errorf("devbroker: %w", err)
	}
	b := &Broker{c: c, addr: c.ListenAddrs()[0]}
	o.Logger.Warn(Banner, "addr", b.addr)
	return b, nil
}

// Addr is the address clients connect to (the seed broker).
func (b *Broker) Addr() string { return b.addr }

// Close stops the broker, saving its data when DataDir was set.
func (b *Broker) Close() { b.c.Close() }

type logger struct{ l *slog.Logger }

func (g logger) Logf(level kfake.LogLevel, msg string, args ...any) {
	lv := slog.LevelWarn
	switch level {
	case kfake.LogLevelError:
		lv = slog.LevelError
	case kfake.LogLevelWarn:
	default:
		return
	}
	g.l.Log(context.Background(), lv, "devbroker: "+fmt.Sprintf(msg, args...))
}
