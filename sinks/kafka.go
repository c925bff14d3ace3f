package sinks

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/linkaud/linkaud/diff"
)

// Kafka record headers.
const (
	HeaderEvent     = "event"
	HeaderAudience  = "audience"
	HeaderMessageID = "message_id"
)

// DefaultProgressTopic holds the transactional sink's progress records.
const DefaultProgressTopic = "linkaud-progress"

func init() {
	Register(Type{
		Name: "kafka",
		Keys: []Key{
			{Name: "brokers", Kind: TextOrSecret, Required: true, Doc: "comma-separated host:port seed brokers"},
			{Name: "topic", Kind: Text, Required: true, Doc: "topic the events are produced to"},
			{Name: "client_id", Kind: Text, Doc: `Kafka client id (default "linkaud")`},
			{Name: "sasl_mechanism", Kind: Text, Doc: "PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"},
			{Name: "sasl_user", Kind: TextOrSecret, Doc: "SASL user name"},
			{Name: "sasl_password", Kind: Secret, Doc: "SASL password"},
			{Name: "tls", Kind: Text, Doc: "true to connect with TLS (implied by the other tls_ keys)"},
			{Name: "tls_ca", Kind: Text, Doc: "PEM file of CAs to trust instead of the system's"},
			{Name: "tls_cert", Kind: Text, Doc: "PEM client certificate (with tls_key)"},
			{Name: "tls_key", Kind: Text, Doc: "PEM client key (with tls_cert)"},
			{Name: "tls_server_name", Kind: Text, Doc: "server name to verify, if not the broker host"},
			{Name: "transactional", Kind: Text, Doc: "true: each batch is one transaction with a progress record (exactly once for read_committed consumers)"},
			{Name: "transactional_id", Kind: Text, Doc: `transactional.id (default "linkaud-<destination>")`},
			{Name: "progress_topic", Kind: Text, Doc: `compacted topic of progress records (default "linkaud-progress")`},
			{Name: "timeout", Kind: Text, Doc: "how long a record may wait for the broker's ack (default 30s)"},
			{Name: "compression", Kind: Text, Doc: "none, gzip, snappy, lz4 or zstd (default snappy)"},
		},
		Open: openKafka,
	})
}

// kafka produces each message as one record: key the profile key (so a
// profile's records share a partition and keep their order), value the
// event JSON, headers event, audience and message_id. The producer is
// idempotent with acks=all; Send returns once the broker acked every record.
type kafka struct {
	name     string
	topic    string
	opts     []kgo.Opt // connection options
	prodOpts []kgo.Opt // opts plus the transactional id, if any
	timeout  time.Duration
	redact   *Redactor
	log      *slog.Logger

	mu sync.Mutex // guards cl
	cl *kgo.Client
	// reset asks for a new client before the next delivery: after
	// abandoned records, an unconfirmed commit or a fatal producer error.
	reset bool
}

// kafkaTxn is the transactional variant: each Send is one Kafka transaction
// holding the batch's records and a progress record (key: the destination
// name; value: the Seq and ID of the batch's last message) in a compacted
// progress topic, as Materialize's Kafka sink does. After a crash between
// the commit and the outbox acknowledgement, Committed reads the newest
// committed progress record so Deliver acknowledges the batch instead of
// producing it again: read_committed consumers see every event exactly once.
type kafkaTxn struct {
	*kafka
	txnID         string
	progressTopic string
	progressReady bool
}

type kafkaProgress struct {
	Seq   uint64 `json:"seq"`
	ID    string `json:"id"`
	Topic string `json:"topic"`
}

