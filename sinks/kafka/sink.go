// Package kafka implements a sink that produces every record as one Kafka
// message, with acks from all in-sync replicas.
//
// The key is the auditID, so every stage of one request lands on one
// partition, in order (the partitioner is murmur2, as in the Java client).
// It is not an identity: a client chooses it with the Audit-ID header. The
// auditrail-id header is one: the SHA-256 of the line as read from the
// file, what consumers deduplicate on. The value is the original line.
// Headers also carry stage, verb, resource, namespace, user, cluster and
// node so that consumers can route without parsing. A line longer than maxMessageBytes is replaced by a stub that
// names it, counted, and flagged with an auditrail-stub header.
//
// A batch is acknowledged only when the broker acknowledged every message.
// Messages that failed are sent again on their own, with backoff, within
// the same write; a write that cannot reach the cluster fails and the
// agent retries the batch. Consumers deduplicate on key and stage.
package kafka

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
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

	msgs  []kafka.Message
	retry []kafka.Message
	// keys and headers back the messages of the batch being written;
	// cluster, node and version are the constant header values.
	keys                   []byte
	headers                []kafka.Header
	cluster, node, version []byte

	produced, resent, stubs prometheus.Counter
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
			MaxAttempts: 3, WriteBackoffMin: 50 * time.Millisecond, WriteBackoffMax: time.Second,
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
	}
	if err := sinks.Register(reg, s.produced, s.resent, s.stubs); err != nil {
		return nil, fmt.Errorf("kafka sink %s: %w", name, err)
	}
	return s, nil
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
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	s.msgs = s.msgs[:0]
	// kafka-go is done with the previous batch's messages once
	// WriteMessages returned: their buffers can be written over. A buffer
	// that grows leaves the messages made so far on its old array.
	s.keys, s.headers = s.keys[:0], s.headers[:0]
	for i := range b.Records {
		s.msgs = append(s.msgs, s.message(&b.Records[i]))
	}
	backoff := 100 * time.Millisecond
	progress := false
	for {
		err := s.w.WriteMessages(ctx, s.msgs...)
		var werrs kafka.WriteErrors
		switch {
		case err == nil:
			s.produced.Add(float64(len(s.msgs)))
			return nil
		case errors.As(err, &werrs) && len(werrs) == len(s.msgs):
			s.retry = s.retry[:0]
			var first error
			for i, e := range werrs {
				if e != nil {
					s.retry = append(s.retry, s.msgs[i])
					first = cmpErr(first, codeOnly(e))
				}
			}
			acked := len(s.msgs) - len(s.retry)
			s.produced.Add(float64(acked))
			progress = progress || acked > 0
			if !progress {
				// Nothing delivered yet: let the agent retry the batch.
				return fmt.Errorf("produce to %s: %w", s.cfg.Topic, first)
			}
			// Part of the batch is delivered: send only the rest again,
			// here, so that the delivered part is not duplicated.
			s.resent.Add(float64(len(s.retry)))
			s.log.Warn("some messages failed; sending them again", "sink", s.name, "failed", len(s.retry), "err", first)
			s.msgs = append(s.msgs[:0], s.retry...)
		case progress && ctx.Err() == nil:
			s.resent.Add(float64(len(s.msgs)))
			s.log.Warn("produce failed; sending the rest of the batch again", "sink", s.name, "messages", len(s.msgs), "err", codeOnly(err))
		default:
			return fmt.Errorf("produce to %s: %w", s.cfg.Topic, codeOnly(err))
		}
		if err := s.sleep(ctx, backoff); err != nil {
			return err
		}
		backoff = min(backoff*2, 5*time.Second)
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

func cmpErr(first, e error) error {
	if first == nil {
		return e
	}
	return first
}

// message returns r as a Kafka message. Its key and headers are carved
// from per-batch buffers (s.keys, s.headers), reset by Write.
func (s *Sink) message(r *sinks.Record) kafka.Message {
	start := len(s.keys)
	s.keys = sinks.AppendKey(s.keys, r)
	m := kafka.Message{Key: s.keys[start:len(s.keys):len(s.keys)], Value: r.Line}
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
	if r.Kind == sinks.KindEvent && ev != nil {
		add("stage", ev.Stage)
		add("verb", ev.Verb)
		add("resource", ev.Resource)
		add("namespace", ev.Namespace)
		add("user", ev.Username)
	} else {
		add("auditrail-kind", []byte(r.Kind.String()))
	}
	add("cluster", s.cluster)
	add("node", s.node)
	add("agent-version", s.version)
	if len(r.Rules) > 0 {
		add("auditrail-rules", []byte(strings.Join(r.Rules, ",")))
	}
	if len(r.Line)+len(m.Key)+512 > int(s.cfg.MaxMessageBytes) {
		m.Value = s.stub(r)
		add("auditrail-stub", []byte("oversized"))
		s.stubs.Inc()
	}
	m.Headers = h
	s.headers = s.headers[:len(s.headers)+len(h)]
	return m
}

// maxHeaders is the most headers message adds.
const maxHeaders = 11

// IDHeader carries the record's idempotency key (sinks.AppendID): for an
// event the SHA-256 of its line as read from the file. Consumers
// deduplicate on it; the message key, the auditID, is chosen by the client
// that sent the request and can be shared by different requests.
const IDHeader = "auditrail-id"

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
