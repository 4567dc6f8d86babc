package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/prometheus/client_golang/prometheus"
	kafka "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/compress"
	"github.com/segmentio/kafka-go/sasl"
	msk "github.com/segmentio/kafka-go/sasl/aws_msk_iam_v2"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/auditrail/auditrail/internal/ocsf"
	"github.com/auditrail/auditrail/sinks"
)

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Checker = (*Sink)(nil)
)

// Sink is the Kafka sink.
type Sink struct {
	name  string
	cfg   Config
	w     *kafka.Writer
	tr    *kafka.Transport
	log   *slog.Logger
	sleep func(context.Context, time.Duration) error

	msgs []kafka.Message
	// keys and headers back the messages of the batch being written;
	// cluster, node and version are the constant header values.
	keys                   []byte
	headers                []kafka.Header
	cluster, node, version []byte

	// client reads end offsets and reads the topic back (replay.go).
	client *kafka.Client
	now    func() time.Time
	// intentPath is the intent file; start is the intent's snapshot
	// (nil before the first), snaps the snapshots taken since, oldest
	// first; keep is how far back the intent must reach (doc.go).
	intentPath string
	start      *snapshot
	snaps      []snapshot
	keep       time.Duration
	// readBackMax caps a read-back (readBackMax).
	readBackMax int
	// doubt is set while records may be in the topic that the sink did
	// not see acknowledged: after a restart with an intent, or a produce
	// that failed. The next attempt reads the topic back first.
	doubt bool
	// seen holds what the last read-back found, until the batches go
	// past it.
	seen *seenSet
	// afterProduce, when set, runs after the brokers acknowledged a
	// produce; an error stands for an acknowledgement lost on the way.
	afterProduce func() error

	produced, resent, stubs                                          prometheus.Counter
	skipped, readBacks, readRecords, overflows, intents, listOffsets prometheus.Counter
}

// New returns a Kafka sink. It fails when the cluster answers that the
// topic does not exist; an unreachable cluster is only logged, so that it
// does not hold up the other sinks.
func New(ctx context.Context, name string, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	tr := &kafka.Transport{ClientID: "auditrail", DialTimeout: 10 * time.Second, MetadataTTL: 3 * time.Second}
	if cfg.TLS != nil {
		t, err := cfg.TLS.Build()
		if err != nil {
			return nil, fmt.Errorf("kafka sink %s: %w", name, err)
		}
		tr.TLS = t
	}
	mech, err := mechanism(ctx, cfg.SASL)
	if err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", name, err)
	}
	tr.SASL = mech
	var codec kafka.Compression
	switch cfg.Compression {
	case "zstd":
		// zstd's fastest level, several times cheaper than the default
		// level 3 for a similar ratio on audit events.
		useZstdCodec()
		codec = compress.Zstd
	case "lz4":
		codec = compress.Lz4
	case "snappy":
		codec = compress.Snappy
	case "gzip":
		codec = compress.Gzip
	}
	labels := prometheus.Labels{"sink": name}
	s := &Sink{
		name: name, cfg: cfg, log: log, sleep: sinks.Sleep, tr: tr,
		cluster: []byte(cfg.Cluster), node: []byte(cfg.Node), version: []byte(cfg.AgentVersion),
		w: &kafka.Writer{
			Addr: kafka.TCP(cfg.Brokers...), Topic: cfg.Topic, Balancer: kafka.Murmur2Balancer{},
			RequiredAcks: kafka.RequireAll, Compression: codec,
			Transport:   &metadataCache{RoundTripper: tr, topic: cfg.Topic, now: time.Now},
			MaxAttempts: 1, WriteBackoffMin: 50 * time.Millisecond, WriteBackoffMax: time.Second,
			BatchSize: 1000, BatchBytes: int64(cfg.MaxMessageBytes), BatchTimeout: 2 * time.Millisecond,
			WriteTimeout: time.Duration(cfg.RequestTimeout), ReadTimeout: time.Duration(cfg.RequestTimeout),
			AllowAutoTopicCreation: cfg.AutoCreateTopic,
		},
		produced: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_messages_total",
			Help: "Messages acknowledged by the brokers.", ConstLabels: labels}),
		resent: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_message_retries_total",
			Help: "Messages that failed and were sent again.", ConstLabels: labels}),
		stubs: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_oversized_stubs_total",
			Help: "Lines above maxMessageBytes sent as stubs.", ConstLabels: labels}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_replay_skipped_total",
			Help: "Records written again by the agent that a read-back found already in the topic, and that were not sent again.", ConstLabels: labels}),
		readBacks: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_readbacks_total",
			Help: "Read-backs of the topic after a restart or a failed produce.", ConstLabels: labels}),
		readRecords: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_readback_records_total",
			Help: "Records read back from the topic.", ConstLabels: labels}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_readback_overflows_total",
			Help: "Read-backs whose window held more records than the cap: the oldest were not checked and may be delivered twice.", ConstLabels: labels}),
		intents: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_intent_writes_total",
			Help: "Intents written (each a write, two fsyncs and a rename).", ConstLabels: labels}),
		listOffsets: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_kafka_end_offset_snapshots_total",
			Help: "Snapshots of the partitions' end offsets taken before a produce.", ConstLabels: labels}),
	}
	s.client = &kafka.Client{Addr: s.w.Addr, Transport: s.w.Transport, Timeout: time.Duration(cfg.RequestTimeout)}
	s.now, s.intentPath, s.readBackMax = time.Now, intentPath(cfg.StateDir, name), readBackMax
	s.keep = 2*cfg.AckLag + 5*time.Second
	if cfg.AckLag <= 0 {
		s.keep = 7 * time.Second
	}
	if err := s.loadIntent(); err != nil {
		return nil, err
	}
	if err := sinks.Register(reg, s.produced, s.resent, s.stubs, s.skipped, s.readBacks, s.readRecords,
		s.overflows, s.intents, s.listOffsets); err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", name, err)
	}
	return s, nil
}