func openKafka(c *Config) (Destination, error) {
	brokers := splitList(c.String("brokers", ""))
	k := &kafka{
		name:    c.Name,
		topic:   c.String("topic", ""),
		timeout: c.Duration("timeout", 30*time.Second),
		redact:  c.Redactor,
		log:     c.Logger,
	}
	if k.timeout < time.Second {
		c.Errorf("timeout", "must be at least 1s")
		k.timeout = time.Second
	}
	if c.Has("brokers") && len(brokers) == 0 {
		c.Errorf("brokers", "no broker given")
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(brokers...),
		kgo.ClientID(c.String("client_id", "linkaud")),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordDeliveryTimeout(k.timeout),
		// Send waits for the acks anyway: lingering would only delay them.
		kgo.ProducerLinger(0),
		kgo.AllowAutoTopicCreation(),
		kgo.WithLogger(kgoLogger{c.Logger}),
	}
	switch comp := c.OneOf("compression", "snappy", "none", "gzip", "snappy", "lz4", "zstd"); comp {
	case "none":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.NoCompression()))
	case "gzip":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.GzipCompression()))
	case "lz4":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	case "zstd":
		opts = append(opts, kgo.ProducerBatchCompression(kgo.ZstdCompression()))
	}
	if mech := c.OneOf("sasl_mechanism", "", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"); mech != "" {
		user, pass := c.String("sasl_user", ""), c.String("sasl_password", "")
		if !c.Has("sasl_user") {
			c.Errorf("sasl_user", "required with sasl_mechanism")
		}
		if !c.Has("sasl_password") {
			c.Errorf("sasl_password", "required with sasl_mechanism")
		}
		switch mech {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: user, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: user, Pass: pass}.AsSha512Mechanism()))
		}
	} else if c.Has("sasl_user") || c.Has("sasl_password") {
		c.Errorf("sasl_mechanism", "required with sasl_user and sasl_password")
	}
	if tc := kafkaTLS(c); tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	transactional := c.Bool("transactional", false)
	txnID := c.String("transactional_id", "linkaud-"+c.Name)
	progressTopic := c.String("progress_topic", DefaultProgressTopic)
	if !transactional && (c.Has("transactional_id") || c.Has("progress_topic")) {
		c.Errorf("transactional", "transactional_id and progress_topic need transactional true")
	}
	if transactional && progressTopic == k.topic {
		c.Errorf("progress_topic", "must differ from topic")
	}
	// k.opts stay without the transactional id: the progress reader is a
	// plain consumer and must not fence the producer.
	k.opts = opts
	k.prodOpts = opts
	if transactional {
		k.prodOpts = append(append([]kgo.Opt{}, opts...), kgo.TransactionalID(txnID))
	}
	cl, err := kgo.NewClient(k.prodOpts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	k.cl = cl
	if !transactional {
		return k, nil
	}
	return &kafkaTxn{kafka: k, txnID: txnID, progressTopic: progressTopic}, nil
}

