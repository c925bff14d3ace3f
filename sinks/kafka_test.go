package sinks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/linkaud/linkaud/diff"
	"github.com/linkaud/linkaud/dsl"
	"github.com/linkaud/linkaud/sinks"
	"github.com/linkaud/linkaud/sinks/sinktest"
)

const topic = "linked-audiences"

func startBroker(t testing.TB, opts ...kfake.Opt) *sinktest.Broker {
	return sinktest.StartBroker(t, topic, opts...)
}

// fail makes the next n produce requests fail with err.
func fail(b *sinktest.Broker, n int, err *kerr.Error) {
	b.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Err: err, Count: n})
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func messageIDs(recs []*kgo.Record) []string {
	ids := make([]string, len(recs))
	for i, r := range recs {
		ids[i] = header(r, sinks.HeaderMessageID)
	}
	return ids
}

func openKafka(t testing.TB, addr string, extra map[string]dsl.Setting, vars map[string]string) sinks.Destination {
	t.Helper()
	settings := map[string]dsl.Setting{
		"brokers": {Secret: dsl.Secret{Env: "KAFKA_BROKERS"}},
		"topic":   {Text: topic},
		"timeout": {Text: "3s"},
	}
	for k, v := range extra {
		settings[k] = v
	}
	e := map[string]string{"KAFKA_BROKERS": addr}
	for k, v := range vars {
		e[k] = v
	}
	d, err := sinks.Open(&dsl.Destination{Name: "events", Type: "kafka", Settings: settings}, sinks.OpenOptions{LookupEnv: env(e)})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return d
}

func kafkaTarget(t *testing.T, transactional bool) *sinktest.Target {
	b := startBroker(t)
	extra := map[string]dsl.Setting{"timeout": {Text: "1s"}}
	if transactional {
		extra["transactional"] = dsl.Setting{Text: "true"}
	}
	d := openKafka(t, b.Addr(), extra, nil)
	return &sinktest.Target{
		Dest:     d,
		Received: func(t testing.TB) []string { return messageIDs(sinktest.ReadTopic(t, b.Addr(), topic, transactional)) },
		// UNKNOWN_SERVER_ERROR is not retried by the client: the
		// delivery loop sees it and retries. (An authorization failure
		// halts the destination instead: TestKafkaAuthorizationHalts.)
		Fail:   func(n int) { fail(b, n, kerr.UnknownServerError) },
		Reject: func() { fail(b, 1, kerr.MessageTooLarge) },
		Outage: func(t testing.TB) func() {
			b.Stop()
			return b.Start
		},
	}
}

func TestKafkaShared(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) *sinktest.Target { return kafkaTarget(t, false) })
}

func TestKafkaTransactionalShared(t *testing.T) {
	sinktest.Run(t, func(t *testing.T) *sinktest.Target { return kafkaTarget(t, true) })
}

// TestKafkaRecordShape checks key, value and headers against the contract:
// key the profile key, value the event JSON, headers event, audience,
// message_id.
func TestKafkaRecordShape(t *testing.T) {
	b := startBroker(t)
	d := openKafka(t, b.Addr(), nil, nil)
	defer d.Close()
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 4, PerProfile: 5, Audiences: []string{"outstanding_balance", "platinum"}})...)
	if _, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions()); err != nil {
		t.Fatal(err)
	}
	recs := sinktest.ReadTopic(t, b.Addr(), topic, false)
	if len(recs) != len(msgs) {
		t.Fatalf("%d records, want %d", len(recs), len(msgs))
	}
	byID := map[string]diff.Message{}
	for _, m := range msgs {
		byID[m.ID] = m
	}
	partOf := map[string]int32{}
	for _, r := range recs {
		m, ok := byID[header(r, sinks.HeaderMessageID)]
		if !ok {
			t.Fatalf("record with unknown message_id %q", header(r, sinks.HeaderMessageID))
		}
		if string(r.Key) != m.UserID || string(r.Value) != string(m.Payload) ||
			header(r, sinks.HeaderEvent) != m.Event || header(r, sinks.HeaderAudience) != m.Audience || len(r.Headers) != 3 {
			t.Errorf("record key %q headers %v value %s\nwant message %+v", r.Key, r.Headers, r.Value, m)
		}
		if p, ok := partOf[m.UserID]; ok && p != r.Partition {
			t.Errorf("profile %s in partitions %d and %d", m.UserID, p, r.Partition)
		}
		partOf[m.UserID] = r.Partition
	}
	sinktest.CheckReceived(t, msgs, messageIDs(recs), msgs)
}