// loadIntent reads the intent left by the previous run. One for the topic
// puts the sink in doubt: the first write reads the topic back. One that
// cannot be read is logged and counted: after it, a batch written again
// may be duplicated, never lost.
func (s *Sink) loadIntent() error {
	in, err := loadIntent(s.intentPath)
	switch {
	case errors.Is(err, errNoIntent):
		return nil
	case err != nil:
		if rerr := os.Remove(s.intentPath); rerr != nil {
			return fmt.Errorf("kafka sink %s: %w; remove it: %w", s.name, err, rerr)
		}
		s.overflows.Inc()
		s.log.Error("intent unreadable and removed: batches written again after this restart may be duplicated in Kafka", "sink", s.name, "err", err)
	case in.Topic != s.cfg.Topic:
		s.log.Info("intent is for another topic; nothing to read back", "sink", s.name, "intentTopic", in.Topic)
	default:
		s.start, s.doubt = &in.Start, true
	}
	return nil
}

// Check implements sinks.Checker: the topic must exist unless
// autoCreateTopic lets the brokers create it.
func (s *Sink) Check(ctx context.Context) error {
	err := s.checkTopic(ctx, s.tr)
	var missing *missingTopic
	if errors.As(err, &missing) && !s.cfg.AutoCreateTopic {
		return sinks.Misconfigured(fmt.Errorf("kafka sink %s: %w", s.name, err))
	}
	return err
}

func mechanism(ctx context.Context, c SASLConfig) (sasl.Mechanism, error) {
	switch c.Mechanism {
	case "PLAIN":
		return plain.Mechanism{Username: c.Username, Password: c.Password}, nil
	case "SCRAM-SHA-256", "SCRAM-SHA-512":
		algo := scram.SHA256
		if c.Mechanism == "SCRAM-SHA-512" {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.Username, c.Password)
		if err != nil {
			// Not wrapped: the library's error quotes the credential.
			return nil, fmt.Errorf("SASL %s: SASLprep rejects the username or the password (a prohibited character, such as a control character)", c.Mechanism)
		}
		return m, nil
	case "AWS_MSK_IAM":
		var opts []func(*awsconfig.LoadOptions) error
		if c.Region != "" {
			opts = append(opts, awsconfig.WithRegion(c.Region))
		}
		awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
		if err != nil {
			return nil, fmt.Errorf("load AWS configuration for MSK IAM: %w", err)
		}
		return msk.NewMechanism(awsCfg), nil
	}
	return nil, nil
}

type missingTopic struct{ topic string }

func (e *missingTopic) Error() string {
	return fmt.Sprintf("topic %q does not exist; create it, or set autoCreateTopic: true if the brokers may create it", e.topic)
}

