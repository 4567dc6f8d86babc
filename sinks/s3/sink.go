package s3

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/auditrail/auditrail/sinks"
)

var (
	_ sinks.Sink    = (*Sink)(nil)
	_ sinks.Checker = (*Sink)(nil)
)

// Sink is the S3 sink.
type Sink struct {
	name   string
	cfg    Config
	client *s3.Client
	log    *slog.Logger
	now    func() time.Time
	enc    *encoder

	checked bool // the bucket passed the startup check
	closed  bool // Close ran
	// scanner reads objects found at the sink's keys.
	scanner *Scanner

	// chain links every object to the one before (see chain.go).
	chain *chain

	objects, skipped, parts prometheus.Counter
	objectBytes, collisions prometheus.Counter
}

// New returns an S3 sink. It returns an error when the configuration is
// unusable or the bucket definitely lacks what the configuration requires.
func New(ctx context.Context, name string, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	client, err := NewClient(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	enc, err := newEncoder(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	enc.ocsf = cfg.Format == "ocsf"
	ch, err := loadChain(chainPath(cfg.StateDir, name), cfg.Node+"/"+name, time.Now())
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	switch ch.start {
	case StartUnreadable:
		log.Warn("S3 hash chain state unreadable; starting a new chain epoch", "sink", name, "epoch", ch.st.Epoch)
	case StartRenamed:
		log.Warn("S3 hash chain state belongs to another node or sink name; starting a new chain", "sink", name, "chain", ch.id)
	}
	labels := prometheus.Labels{"sink": name}
	s := &Sink{
		name: name, cfg: cfg, client: client, log: log, now: time.Now, enc: enc, chain: ch,
		scanner: &Scanner{Limit: DefaultMaxObjectBytes},
		objects: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_objects_total",
			Help: "Objects uploaded.", ConstLabels: labels}),
		objectBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_object_bytes_total",
			Help: "Bytes uploaded, after compression.", ConstLabels: labels}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_duplicates_skipped_total",
			Help: "Batches not uploaded because an identical object was already there.", ConstLabels: labels}),
		parts: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_multipart_parts_total",
			Help: "Parts uploaded in multipart uploads.", ConstLabels: labels}),
		collisions: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_key_collisions_total",
			Help: "Batches uploaded under another key because theirs held an object with other records.", ConstLabels: labels}),
	}
	if err := sinks.Register(reg, s.objects, s.objectBytes, s.skipped, s.parts, s.collisions); err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	return s, nil
}

// Check implements sinks.Checker: the bucket must exist, with versioning
// and Object Lock unless objectLock.required is false. When S3 does not
// answer, the check is made again before the first upload.
func (s *Sink) Check(ctx context.Context) error {
	err := s.checkBucket(ctx)
	if definite(err) {
		return sinks.Misconfigured(fmt.Errorf("s3 sink %s: %w", s.name, err))
	}
	return err
}

// NewClient returns a client for cfg's endpoint, region, credentials and
// TLS settings, as the sink uses them.
func NewClient(ctx context.Context, cfg Config) (*s3.Client, error) {
	tlsCfg, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	httpClient := awshttp.NewBuildableClient().WithTransportOptions(func(t *http.Transport) {
		t.TLSClientConfig = tlsCfg
	})
	opts := []func(*awsconfig.LoadOptions) error{
		awsconfig.WithHTTPClient(httpClient),
		awsconfig.WithRetryMaxAttempts(3),
	}
	if cfg.Region != "" {
		opts = append(opts, awsconfig.WithRegion(cfg.Region))
	}
	if cfg.AccessKeyID != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKeyID, cfg.SecretAccessKey, cfg.SessionToken)))
	}
	awsCfg, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		awsCfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.ForcePathStyle
		// The body's integrity is carried by its SHA-256 checksum header,
		// which is signed and which S3 verifies; signing the body as well
		// would hash every byte a second time (the SDK does not over
		// HTTPS either).
		o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
	}), nil
}

// checkError is a startup check that failed with an answer from S3, as
// opposed to S3 not answering.
type checkError struct{ msg string }

func (e *checkError) Error() string { return e.msg }

func definite(err error) bool {
	var c *checkError
	return errors.As(err, &c)
}

