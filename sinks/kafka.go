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
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
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
			{Name: "create_topic", Kind: Text, Doc: "true: create the topic when it does not exist (default false: a missing topic halts the destination, so a typo creates nothing)"},
			{Name: "partitions", Kind: Text, Doc: "partitions of a topic create_topic makes (default the broker's num.partitions)"},
			{Name: "replication_factor", Kind: Text, Doc: "replication factor of a topic create_topic makes (default the broker's default.replication.factor)"},
		},
		Open: openKafka,
	})
}

// kafka produces each message as one record: key the profile key (so a
// profile's records share a partition and keep their order), value the
// event JSON, headers event, audience and message_id. The producer is
// idempotent with acks=all; Send returns once the broker acked every record.
// Without transactions the sink is a Pipeliner (kafkaPipelined).
type kafka struct {
	name     string
	topic    string
	opts     []kgo.Opt // connection options
	prodOpts []kgo.Opt // opts plus the transactional id, if any
	timeout  time.Duration
	redact   *Redactor
	log      *slog.Logger

	// The topic is looked up before the first delivery (and again after
	// the broker said it is gone): missing, it is created only with
	// create_topic, else the destination halts. Producing never creates
	// it (no AllowAutoTopicCreation), so a misspelt topic creates nothing.
	createTopic       bool
	partitions        int32
	replicationFactor int16
	topicReady        atomic.Bool

	mu sync.Mutex // guards cl
	cl *kgo.Client
	// reset asks for a new client before the next delivery: after
	// abandoned records, an unconfirmed commit or a fatal producer error.
	reset bool

	// unwaited counts produce calls whose wait has not returned. When it
	// is zero — the caller has seen every outcome, failures included —
	// the next produce starts a new generation: a context its records
	// are produced under, cancelled with errEarlierFailed by the first
	// record that fails, so that no record produced after that can be
	// delivered (see produce). Only the delivery goroutine touches these.
	unwaited  int
	gen       context.Context
	genCancel context.CancelCauseFunc
}

// kafkaPipelined is the Kafka sink without transactions, as a Pipeliner:
// franz-go keeps a partition's records in the order they were produced,
// across batches, and fails every record still buffered for a partition
// when one fails; produce closes the remaining gap (records produced after
// a failure but before its promise ran). A transactional sink cannot
// pipeline: a producer has one transaction open at a time.
type kafkaPipelined struct{ *kafka }

var (
	_ Pipeliner = kafkaPipelined{}
	_ Resumer   = (*kafkaTxn)(nil)
)

// Kafka delivery sizes. The producer's buffer holds a full window plus one
// batch, so Produce never blocks on buffer space.
const (
	kafkaMaxBatch    = 10_000
	kafkaInFlight    = 30_000
	kafkaMaxBuffered = kafkaInFlight + kafkaMaxBatch
)

// errEarlierFailed fails the records of a generation produced, or about to
// be, after one of its records failed: delivering them would put a
// profile's later event before the retry of an earlier one.
var errEarlierFailed = errors.New("not sent: an earlier record of this delivery failed, sent again after it")