// TestKafkaBrokerRestartMidDelivery stops the broker after a few batches
// and starts it again once the loop has seen the failure: everything is
// delivered, per-profile order kept, nothing lost.
func TestKafkaBrokerRestartMidDelivery(t *testing.T) {
	for _, transactional := range []bool{false, true} {
		t.Run(fmt.Sprintf("transactional=%v", transactional), func(t *testing.T) {
			b := startBroker(t)
			extra := map[string]dsl.Setting{"timeout": {Text: "1s"}}
			if transactional {
				extra["transactional"] = dsl.Setting{Text: "true"}
			}
			d := openKafka(t, b.Addr(), extra, nil)
			defer d.Close()
			ob := sinktest.NewOutbox()
			msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 150, PerProfile: 8, Audiences: []string{"a", "b"}})...)
			o := sinktest.FastOptions()
			o.BatchSize = 50
			// Two batches in flight: the broker stops with batches
			// started and not yet acknowledged, and more to come.
			o.InFlight = 100
			o.MaxRetries = 50
			o.MaxBackoff = 200 * time.Millisecond
			outage := &outageHook{after: 6, stop: b.Stop, start: b.Start}
			o.Hooks = []sinks.Hook{outage}
			var st sinks.Stats
			for call := 0; ob.Len("events") > 0; call++ {
				if call == 3 {
					t.Fatalf("%d messages pending after %d calls", ob.Len("events"), call)
				}
				s, err := sinks.Deliver(context.Background(), ob, "events", d, o)
				if err != nil {
					t.Logf("Deliver: %v", err)
				}
				st.Delivered += s.Delivered + s.Recovered
				st.Retries += s.Retries
			}
			if !outage.restarted.Load() {
				t.Fatal("the broker was never stopped")
			}
			if st.Delivered != len(msgs) || st.Retries == 0 {
				t.Fatalf("delivered %d of %d with %d retries", st.Delivered, len(msgs), st.Retries)
			}
			recs := sinktest.ReadTopic(t, b.Addr(), topic, transactional)
			dups := sinktest.CheckReceived(t, msgs, messageIDs(recs), msgs)
			if transactional && dups != 0 {
				t.Errorf("%d duplicates for a read_committed consumer", dups)
			}
			t.Logf("%d records for %d messages (%d duplicates), %d retries", len(recs), len(msgs), dups, st.Retries)
		})
	}
}

// TestKafkaPipelinedPartitionFaults fails one partition's produce now and
// then while ten batches are in flight: the partition's records of the
// failing batch and of the batches after it fail, the other partitions'
// are delivered, and the loop retries the failed ones in Seq order before
// starting anything new. Every message arrives, in per-profile order, and
// each profile's messages are acknowledged in Seq order.
func TestKafkaPipelinedPartitionFaults(t *testing.T) {
	b := startBroker(t)
	d := openKafka(t, b.Addr(), map[string]dsl.Setting{"timeout": {Text: "1s"}}, nil)
	defer d.Close()
	if _, ok := d.(sinks.Pipeliner); !ok {
		t.Fatalf("the Kafka sink without transactions is a %T, not a Pipeliner", d)
	}
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 150, PerProfile: 8, Audiences: []string{"a", "b"}})...)
	o := sinktest.FastOptions()
	o.BatchSize = 20
	o.InFlight = 200
	o.MaxRetries = 50
	h := &faultHook{every: 5, fault: func() {
		b.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: topic, Partitions: []int32{1}, Err: kerr.UnknownServerError})
	}}
	o.Hooks = []sinks.Hook{h}
	var st sinks.Stats
	for call := 0; ob.Len("events") > 0; call++ {
		if call == 3 {
			t.Fatalf("%d messages pending after %d calls", ob.Len("events"), call)
		}
		s, err := sinks.Deliver(context.Background(), ob, "events", d, o)
		if err != nil {
			t.Logf("Deliver: %v", err)
		}
		st.Delivered += s.Delivered
		st.Retries += s.Retries
		st.DeadLettered += s.DeadLettered
	}
	if st.Delivered != len(msgs) || st.Retries == 0 || st.DeadLettered != 0 {
		t.Fatalf("delivered %d of %d, %d dead-lettered, %d retries", st.Delivered, len(msgs), st.DeadLettered, st.Retries)
	}
	recs := sinktest.ReadTopic(t, b.Addr(), topic, false)
	dups := sinktest.CheckReceived(t, msgs, messageIDs(recs), msgs)
	// A crash at any point re-sends and skips nothing only if each
	// profile's acknowledged messages always are a prefix of its messages.
	next := map[string]int{} // profile → index of its next message
	byProfile := map[string][]uint64{}
	for _, m := range msgs {
		byProfile[m.UserID] = append(byProfile[m.UserID], m.Seq)
	}
	for _, m := range ob.Acked("events") {
		want := byProfile[m.UserID][next[m.UserID]]
		if m.Seq != want {
			t.Fatalf("profile %s: seq %d acknowledged before seq %d", m.UserID, m.Seq, want)
		}
		next[m.UserID]++
	}
	t.Logf("%d records for %d messages (%d duplicates), %d retries, %d retried messages (largest retry %d, spanning %d Seqs)",
		len(recs), len(msgs), dups, st.Retries, h.retried, h.largest, h.span)
}