func (s *Sink) checkTopic(ctx context.Context, tr *kafka.Transport) error {
	c := &kafka.Client{Addr: kafka.TCP(s.cfg.Brokers...), Transport: tr}
	md, err := c.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err != nil {
		return fmt.Errorf("metadata: %w", err)
	}
	for _, t := range md.Topics {
		if t.Name == s.cfg.Topic {
			if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
				return &missingTopic{s.cfg.Topic}
			}
			return codeOnly(t.Error)
		}
	}
	return &missingTopic{s.cfg.Topic}
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// Close implements sinks.Sink. It closes the transport's connections too:
// the writer closes only a transport it made itself.
func (s *Sink) Close(context.Context) error {
	err := s.w.Close()
	s.tr.CloseIdleConnections()
	return err
}

// Write produces every record of b and returns once all are acknowledged.
// When earlier records may be in the topic unacknowledged (after a restart
// or a failed produce), it first reads the topic back and leaves out the
// records of b found there (doc.go).
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	s.msgs = s.msgs[:0]
	// kafka-go is done with the previous batch's messages once
	// WriteMessages returned: their buffers can be written over. A buffer
	// that grows leaves the messages made so far on its old array.
	s.keys, s.headers = s.keys[:0], s.headers[:0]
	for i := range b.Records {
		s.msgs = append(s.msgs, s.message(&b.Records[i]))
	}
	if err := s.prepare(ctx); err != nil {
		return err
	}
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if s.doubt {
			if err := s.readBack(ctx); err != nil {
				return fmt.Errorf("kafka sink %s: %w", s.name, err)
			}
			s.doubt = false
		}
		if s.seen != nil {
			s.msgs = s.unseen(s.msgs)
		}
		err := s.produce(ctx)
		if err == nil {
			s.acknowledged(b)
			return nil
		}
		// Some of the messages may be in the topic, acknowledged or not.
		s.doubt = true
		if attempt == maxAttempts || ctx.Err() != nil {
			return fmt.Errorf("produce to %s: %w", s.cfg.Topic, codeOnly(err))
		}
		s.resent.Add(float64(failed(err, len(s.msgs))))
		s.log.Warn("produce failed; sending the messages not found in the topic again", "sink", s.name, "attempt", attempt, "err", codeOnly(err))
		if err := s.sleep(ctx, backoff); err != nil {
			return err
		}
		backoff *= 2
	}
}

// maxAttempts is how many times Write produces before it returns an
// error. Each attempt after the first reads the topic back: kafka-go's
// writer makes one attempt only (MaxAttempts: 1), since one of its own
// retries could duplicate a message whose acknowledgement was lost.
const maxAttempts = 3

// failed returns how many of n messages err says failed.
func failed(err error, n int) int {
	var werrs kafka.WriteErrors
	if errors.As(err, &werrs) && len(werrs) == n {
		return werrs.Count()
	}
	return n
}

// produce sends s.msgs; nil means the brokers acknowledged all of them.
func (s *Sink) produce(ctx context.Context) error {
	if len(s.msgs) == 0 {
		return nil
	}
	err := s.w.WriteMessages(ctx, s.msgs...)
	var werrs kafka.WriteErrors
	switch {
	case err == nil:
		s.produced.Add(float64(len(s.msgs)))
		if s.afterProduce != nil {
			return s.afterProduce()
		}
	case errors.As(err, &werrs) && len(werrs) == len(s.msgs):
		s.produced.Add(float64(len(werrs) - werrs.Count()))
	}
	return err
}

// unseen returns the messages of msgs that the last read-back did not
// find in the topic, in place.
func (s *Sink) unseen(msgs []kafka.Message) []kafka.Message {
	out := msgs[:0]
	for _, m := range msgs {
		// message puts IDHeader first and SourceHeader second.
		if _, ok := s.seen.keys[keyOf(m.Headers[0].Value, m.Headers[1].Value)]; ok {
			s.skipped.Inc()
			continue
		}
		out = append(out, m)
	}
	return out
}

// acknowledged records that every record of b is in the topic.
func (s *Sink) acknowledged(b *sinks.Batch) {
	if s.seen != nil && !s.seen.pass(b, s.now()) {
		s.seen = nil
	}
}

// codeOnly returns err without the text a broker may add to an error
// code: it is free-form (a broker-side policy, a proxy) and may quote the
// records sent. The code says what went wrong.
func codeOnly(err error) error {
	var code kafka.Error
	var werrs kafka.WriteErrors
	switch {
	case errors.As(err, &code):
		return code
	case errors.As(err, &werrs):
		for _, e := range werrs {
			if e != nil {
				return fmt.Errorf("%d of %d messages failed, the first with: %w", werrs.Count(), len(werrs), codeOnly(e))
			}
		}
	}
	return err
}

