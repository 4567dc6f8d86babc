// Package s3 implements a sink that writes each batch as one object to an
// S3 bucket, with Object Lock retention set on every object.
//
// An object holds the batch's original lines as NDJSON, compressed with
// zstd (default), gzip or not at all. Its key is deterministic:
//
//	<prefix>/cluster=<c>/node=<n>/dt=YYYY-MM-DD/hour=HH/<first event time>_<file id>_<start>-<end>.ndjson.zst
//
// so the same batch delivered twice lands on the same key. Every upload
// carries an x-amz-checksum-sha256 that S3 verifies (locked buckets require
// an integrity checksum) and the SHA-256 of the whole object in the
// x-amz-meta-sha256 metadata. Before the first upload after a start or a
// failed attempt, the sink asks for the key: if an object with the same
// SHA-256 is already there, the batch was delivered and is not uploaded
// again.
//
// At start the sink checks that the bucket exists and has versioning and
// Object Lock enabled, and refuses to run otherwise unless
// objectLock.required is false. If S3 cannot be reached at start, the check
// runs again before the first upload, so that an unreachable bucket never
// stops the other sinks.
package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
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

var _ sinks.Sink = (*Sink)(nil)

// Sink is the S3 sink.
type Sink struct {
	name   string
	cfg    Config
	client *s3.Client
	log    *slog.Logger
	now    func() time.Time
	enc    *encoder

	checked bool // the bucket passed the startup check
	// verifyNext makes the next upload look for an identical object
	// first: after a start, and after an attempt whose outcome is unknown.
	verifyNext bool

	// chain links every object to the one before (see chain.go).
	chain *chain

	objects, skipped, parts prometheus.Counter
	objectBytes             prometheus.Counter
}