// faultHook injects a fault after every `every` delivered batches and
// records what the loop retried.
type faultHook struct {
	every   int
	fault   func()
	batches int
	retried int
	largest int
	span    uint64
}

func (h *faultHook) OnDelivered(string, []diff.Message) {
	h.batches++
	if h.batches%h.every == 0 {
		h.fault()
	}
}

func (h *faultHook) OnRetried(_ string, msgs []diff.Message, _ int, _ time.Duration, _ error) {
	h.retried += len(msgs)
	h.largest = max(h.largest, len(msgs))
	h.span = max(h.span, msgs[len(msgs)-1].Seq-msgs[0].Seq+1)
}

// outageHook stops the broker after `after` delivered batches and starts it
// again at the first retry the failure causes.
type outageHook struct {
	after       int
	stop, start func()
	batches     int
	stopped     bool
	restarted   atomic.Bool
}

func (h *outageHook) OnDelivered(string, []diff.Message) {
	h.batches++
	if h.batches == h.after && !h.stopped {
		h.stopped = true
		h.stop()
	}
}

func (h *outageHook) OnRetried(string, []diff.Message, int, time.Duration, error) {
	if h.stopped && !h.restarted.Load() {
		h.restarted.Store(true)
		h.start()
	}
}

// TestKafkaTransactionalCrashBeforeAck simulates a crash between the commit
// and the outbox acknowledgement: the next process acknowledges the
// committed batch from the progress topic instead of producing it again, so
// read_committed consumers see every event exactly once.
func TestKafkaTransactionalCrashBeforeAck(t *testing.T) {
	b := startBroker(t)
	txn := map[string]dsl.Setting{"transactional": {Text: "true"}}
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 10, PerProfile: 4})...)
	o := sinktest.FastOptions()
	o.BatchSize = 15

	d1 := openKafka(t, b.Addr(), txn, nil)
	ob.FailAck(nil, errors.New("killed")) // the first batch is acked, the second commit's ack is lost
	st, err := sinks.Deliver(context.Background(), ob, "events", d1, o)
	if err == nil || st.Delivered != 15 {
		t.Fatalf("first run = %+v, %v; want 15 delivered then the ack failure", st, err)
	}
	d1.Close() // the process dies

	d2 := openKafka(t, b.Addr(), txn, nil)
	defer d2.Close()
	st, err = sinks.Deliver(context.Background(), ob, "events", d2, o)
	if err != nil {
		t.Fatal(err)
	}
	if st.Recovered != 15 || st.Delivered != len(msgs)-30 {
		t.Fatalf("second run = %+v; want 15 recovered from the progress topic and %d delivered", st, len(msgs)-30)
	}
	recs := sinktest.ReadTopic(t, b.Addr(), topic, true)
	if dups := sinktest.CheckReceived(t, msgs, messageIDs(recs), msgs); dups != 0 || len(recs) != len(msgs) {
		t.Fatalf("%d records, %d duplicates; want exactly %d", len(recs), dups, len(msgs))
	}
	// The progress record names the last message.
	prog := sinktest.ReadTopic(t, b.Addr(), sinks.DefaultProgressTopic, true)
	last := prog[len(prog)-1]
	if string(last.Key) != "events" || !strings.Contains(string(last.Value), fmt.Sprintf(`"seq":%d`, msgs[len(msgs)-1].Seq)) {
		t.Fatalf("last progress record %s = %s", last.Key, last.Value)
	}
}