// message returns r as a Kafka message. Its key, headers and, with format
// ocsf, its value are carved from per-batch buffers (s.keys, s.headers),
// reset by Write.
func (s *Sink) message(r *sinks.Record) kafka.Message {
	start := len(s.keys)
	s.keys = sinks.AppendKey(s.keys, r)
	m := kafka.Message{Key: s.keys[start:len(s.keys):len(s.keys)], Value: r.Line}
	ocsfValue := false
	if s.cfg.Format == "ocsf" && r.Kind == sinks.KindEvent && r.Event != nil {
		start = len(s.keys)
		if out, err := ocsf.Append(s.keys, r.Line, r.Event); err == nil {
			s.keys = out
			m.Value, ocsfValue = s.keys[start:len(s.keys):len(s.keys)], true
		}
	}
	start = len(s.keys)
	s.keys = sinks.AppendID(s.keys, r)
	id := s.keys[start:len(s.keys):len(s.keys)]
	ev := r.Event
	if cap(s.headers)-len(s.headers) < maxHeaders {
		s.headers = make([]kafka.Header, 0, max(4096, 2*cap(s.headers)))
	}
	h := s.headers[len(s.headers) : len(s.headers) : len(s.headers)+maxHeaders]
	add := func(k string, v []byte) {
		if len(v) > 0 {
			h = append(h, kafka.Header{Key: k, Value: v})
		}
	}
	add(IDHeader, id)
	start = len(s.keys)
	s.keys = appendSource(s.keys, r)
	add(SourceHeader, s.keys[start:len(s.keys):len(s.keys)])
	if r.Kind == sinks.KindEvent && ev != nil {
		add("stage", ev.Stage)
		add("verb", ev.Verb)
		add("resource", ev.Resource)
		add("namespace", ev.Namespace)
		add("user", ev.Username)
	} else {
		add("auditrail-kind", []byte(r.Kind.String()))
	}
	if ocsfValue {
		add("auditrail-format", []byte("ocsf"))
	}
	add("cluster", s.cluster)
	add("node", s.node)
	add("agent-version", s.version)
	if len(r.Rules) > 0 {
		add("auditrail-rules", []byte(strings.Join(r.Rules, ",")))
	}
	if len(m.Value)+len(m.Key)+512 > int(s.cfg.MaxMessageBytes) {
		m.Value = s.stub(r)
		add("auditrail-stub", []byte("oversized"))
		s.stubs.Inc()
	}
	m.Headers = h
	s.headers = s.headers[:len(s.headers)+len(h)]
	return m
}

// maxHeaders is the most headers message adds.
const maxHeaders = 12

// IDHeader carries the record's idempotency key (sinks.AppendID): for an
// event the SHA-256 of its line as read from the file. Consumers
// deduplicate on it; the message key, the auditID, is chosen by the client
// that sent the request and can be shared by different requests.
const IDHeader = "auditrail-id"

// SourceHeader carries where the record was read: the source file's
// identity and the line's offset in it, as "id@offset". With IDHeader it
// identifies the record when the topic is read back after a crash.
const SourceHeader = "auditrail-source"

// appendSource appends r's SourceHeader value to dst.
func appendSource(dst []byte, r *sinks.Record) []byte {
	if r.File != nil {
		dst = append(dst, r.File.ID...)
	}
	dst = append(dst, '@')
	return strconv.AppendInt(dst, r.Offset, 10)
}

// stub stands in for a line too long for the topic.
func (s *Sink) stub(r *sinks.Record) []byte {
	sum := sha256.Sum256(r.Line)
	var id, stage string
	if r.Event != nil {
		id, stage = string(r.Event.AuditID), string(r.Event.Stage)
	}
	b, _ := json.Marshal(struct {
		Kind       string `json:"kind"`
		APIVersion string `json:"apiVersion"`
		AuditID    string `json:"auditID,omitempty"`
		Stage      string `json:"stage,omitempty"`
		Size       int    `json:"size"`
		Limit      int    `json:"limit"`
		SHA256     string `json:"sha256"`
		File       string `json:"file"`
		Offset     int64  `json:"offset"`
	}{sinks.OversizedStubKind, sinks.RecordAPIVersion, id, stage,
		len(r.Line), int(s.cfg.MaxMessageBytes), hex.EncodeToString(sum[:]), r.File.ID, r.Offset})
	return b
}