// New returns an S3 sink. It returns an error when the configuration is
// unusable or the bucket definitely lacks what the configuration requires.
func New(ctx context.Context, name string, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Sink, error) {
	client, err := newClient(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	enc, err := newEncoder(cfg.Compression)
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	ch, err := loadChain(chainPath(cfg.StateDir, name), cfg.Node+"/"+name, time.Now())
	if err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	if ch.start == StartUnreadable {
		log.Warn("S3 hash chain state unreadable; starting a new chain epoch", "sink", name, "epoch", ch.st.Epoch)
	}
	labels := prometheus.Labels{"sink": name}
	s := &Sink{
		name: name, cfg: cfg, client: client, log: log, now: time.Now, enc: enc, verifyNext: true, chain: ch,
		objects: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_objects_total",
			Help: "Objects uploaded.", ConstLabels: labels}),
		objectBytes: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_object_bytes_total",
			Help: "Bytes uploaded, after compression.", ConstLabels: labels}),
		skipped: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_duplicates_skipped_total",
			Help: "Batches not uploaded because an identical object was already there.", ConstLabels: labels}),
		parts: prometheus.NewCounter(prometheus.CounterOpts{Name: "auditrail_s3_multipart_parts_total",
			Help: "Parts uploaded in multipart uploads.", ConstLabels: labels}),
	}
	if err := sinks.Register(reg, s.objects, s.objectBytes, s.skipped, s.parts); err != nil {
		return nil, fmt.Errorf("s3 sink %s: %w", name, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := s.checkBucket(cctx); err != nil {
		if definite(err) {
			return nil, fmt.Errorf("s3 sink %s: %w", name, err)
		}
		log.Warn("S3 bucket check could not complete; trying again before the first upload",
			"sink", name, "bucket", cfg.Bucket, "err", err)
	}
	return s, nil
}

func newClient(ctx context.Context, cfg Config) (*s3.Client, error) {
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

// Write uploads b as one object.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	if err := s.checkBucket(ctx); err != nil {
		return err // retried: a definite failure is logged by the agent until fixed
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	if p := s.chain.pending(); p != nil {
		meta, err := s.head(ctx, p.Key)
		if err != nil {
			return err
		}
		if err := s.chain.resolve(meta); err != nil {
			return err
		}
	}
	first := s.firstEventTime(b)
	obj := object{key: s.key(b, first)}
	obj.meta = s.metadata(b, first)
	s.chain.next(obj.meta)
	body, err := s.enc.encode(b, func(sum []byte) []byte {
		obj.meta[MetaRecordsSHA256] = hex.EncodeToString(sum)
		return newManifest(obj.meta).line()
	})
	if err != nil {
		return sinks.Permanent(fmt.Errorf("compress batch: %w", err))
	}
	sum := sha256.Sum256(body)
	obj.body, obj.sha256 = body, sum[:]
	obj.meta[MetaSHA256] = hex.EncodeToString(sum[:])
	if s.verifyNext {
		meta, same, err := s.alreadyThere(ctx, obj)
		if err != nil {
			return err
		}
		if same {
			if s.chain.follows(meta) {
				if err := s.chain.advance(obj.key, meta); err != nil {
					return err
				}
			}
			s.verifyNext = false
			s.skipped.Inc()
			s.log.Info("object already in S3 with the same checksum; not uploading it again",
				"sink", s.name, "key", obj.key)
			return nil
		}
	}
	if err := s.chain.intend(obj.key, obj.meta); err != nil {
		return err
	}
	if int64(len(body)) > int64(s.cfg.MultipartThreshold) {
		err = s.putMultipart(ctx, obj)
	} else {
		err = s.put(ctx, obj)
	}
	if err != nil {
		s.verifyNext = true
		return fmt.Errorf("upload %s: %w", obj.key, err)
	}
	if err := s.chain.advance(obj.key, obj.meta); err != nil {
		s.verifyNext = true // uploaded: the retry finds it and records it
		return err
	}
	s.verifyNext = false
	s.objects.Inc()
	s.objectBytes.Add(float64(len(body)))
	return nil
}

type object struct {
	key    string
	body   []byte
	sha256 []byte
	meta   map[string]string
}

// alreadyThere reports whether the key holds an object with the same
// records, and returns its metadata.
func (s *Sink) alreadyThere(ctx context.Context, o object) (map[string]string, bool, error) {
	meta, err := s.head(ctx, o.key)
	if err != nil || meta == nil {
		return nil, false, err
	}
	// The records decide, not the whole body: the manifest of a batch
	// delivered again after a crash may name another place in the chain.
	return meta, meta[MetaRecordsSHA256] == o.meta[MetaRecordsSHA256], nil
}

// preconditionFailed reports whether err is S3's answer to a conditional
// write whose key already exists.
func preconditionFailed(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

// head returns the metadata of the object at key, nil if there is none.
func (s *Sink) head(ctx context.Context, key string) (map[string]string, error) {
	h, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("look for %s: %w", key, err)
	}
	if h.Metadata == nil {
		return map[string]string{}, nil
	}
	return h.Metadata, nil
}

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
	return map[string]string{
		MetaMarked:     marked(b),
		"records":      strconv.Itoa(len(b.Records)),
		"source-file":  first.File.ID,
		"source-range": fmt.Sprintf("%d-%d", first.Start, last.End),
		"source-files": strconv.Itoa(len(b.Segments)),
		"first-event":  firstEvent.UTC().Format(time.RFC3339Nano),
		"last-event":   last.LastEventTime,
	}
}

func (s *Sink) lock() (types.ObjectLockMode, *time.Time, types.ObjectLockLegalHoldStatus) {
	var hold types.ObjectLockLegalHoldStatus
	if s.cfg.ObjectLock.LegalHold {
		hold = types.ObjectLockLegalHoldStatusOn
	}
	if s.cfg.ObjectLock.Mode == "" {
		return "", nil, hold
	}
	until := s.now().Add(time.Duration(s.cfg.ObjectLock.Retention)).UTC().Truncate(time.Second).Add(time.Second)
	return types.ObjectLockMode(s.cfg.ObjectLock.Mode), &until, hold
}