// checkBucket verifies that the bucket exists with versioning and Object
// Lock enabled.
func (s *Sink) checkBucket(ctx context.Context) error {
	if s.checked {
		return nil
	}
	bucket := aws.String(s.cfg.Bucket)
	v, err := s.client.GetBucketVersioning(ctx, &s3.GetBucketVersioningInput{Bucket: bucket})
	if err != nil {
		return classify(err, "get versioning of bucket "+s.cfg.Bucket, "s3:GetBucketVersioning")
	}
	if !s.cfg.LockRequired() {
		s.checked = true
		return nil
	}
	if v.Status != types.BucketVersioningStatusEnabled {
		return &checkError{fmt.Sprintf("bucket %s does not have versioning enabled, which Object Lock needs; "+
			"create it with Object Lock enabled or set objectLock.required: false", s.cfg.Bucket)}
	}
	lc, err := s.client.GetObjectLockConfiguration(ctx, &s3.GetObjectLockConfigurationInput{Bucket: bucket})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "ObjectLockConfigurationNotFoundError" {
			return &checkError{fmt.Sprintf("bucket %s does not have Object Lock enabled; "+
				"create it with Object Lock enabled or set objectLock.required: false", s.cfg.Bucket)}
		}
		return classify(err, "get Object Lock configuration of bucket "+s.cfg.Bucket, "s3:GetBucketObjectLockConfiguration")
	}
	if lc.ObjectLockConfiguration == nil || lc.ObjectLockConfiguration.ObjectLockEnabled != types.ObjectLockEnabledEnabled {
		return &checkError{fmt.Sprintf("bucket %s does not have Object Lock enabled; "+
			"create it with Object Lock enabled or set objectLock.required: false", s.cfg.Bucket)}
	}
	s.checked = true
	return nil
}

// classify turns an SDK error into a definite check failure when S3
// answered with a client error, and leaves it retryable otherwise.
func classify(err error, what, permission string) error {
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.HTTPStatusCode() >= 400 && re.HTTPStatusCode() < 500 {
		var ae smithy.APIError
		code := ""
		if errors.As(err, &ae) {
			code = ae.ErrorCode()
		}
		switch {
		case code == "NoSuchBucket" || re.HTTPStatusCode() == http.StatusNotFound:
			return &checkError{fmt.Sprintf("%s: the bucket does not exist", what)}
		case code == "AccessDenied" || re.HTTPStatusCode() == http.StatusForbidden:
			return &checkError{fmt.Sprintf("%s: access denied (the sink needs %s)", what, permission)}
		}
		return &checkError{fmt.Sprintf("%s: %v", what, err)}
	}
	return fmt.Errorf("%s: %w", what, err)
}

// Name implements sinks.Sink.
func (s *Sink) Name() string { return s.name }

// span returns the first and last source ranges of b. A batch of only
// tamper and heartbeat records covers none: it is named after its first
// record, whose identity is unique.
func span(b *sinks.Batch) (first, last sinks.Segment) {
	if len(b.Segments) == 0 {
		seg := sinks.Segment{File: b.Records[0].File}
		return seg, seg
	}
	return b.Segments[0], b.Segments[len(b.Segments)-1]
}

// marked lists the kinds of agent-made records in b (gap, tamper,
// heartbeat, …), so that readers of the archive find them without
// downloading every object.
func marked(b *sinks.Batch) string {
	var seen [8]bool
	var out []string
	for i := range b.Records {
		k := b.Records[i].Kind
		if k != sinks.KindEvent && int(k) < len(seen) && !seen[k] {
			seen[k] = true
			out = append(out, k.String())
		}
	}
	slices.Sort(out)
	return strings.Join(out, ",")
}

// metadata returns the object's metadata, without its place in the chain
// and its SHA-256.
func (s *Sink) metadata(b *sinks.Batch, firstEvent time.Time) map[string]string {
	first, last := span(b)
	meta := map[string]string{
		MetaMarked:     marked(b),
		"records":      strconv.Itoa(len(b.Records)),
		"source-file":  first.File.ID,
		"source-range": fmt.Sprintf("%d-%d", first.Start, last.End),
		"source-files": strconv.Itoa(len(b.Segments)),
		"first-event":  firstEvent.UTC().Format(time.RFC3339Nano),
		"last-event":   last.LastEventTime,
	}
	if s.cfg.Format == "ocsf" {
		meta[MetaFormat] = "ocsf"
	}
	return meta
}