// TestKafkaTransactionalOutboxReset: a progress record whose message is not
// in the outbox (the state directory was recreated, Seqs start again) must
// not make the loop skip new messages.
func TestKafkaTransactionalOutboxReset(t *testing.T) {
	b := startBroker(t)
	txn := map[string]dsl.Setting{"transactional": {Text: "true"}}
	o := sinktest.FastOptions()

	ob1 := sinktest.NewOutbox()
	first := ob1.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 5, PerProfile: 2})...)
	d := openKafka(t, b.Addr(), txn, nil)
	if _, err := sinks.Deliver(context.Background(), ob1, "events", d, o); err != nil {
		t.Fatal(err)
	}
	d.Close()

	ob2 := sinktest.NewOutbox() // same Seqs 1…10, different messages
	second := ob2.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 5, PerProfile: 2, Audiences: []string{"other"}})...)
	d = openKafka(t, b.Addr(), txn, nil)
	defer d.Close()
	st, err := sinks.Deliver(context.Background(), ob2, "events", d, o)
	if err != nil || st.Recovered != 0 || st.Delivered != len(second) {
		t.Fatalf("Deliver = %+v, %v; want all %d produced, none skipped", st, err, len(second))
	}
	ids := messageIDs(sinktest.ReadTopic(t, b.Addr(), topic, true))
	sinktest.CheckReceived(t, first, only(ids, first), first)
	sinktest.CheckReceived(t, second, only(ids, second), second)
}

// TestKafkaTransactionalAmbiguousCommit makes the broker apply a commit but
// answer REQUEST_TIMED_OUT: whichever way the client resolves it, a
// read_committed consumer sees every event exactly once.
func TestKafkaTransactionalAmbiguousCommit(t *testing.T) {
	b := startBroker(t)
	d := openKafka(t, b.Addr(), map[string]dsl.Setting{"transactional": {Text: "true"}}, nil)
	defer d.Close()
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 8, PerProfile: 3})...)
	h := b.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.EndTxn}, Err: kerr.RequestTimedOut, Count: 1})
	o := sinktest.FastOptions()
	o.BatchSize = 10
	var total int
	for call := 0; ob.Len("events") > 0 && call < 3; call++ {
		st, err := sinks.Deliver(context.Background(), ob, "events", d, o)
		if err != nil {
			t.Logf("Deliver: %v", err)
		}
		total += st.Delivered + st.Recovered
	}
	if h.Hits() != 1 {
		t.Fatalf("fault hit %d times", h.Hits())
	}
	recs := sinktest.ReadTopic(t, b.Addr(), topic, true)
	if dups := sinktest.CheckReceived(t, msgs, messageIDs(recs), msgs); dups != 0 || total != len(msgs) {
		t.Fatalf("%d duplicates, %d delivered of %d", dups, total, len(msgs))
	}
}

// TestKafkaTransactionalAbortInvisible: a failed transaction is aborted and
// retried; read_committed consumers never see the aborted attempt.
func TestKafkaTransactionalAbortInvisible(t *testing.T) {
	b := startBroker(t)
	d := openKafka(t, b.Addr(), map[string]dsl.Setting{"transactional": {Text: "true"}}, nil)
	defer d.Close()
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 6, PerProfile: 3})...)
	// The progress record's produce fails: its batch's records, already
	// written, belong to an aborted transaction.
	b.Cluster().Fault(kfake.Fault{Keys: []kmsg.Key{kmsg.Produce}, Topic: sinks.DefaultProgressTopic, Err: kerr.UnknownServerError, Count: 1})
	st, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions())
	if err != nil || st.Retries == 0 || st.Delivered != len(msgs) {
		t.Fatalf("Deliver = %+v, %v", st, err)
	}
	committed := sinktest.ReadTopic(t, b.Addr(), topic, true)
	if dups := sinktest.CheckReceived(t, msgs, messageIDs(committed), msgs); dups != 0 {
		t.Fatalf("%d duplicates in read_committed", dups)
	}
}