// putInput returns the single-request upload of o, with its retention,
// encryption and checksum; putMultipart takes the same settings from it.
func (s *Sink) putInput(o object) *s3.PutObjectInput {
	mode, until, hold := s.lock()
	in := &s3.PutObjectInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(o.key), Body: bytes.NewReader(o.body),
		ContentLength:             aws.Int64(int64(len(o.body))),
		ContentType:               aws.String(s.enc.contentType),
		ChecksumSHA256:            aws.String(base64.StdEncoding.EncodeToString(o.sha256)),
		Metadata:                  o.meta,
		ObjectLockMode:            mode,
		ObjectLockRetainUntilDate: until,
		ObjectLockLegalHoldStatus: hold,
		ServerSideEncryption:      types.ServerSideEncryption(s.cfg.ServerSideEncryption),
		StorageClass:              types.StorageClass(s.cfg.StorageClass),
	}
	if s.cfg.KMSKeyID != "" {
		in.SSEKMSKeyId = aws.String(s.cfg.KMSKeyID)
	}
	return in
}

func (s *Sink) put(ctx context.Context, o object) error {
	_, err := s.client.PutObject(ctx, s.putInput(o))
	return err
}

// putMultipart uploads o in parts, each carrying its own SHA-256.
func (s *Sink) putMultipart(ctx context.Context, o object) error {
	p := s.putInput(o)
	in := &s3.CreateMultipartUploadInput{
		Bucket: p.Bucket, Key: p.Key, ContentType: p.ContentType,
		ChecksumAlgorithm: types.ChecksumAlgorithmSha256, Metadata: p.Metadata,
		ObjectLockMode: p.ObjectLockMode, ObjectLockRetainUntilDate: p.ObjectLockRetainUntilDate,
		ObjectLockLegalHoldStatus: p.ObjectLockLegalHoldStatus,
		ServerSideEncryption:      p.ServerSideEncryption, SSEKMSKeyId: p.SSEKMSKeyId, StorageClass: p.StorageClass,
	}
	up, err := s.client.CreateMultipartUpload(ctx, in)
	if err != nil {
		return err
	}
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		s.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(o.key), UploadId: up.UploadId})
	}
	var parts []types.CompletedPart
	size := int(s.cfg.PartSize)
	for i, n := 0, int32(1); i < len(o.body); i, n = i+size, n+1 {
		part := o.body[i:min(i+size, len(o.body))]
		sum := sha256.Sum256(part)
		sum64 := aws.String(base64.StdEncoding.EncodeToString(sum[:]))
		res, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket: aws.String(s.cfg.Bucket), Key: aws.String(o.key), UploadId: up.UploadId,
			PartNumber: aws.Int32(n), Body: bytes.NewReader(part), ContentLength: aws.Int64(int64(len(part))),
			ChecksumSHA256: sum64,
		})
		if err != nil {
			abort()
			return fmt.Errorf("part %d: %w", n, err)
		}
		parts = append(parts, types.CompletedPart{ETag: res.ETag, PartNumber: aws.Int32(n), ChecksumSHA256: sum64})
		s.parts.Inc()
	}
	_, err = s.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: aws.String(s.cfg.Bucket), Key: aws.String(o.key), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if err != nil {
		abort()
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// firstEventTime returns the time of the batch's first event, or now for a
// batch without events.
func (s *Sink) firstEventTime(b *sinks.Batch) time.Time {
	for i := range b.Records {
		if ts := sinks.EventTime(&b.Records[i]); len(ts) > 0 {
			if t, err := time.Parse(time.RFC3339Nano, string(ts)); err == nil {
				return t.UTC()
			}
		}
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
// different tamper and heartbeat records (a range read again after a
// restart, with that run's start record): "_n" and a digest of their ids,
// or "" when there are none. Without it the second upload would replace
// the first at its key.
func noticeTag(b *sinks.Batch) string {
	h := sha256.New()
	n := 0
	for i := range b.Records {
		if k := b.Records[i].Kind; k == sinks.KindTamper || k == sinks.KindHeartbeat {
			io.WriteString(h, b.Records[i].File.ID)
			n++
		}
	}
	if n == 0 {
		return ""
	}
	return "_n" + hex.EncodeToString(h.Sum(nil)[:6])
}

// Close implements sinks.Sink.
func (s *Sink) Close(context.Context) error {
	s.enc.close()
	return nil
}