func kafkaTLS(c *Config) *tls.Config {
	implied := c.Has("tls_ca") || c.Has("tls_cert") || c.Has("tls_key") || c.Has("tls_server_name")
	on := c.Bool("tls", implied)
	if !on {
		if implied {
			c.Errorf("tls", "tls false contradicts the tls_ settings")
		}
		return nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: c.String("tls_server_name", "")}
	if c.Has("tls_ca") {
		pem, err := os.ReadFile(c.Path("tls_ca"))
		if err != nil {
			c.Errorf("tls_ca", "%v", err)
		} else {
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				c.Errorf("tls_ca", "no PEM certificate in %s", c.Path("tls_ca"))
			}
			tc.RootCAs = pool
		}
	}
	if c.Has("tls_cert") != c.Has("tls_key") {
		c.Errorf("tls_cert", "tls_cert and tls_key go together")
	} else if c.Has("tls_cert") {
		cert, err := tls.LoadX509KeyPair(c.Path("tls_cert"), c.Path("tls_key"))
		if err != nil {
			c.Errorf("tls_cert", "%v", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// Record returns the Kafka record of an outbox message.
func Record(topic string, m diff.Message) *kgo.Record {
	return &kgo.Record{
		Topic: topic,
		Key:   []byte(m.UserID),
		Value: m.Payload,
		Headers: []kgo.RecordHeader{
			{Key: HeaderEvent, Value: []byte(m.Event)},
			{Key: HeaderAudience, Value: []byte(m.Audience)},
			{Key: HeaderMessageID, Value: []byte(m.ID)},
		},
	}
}

func (k *kafka) client() *kgo.Client {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.cl
}

// produce sends recs and waits for every ack; errs[i] is recs[i]'s failure.
// A failed record fails the records after it in its partition too (franz-go
// keeps partitions gapless), so a profile's later records never land after
// an earlier one failed.
//
// An idempotent producer never gives up on a record whose request may have
// reached a broker that then vanished: it would wait for that broker
// forever. produce waits at most twice the delivery timeout (or until ctx
// ends), then abandons the records — they may or may not have been written,
// so they are reported as retryable and redelivered with the same
// messageId — and replaces the client, whose sequence numbers are no longer
// trustworthy.
func (k *kafka) produce(ctx context.Context, recs []*kgo.Record) []error {
	if err := k.prepareClient(); err != nil {
		errs := make([]error, len(recs))
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	cl := k.client()
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	wg.Add(len(recs))
	for i, r := range recs {
		cl.Produce(ctx, r, func(_ *kgo.Record, err error) {
			errs[i] = err
			wg.Done()
		})
	}
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	timer := time.NewTimer(2 * k.timeout)
	defer timer.Stop()
	var why error
	select {
	case <-done:
		return errs
	case <-ctx.Done():
		why = ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("no acknowledgement from the brokers within %s", 2*k.timeout)
	}
	cl.UnsafeAbortBufferedRecords()
	<-done
	k.reset = true
	for i, err := range errs {
		if err != nil {
			errs[i] = fmt.Errorf("%w (records abandoned: %v)", why, err)
		}
	}
	return errs
}

// prepareClient replaces the client when the last delivery ended badly: a
// fresh producer ID fences whatever the old one left open.
func (k *kafka) prepareClient() error {
	if !k.reset {
		return nil
	}
	cl, err := kgo.NewClient(k.prodOpts...)
	if err != nil {
		return fmt.Errorf("kafka: %w", err)
	}
	k.mu.Lock()
	old := k.cl
	k.cl = cl
	k.mu.Unlock()
	old.Close()
	k.reset = false
	return nil
}

// MaxBatch keeps a batch within the client's default buffer (10000 records),
// so that producing never blocks on buffer space.
func (k *kafka) MaxBatch() int { return 10000 }

func (k *kafka) Send(ctx context.Context, batch []diff.Message) error {
	recs := make([]*kgo.Record, len(batch))
	for i, m := range batch {
		recs[i] = Record(k.topic, m)
	}
	be := NewBatchError(len(batch))
	for i, err := range k.produce(ctx, recs) {
		if err != nil {
			be.Fail(i, k.recordError(err))
		}
	}
	return be.Err()
}

// recordError classifies a record's failure: the broker refusing the record
// itself is permanent; everything else (brokers down, leadership moves,
// timeouts, authorization being fixed) is worth retrying.
func (k *kafka) recordError(err error) error {
	err = k.redact.Error(fmt.Errorf("kafka: %w", err))
	for _, p := range []error{kerr.MessageTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.RecordListTooLarge, kerr.InvalidTimestamp} {
		if errors.Is(err, p) {
			return Permanent(err)
		}
	}
	return err
}

func (k *kafka) Close() error {
	k.client().Close()
	return nil
}

// Send produces the batch and its progress record in one transaction.
func (k *kafkaTxn) Send(ctx context.Context, batch []diff.Message) error {
	if err := k.prepare(ctx); err != nil {
		return err
	}
	cl := k.client()
	if err := cl.BeginTransaction(); err != nil {
		k.reset = true
		return k.redact.Error(fmt.Errorf("kafka: begin transaction: %w", err))
	}
	last := batch[len(batch)-1]
	marker, _ := json.Marshal(kafkaProgress{Seq: last.Seq, ID: last.ID, Topic: k.topic})
	recs := make([]*kgo.Record, len(batch), len(batch)+1)
	for i, m := range batch {
		recs[i] = Record(k.topic, m)
	}
	recs = append(recs, &kgo.Record{Topic: k.progressTopic, Key: []byte(k.name), Value: marker})
	errs := k.produce(ctx, recs)

	be := NewBatchError(len(batch))
	var failed error
	for i, err := range errs {
		if err == nil {
			continue
		}
		if failed == nil {
			failed = err
		}
		if i < len(batch) {
			be.Fail(i, k.recordError(err))
		}
	}
	if failed != nil {
		// Nothing of an aborted transaction is visible: every message is
		// to be sent again, except those the broker refused for good.
		abortErr := k.abort(ctx)
		cause := k.redact.Error(fmt.Errorf("kafka: transaction aborted: %w", errors.Join(failed, abortErr)))
		for i := range batch {
			if Classify(be.Errs[i]) != Reject {
				be.Errs[i] = cause
			}
		}
		return be
	}
	if err := cl.EndTransaction(ctx, kgo.TryCommit); err != nil {
		// The commit may or may not have happened. Abort (which, after an
		// unconfirmed commit, fences with a new epoch); Deliver then asks
		// Committed, which reads the progress topic to find out.
		_ = cl.EndTransaction(ctx, kgo.TryAbort)
		k.reset = true
		return k.redact.Error(fmt.Errorf("kafka: commit: %w", err))
	}
	return nil
}

func (k *kafkaTxn) abort(ctx context.Context) error {
	cl := k.client()
	if err := cl.AbortBufferedRecords(ctx); err != nil {
		k.reset = true
		return err
	}
	if err := cl.EndTransaction(ctx, kgo.TryAbort); err != nil {
		k.reset = true
		return err
	}
	return nil
}

// prepare replaces the client if needed and makes sure the progress topic
// exists.
func (k *kafkaTxn) prepare(ctx context.Context) error {
	if err := k.prepareClient(); err != nil {
		return err
	}
	if k.progressReady {
		return nil
	}
	adm := kadm.NewClient(k.client())
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	topics, err := adm.ListTopics(ctx, k.progressTopic)
	if err != nil {
		return k.redact.Error(fmt.Errorf("kafka: looking up progress topic %s: %w", k.progressTopic, err))
	}
	if !topics.Has(k.progressTopic) {
		_, err := adm.CreateTopic(ctx, 1, -1, map[string]*string{"cleanup.policy": kadm.StringPtr("compact")}, k.progressTopic)
		if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
			return k.redact.Error(fmt.Errorf("kafka: creating progress topic %s: %w", k.progressTopic, err))
		}
		k.log.Info("created the Kafka progress topic", "topic", k.progressTopic)
	}
	k.progressReady = true
	return nil
}

// Committed implements Resumer: the newest progress record of this
// destination committed in the progress topic. It first loads the producer
// ID, which makes the broker abort a transaction a crashed predecessor left
// open (or finish one it was committing), so the answer is final.
func (k *kafkaTxn) Committed(ctx context.Context) (uint64, string, bool, error) {
	if err := k.prepare(ctx); err != nil {
		return 0, "", false, err
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	if _, _, err := k.client().ProducerID(ctx); err != nil {
		k.reset = true
		return 0, "", false, k.redact.Error(fmt.Errorf("kafka: initializing the transactional producer: %w", err))
	}
	p, ok, err := k.readProgress(ctx)
	if err != nil || !ok {
		return 0, "", false, err
	}
	return p.Seq, p.ID, true, nil
}

// readProgress reads the progress topic up to its last stable offset with
// read_committed isolation and returns this destination's newest record.
func (k *kafkaTxn) readProgress(ctx context.Context) (kafkaProgress, bool, error) {
	fail := func(err error) (kafkaProgress, bool, error) {
		return kafkaProgress{}, false, k.redact.Error(fmt.Errorf("kafka: reading progress topic %s: %w", k.progressTopic, err))
	}
	adm := kadm.NewClient(k.client())
	starts, err := adm.ListStartOffsets(ctx, k.progressTopic)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fail(err)
	}
	ends, err := adm.ListCommittedOffsets(ctx, k.progressTopic)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fail(err)
	}
	want := map[int32]int64{} // partition → last offset to read
	from := map[int32]kgo.Offset{}
	ends.Each(func(o kadm.ListedOffset) {
		s, _ := starts.Lookup(o.Topic, o.Partition)
		if o.Offset > s.Offset {
			want[o.Partition] = o.Offset - 1
			from[o.Partition] = kgo.NewOffset().At(s.Offset)
		}
	})
	if len(want) == 0 {
		return kafkaProgress{}, false, nil
	}
	// Control records are kept so that reading can stop at the last stable
	// offset even when the tail of the log is transaction markers.
	opts := append(append([]kgo.Opt{}, k.opts...),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{k.progressTopic: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)
	cons, err := kgo.NewClient(opts...)
	if err != nil {
		return fail(err)
	}
	defer cons.Close()
	var (
		best     kafkaProgress
		bestTime time.Time
		found    bool
	)
	for len(want) > 0 {
		fs := cons.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		var ferr error
		fs.EachError(func(_ string, _ int32, err error) { ferr = err })
		if ferr != nil {
			return fail(ferr)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if last, ok := want[r.Partition]; ok && r.Offset >= last {
				delete(want, r.Partition)
			}
			if r.Attrs.IsControl() || string(r.Key) != k.name {
				return
			}
			var p kafkaProgress
			if json.Unmarshal(r.Value, &p) != nil || p.Topic != k.topic {
				return
			}
			if !found || !r.Timestamp.Before(bestTime) {
				best, bestTime, found = p, r.Timestamp, true
			}
		})
	}
	return best, found, nil
}

// kgoLogger forwards franz-go's warnings and errors to slog.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (g kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	g.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}