func TestKafkaSASLAndTLS(t *testing.T) {
	dir := t.TempDir()
	caFile, serverTLS := testCA(t, dir)
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"} {
		t.Run(mech, func(t *testing.T) {
			b := startBroker(t, kfake.EnableSASL(), kfake.Superuser(mech, "linkaud", "pa55-word"), kfake.TLS(serverTLS))
			d := openKafka(t, b.Addr(), map[string]dsl.Setting{
				"sasl_mechanism": {Text: mech},
				"sasl_user":      {Text: "linkaud"},
				"sasl_password":  {Secret: dsl.Secret{Env: "KAFKA_PASSWORD"}},
				"tls_ca":         {Text: caFile},
			}, map[string]string{"KAFKA_PASSWORD": "pa55-word"})
			defer d.Close()
			ob := sinktest.NewOutbox()
			msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 2, PerProfile: 2})...)
			if st, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions()); err != nil || st.Delivered != len(msgs) {
				t.Fatalf("Deliver = %+v, %v", st, err)
			}
		})
	}
	t.Run("wrong password fails and is not leaked", func(t *testing.T) {
		b := startBroker(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-256", "linkaud", "right"), kfake.TLS(serverTLS))
		d := openKafka(t, b.Addr(), map[string]dsl.Setting{
			"sasl_mechanism": {Text: "SCRAM-SHA-256"},
			"sasl_user":      {Text: "linkaud"},
			"sasl_password":  {Secret: dsl.Secret{Env: "KAFKA_PASSWORD"}},
			"tls_ca":         {Text: caFile},
			"timeout":        {Text: "1s"},
		}, map[string]string{"KAFKA_PASSWORD": "wr0ng-pa55"})
		defer d.Close()
		ob := sinktest.NewOutbox()
		ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 1, PerProfile: 1})...)
		o := sinktest.FastOptions()
		o.MaxRetries = 1
		_, err := sinks.Deliver(context.Background(), ob, "events", d, o)
		if !errors.Is(err, sinks.ErrRetriesExhausted) || ob.Len("events") != 1 {
			t.Fatalf("Deliver = %v; want retries exhausted and the message kept", err)
		}
		if strings.Contains(err.Error(), "wr0ng-pa55") {
			t.Fatalf("error leaks the password: %v", err)
		}
	})
}

// testCA writes a CA certificate to dir and returns its path and a server
// TLS config with a certificate for 127.0.0.1 signed by it.
func testCA(t testing.TB, dir string) (string, *tls.Config) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "linkaud test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	srvKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, caCert, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}}}
}

// only keeps the ids of msgs.
func only(ids []string, msgs []diff.Message) []string {
	keep := map[string]bool{}
	for _, m := range msgs {
		keep[m.ID] = true
	}
	var out []string
	for _, id := range ids {
		if keep[id] {
			out = append(out, id)
		}
	}
	return out
}

// TestKafkaAuthorizationHalts: the broker refusing the principal's rights
// on the topic halts the destination — nothing dead-lettered, everything
// left — and delivery resumes once the ACL is fixed.
func TestKafkaAuthorizationHalts(t *testing.T) {
	b := startBroker(t)
	d := openKafka(t, b.Addr(), map[string]dsl.Setting{"timeout": {Text: "1s"}}, nil)
	defer d.Close()
	ob := sinktest.NewOutbox()
	msgs := ob.Append("events", sinktest.Messages(sinktest.GenOptions{Profiles: 10, PerProfile: 3})...)
	fail(b, 1, kerr.TopicAuthorizationFailed)
	st, err := sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions())
	if !errors.Is(err, sinks.ErrHalted) || st.DeadLettered != 0 || !strings.Contains(err.Error(), "ACLs") {
		t.Fatalf("Deliver with the topic refused: %+v, %v", st, err)
	}
	st, err = sinks.Deliver(context.Background(), ob, "events", d, sinktest.FastOptions())
	if err != nil || ob.Len("events") != 0 || len(ob.DeadLetters("events")) != 0 {
		t.Fatalf("after the ACL is fixed: %+v, %v", st, err)
	}
	sinktest.CheckReceived(t, msgs, messageIDs(sinktest.ReadTopic(t, b.Addr(), topic, false)), msgs)
}