// firstEventTime returns the time of the batch's first event; for a batch
// without events, when it was cut (the same when it is cut again after a
// crash), or now.
func (s *Sink) firstEventTime(b *sinks.Batch) time.Time {
	for i := range b.Records {
		if ts := sinks.EventTime(&b.Records[i]); len(ts) > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
				return t.UTC()
			}
		}
	}
	if !b.Cut.IsZero() {
		return b.Cut.UTC()
	}
	return s.now().UTC()
}

// key returns the object key of b.
func (s *Sink) key(b *sinks.Batch, first time.Time) string {
	var k strings.Builder
	if p := strings.Trim(s.cfg.Prefix, "/"); p != "" {
		k.WriteString(p)
		k.WriteByte('/')
	}
	if s.cfg.Cluster != "" {
		k.WriteString("cluster=" + s.cfg.Cluster + "/")
	}
	if s.cfg.Node != "" {
		k.WriteString("node=" + s.cfg.Node + "/")
	}
	k.WriteString(first.Format("dt=2006-01-02/hour=15/20060102T150405.000000Z"))
	head, tail := span(b)
	fmt.Fprintf(&k, "_%s_%020d-", head.File.ID, head.Start)
	if tail.File != head.File {
		fmt.Fprintf(&k, "%s_", tail.File.ID)
	}
	fmt.Fprintf(&k, "%020d", tail.End)
	if len(b.Segments) > 0 {
		k.WriteString(noticeTag(b))
	}
	k.WriteString(s.enc.ext)
	return k.String()
}

// noticeTag distinguishes batches of the same byte range that carry
// different tamper, heartbeat, start, anchor and gap records (a range read
// again after a restart, with that run's start record, or a gap detected
// again at another time): "_n" and a digest of the ids of the records not
// tied to a range and of the gap records' lines (whose file is the
// range's), or "" when there are none. Without it the second upload would find the first at
// its key and be taken for another object.
func noticeTag(b *sinks.Batch) string {
	h := sha256.New()
	n := 0
	for i := range b.Records {
		switch b.Records[i].Kind {
		case sinks.KindTamper, sinks.KindHeartbeat, sinks.KindStart, sinks.KindAnchor:
			io.WriteString(h, b.Records[i].File.ID)
		case sinks.KindGap:
			h.Write(b.Records[i].Line)
		default:
			continue
		}
		n++
	}
	if n == 0 {
		return ""
	}
	return "_n" + hex.EncodeToString(h.Sum(nil)[:6])
}

// Close implements sinks.Sink. It uploads an object of no records whose
// manifest says the chain is closed, when the chain has any object: verify
// then accepts a chain that ends there, after a clean shutdown or before
// the node or sink is renamed. The next start continues the chain.
func (s *Sink) Close(ctx context.Context) error {
	if s.closed {
		return nil
	}
	s.closed = true
	defer s.scanner.Close()
	defer s.enc.close()
	defer s.chain.close()
	if s.chain.st.Seq == 0 {
		return nil
	}
	ref := &sinks.FileRef{ID: fmt.Sprintf("closed-%s-%d", s.chain.st.Epoch, s.chain.st.Seq+1)}
	b := &sinks.Batch{Segments: []sinks.Segment{{File: ref}}}
	if err := s.write(ctx, b, map[string]string{MetaClosed: "true"}); err != nil {
		return fmt.Errorf("close chain: %w", err)
	}
	return nil
}

// Head implements sinks.Anchorer: the chain's last object, as recorded.
func (s *Sink) Head() (sinks.AnchorRecord, bool) {
	st := s.chain.st
	if st.Seq == 0 || st.SHA256 == "" {
		return sinks.AnchorRecord{}, false
	}
	return sinks.AnchorRecord{Kind: sinks.AnchorRecordKind, APIVersion: sinks.RecordAPIVersion, Sink: s.name,
		Chain: s.chain.id, Epoch: st.Epoch, Seq: st.Seq, SHA256: st.SHA256, Key: st.Key}, true
}