// errClientReset fails records not produced because the client is to be
// replaced while earlier records are still in flight.
var errClientReset = errors.New("not sent: the Kafka client is being replaced after abandoned records")

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

		createTopic:       c.Bool("create_topic", false),
		partitions:        int32(c.Int("partitions", -1, 1, 100000)),
		replicationFactor: int16(c.Int("replication_factor", -1, 1, 32767)),
	}
	if !k.createTopic && (c.Has("partitions") || c.Has("replication_factor")) {
		c.Errorf("create_topic", "partitions and replication_factor apply to a topic create_topic true makes")
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
		kgo.MaxBufferedRecords(kafkaMaxBuffered),
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
		return kafkaPipelined{k}, nil
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

// recArena holds the records of one produce call: the records, their
// headers, and the bytes of keys and header values, in three allocations
// rather than five per record. Arenas are reused once the producer is done
// with them (every promise ran).
type recArena struct {
	recs []kgo.Record
	hdrs []kgo.RecordHeader
	buf  []byte
}

var arenas = sync.Pool{New: func() any { return new(recArena) }}

// records returns an arena with the Kafka records of batch, shaped as
// Record makes them, and room for extra more records.
func (k *kafka) records(batch []diff.Message, extra int) *recArena {
	size := 0
	for i := range batch {
		m := &batch[i]
		size += len(m.UserID) + len(m.Event) + len(m.Audience) + len(m.ID)
	}
	a := arenas.Get().(*recArena)
	if cap(a.buf) < size {
		a.buf = make([]byte, 0, size)
	}
	if cap(a.hdrs) < 3*len(batch) {
		a.hdrs = make([]kgo.RecordHeader, 3*len(batch))
	}
	if cap(a.recs) < len(batch)+extra {
		a.recs = make([]kgo.Record, 0, len(batch)+extra)
	}
	buf := a.buf[:0]
	bytesOf := func(s string) []byte {
		start := len(buf)
		buf = append(buf, s...)
		return buf[start:len(buf):len(buf)]
	}
	hdrs := a.hdrs[:3*len(batch)]
	recs := a.recs[:len(batch)]
	for i := range batch {
		m := &batch[i]
		h := hdrs[3*i : 3*i+3 : 3*i+3]
		h[0] = kgo.RecordHeader{Key: HeaderEvent, Value: bytesOf(m.Event)}
		h[1] = kgo.RecordHeader{Key: HeaderAudience, Value: bytesOf(m.Audience)}
		h[2] = kgo.RecordHeader{Key: HeaderMessageID, Value: bytesOf(m.ID)}
		recs[i] = kgo.Record{Topic: k.topic, Key: bytesOf(m.UserID), Value: m.Payload, Headers: h}
	}
	a.recs = recs
	return a
}

// release returns a to the pool once nothing refers to its records.
func (a *recArena) release() {
	clear(a.recs) // drop the payloads
	a.recs = a.recs[:0]
	arenas.Put(a)
}

// produce hands recs to the producer and returns a function that waits for
// every ack and returns nil, or one error per record (recs[i]'s failure).
//
// Order: a failed record fails the records after it in its partition too
// (franz-go keeps partitions gapless), so a profile's later records never
// land after an earlier one failed — provided they were buffered when it
// failed. A record produced after the failure, before its promise ran,
// would start the partition afresh: so records are produced under the
// generation's context, which the first failure cancels (franz-go fails
// the partition's unsent records whose context ended), and once it is
// cancelled the rest of recs is failed unsent.
//
// An idempotent producer never gives up on a record whose request may have
// reached a broker that then vanished: it would wait for that broker
// forever. The wait ends at most twice the delivery timeout after produce
// (or when ctx ends), then abandons the records — they may or may not have
// been written, so they are reported as retryable and redelivered with the
// same messageId — and replaces the client, whose sequence numbers are no
// longer trustworthy.
func (k *kafka) produce(ctx context.Context, arena *recArena) (wait func() []error) {
	recs := arena.recs
	failAll := func(err error) func() []error {
		return func() []error {
			defer arena.release()
			errs := make([]error, len(recs))
			for i := range errs {
				errs[i] = err
			}
			return errs
		}
	}
	if k.reset && k.unwaited > 0 {
		// Replacing the client fails what it still holds: only once the
		// caller has seen every earlier outcome.
		return failAll(errClientReset)
	}
	if err := k.prepareClient(); err != nil {
		return failAll(err)
	}
	if k.unwaited == 0 {
		if k.genCancel != nil {
			k.genCancel(nil)
		}
		k.gen, k.genCancel = context.WithCancelCause(ctx)
	}
	k.unwaited++
	f := &kafkaFlight{
		k:        k,
		cl:       k.client(),
		ctx:      ctx,
		gen:      k.gen,
		cancel:   k.genCancel,
		arena:    arena,
		recs:     recs,
		deadline: time.Now().Add(2 * k.timeout),
		done:     make(chan struct{}),
	}
	f.left.Store(int64(len(recs)))
	for i := range recs {
		if cause := context.Cause(f.gen); cause != nil {
			f.unsent(recs[i:], cause)
			break
		}
		f.cl.Produce(f.gen, &recs[i], f.promise)
	}
	if len(recs) == 0 {
		close(f.done)
	}
	return f.wait
}

// kafkaFlight is one produce call's records on their way to the brokers.
type kafkaFlight struct {
	k        *kafka
	cl       *kgo.Client
	ctx      context.Context // the caller's: abandon when it ends
	gen      context.Context // the records': cancelled by a failure
	cancel   context.CancelCauseFunc
	arena    *recArena
	recs     []kgo.Record
	deadline time.Time
	left     atomic.Int64 // records whose outcome is unknown
	done     chan struct{}

	mu     sync.Mutex
	failed map[*kgo.Record]error
}

// promise is every record's promise; franz-go calls promises serially.
func (f *kafkaFlight) promise(r *kgo.Record, err error) {
	if err != nil {
		f.cancel(errEarlierFailed)
		f.fail(r, err)
	}
	f.finish(1)
}

// unsent fails recs without producing them.
func (f *kafkaFlight) unsent(recs []kgo.Record, err error) {
	for i := range recs {
		f.fail(&recs[i], err)
	}
	f.finish(int64(len(recs)))
}

func (f *kafkaFlight) fail(r *kgo.Record, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failed == nil {
		f.failed = map[*kgo.Record]error{}
	}
	f.failed[r] = err
}

func (f *kafkaFlight) finish(n int64) {
	if f.left.Add(-n) == 0 {
		close(f.done)
	}
}

func (f *kafkaFlight) wait() []error {
	defer func() {
		f.k.unwaited--
		f.arena.release()
	}()
	timer := time.NewTimer(time.Until(f.deadline))
	defer timer.Stop()
	var why error
	select {
	case <-f.done:
	case <-f.ctx.Done():
		why = f.ctx.Err()
	case <-timer.C:
		why = fmt.Errorf("no acknowledgement from the brokers within %s", 2*f.k.timeout)
	}
	if why != nil {
		f.cl.UnsafeAbortBufferedRecords()
		<-f.done
		f.k.reset = true
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.failed) == 0 {
		return nil
	}
	errs := make([]error, len(f.recs))
	for i := range f.recs {
		err, ok := f.failed[&f.recs[i]]
		if !ok {
			continue
		}
		if errors.Is(err, context.Canceled) && context.Cause(f.gen) == errEarlierFailed && f.ctx.Err() == nil {
			err = errEarlierFailed
		}
		if why != nil {
			err = fmt.Errorf("%w (records abandoned: %v)", why, err)
		}
		errs[i] = err
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

// MaxBatch keeps a batch within the producer's buffer (kafkaMaxBuffered).
func (k *kafka) MaxBatch() int { return kafkaMaxBatch }

func (k *kafka) Send(ctx context.Context, batch []diff.Message) error {
	return k.start(ctx, batch)()
}

// start produces batch and returns a function that waits for the acks and
// returns Send's result.
func (k *kafka) start(ctx context.Context, batch []diff.Message) func() error {
	if err := k.ensureTopic(ctx); err != nil {
		return func() error { return err }
	}
	wait := k.produce(ctx, k.records(batch, 0))
	return func() error {
		errs := wait()
		if errs == nil {
			return nil
		}
		be := NewBatchError(len(batch))
		for i, err := range errs {
			if err != nil {
				be.Fail(i, k.recordError(err))
			}
		}
		return be.Err()
	}
}

// Start implements Pipeliner.
func (k kafkaPipelined) Start(ctx context.Context, batch []diff.Message) func() error {
	return k.start(ctx, batch)
}

// InFlight implements Pipeliner.
func (k kafkaPipelined) InFlight() int { return kafkaInFlight }

// recordError classifies a record's failure: the broker refusing the record
// itself is permanent; everything else (brokers down, leadership moves,
// timeouts, authorization being fixed) is worth retrying.
func (k *kafka) recordError(err error) error {
	if errors.Is(err, kerr.UnknownTopicOrPartition) {
		// Deleted since it was looked up: look again before the next
		// delivery (and halt there if it is still missing).
		k.topicReady.Store(false)
		return k.missingTopic()
	}
	if h := kafkaAuthHalt(err); h != nil {
		return h
	}
	err = k.redact.Error(fmt.Errorf("kafka: %w", err))
	for _, p := range []error{kerr.MessageTooLarge, kerr.InvalidRecord, kerr.CorruptMessage, kerr.RecordListTooLarge, kerr.InvalidTimestamp} {
		if errors.Is(err, p) {
			return Permanent(err)
		}
	}
	return err
}

// ensureTopic looks the topic up once: present, delivery goes ahead;
// missing, it is created with create_topic true, else the destination halts
// with a message naming the topic. A failed lookup (brokers down) is
// retryable.
func (k *kafka) ensureTopic(ctx context.Context) error {
	if k.topicReady.Load() {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	// A metadata request of its own, not kadm.ListTopics: that may answer
	// from the client's metadata cache, which would keep a topic created
	// since looking missing.
	req := kmsg.NewPtrMetadataRequest()
	rt := kmsg.NewMetadataRequestTopic()
	rt.Topic = kmsg.StringPtr(k.topic)
	req.Topics = append(req.Topics, rt)
	resp, err := req.RequestWith(ctx, k.client())
	if err != nil {
		if h := kafkaAuthHalt(err); h != nil {
			return k.redact.Error(h)
		}
		return k.redact.Error(fmt.Errorf("kafka: looking up topic %s: %w", k.topic, err))
	}
	for _, t := range resp.Topics {
		if t.Topic == nil || *t.Topic != k.topic {
			continue
		}
		switch terr := kerr.ErrorForCode(t.ErrorCode); {
		case terr == nil:
			k.topicReady.Store(true)
			return nil
		case errors.Is(terr, kerr.TopicAuthorizationFailed):
			return Halted(fmt.Sprintf("kafka: not authorized to describe topic %s", k.topic), "grant the principal access to the topic", terr)
		case !errors.Is(terr, kerr.UnknownTopicOrPartition):
			return k.redact.Error(fmt.Errorf("kafka: looking up topic %s: %w", k.topic, terr))
		}
	}
	adm := kadm.NewClient(k.client())
	if !k.createTopic {
		return k.missingTopic()
	}
	created, err := adm.CreateTopic(ctx, k.partitions, k.replicationFactor, nil, k.topic)
	if err == nil {
		err = created.Err
	}
	if err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		if errors.Is(err, kerr.TopicAuthorizationFailed) || errors.Is(err, kerr.ClusterAuthorizationFailed) || errors.Is(err, kerr.InvalidReplicationFactor) || errors.Is(err, kerr.InvalidPartitions) {
			return Halted(fmt.Sprintf("kafka: creating topic %s: %v", k.topic, err), "create the topic yourself, or fix partitions and replication_factor", err)
		}
		return k.redact.Error(fmt.Errorf("kafka: creating topic %s: %w", k.topic, err))
	}
	k.log.Info("created the Kafka topic", "topic", k.topic, "partitions", k.partitions, "replication_factor", k.replicationFactor)
	k.topicReady.Store(true)
	return nil
}

// kafkaAuthHalt is a Halted error for the broker refusing the credential
// or the principal's rights (SASL authentication, topic, cluster or
// transactional id authorization), nil for any other error.
func kafkaAuthHalt(err error) error {
	for _, ae := range []error{kerr.SaslAuthenticationFailed, kerr.TopicAuthorizationFailed, kerr.ClusterAuthorizationFailed, kerr.TransactionalIDAuthorizationFailed} {
		if errors.Is(err, ae) {
			return Halted("kafka: the broker refused the credential or the principal's rights: "+ae.Error(),
				"check sasl_user, sasl_password and the principal's ACLs", err)
		}
	}
	return nil
}

func (k *kafka) missingTopic() error {
	return Halted(fmt.Sprintf("kafka: topic %q does not exist", k.topic),
		"create it, correct the topic setting, or set create_topic true", kerr.UnknownTopicOrPartition)
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
	if err := k.ensureTopic(ctx); err != nil {
		return err
	}
	cl := k.client()
	if err := cl.BeginTransaction(); err != nil {
		k.reset = true
		return k.redact.Error(fmt.Errorf("kafka: begin transaction: %w", err))
	}
	last := batch[len(batch)-1]
	marker, _ := json.Marshal(kafkaProgress{Seq: last.Seq, ID: last.ID, Topic: k.topic})
	arena := k.records(batch, 1)
	arena.recs = append(arena.recs, kgo.Record{Topic: k.progressTopic, Key: []byte(k.name), Value: marker})
	errs := k.produce(ctx, arena)()

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
