package s3

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditrail/auditrail/sinks"
)

// Write uploads b as one object.
func (s *Sink) Write(ctx context.Context, b *sinks.Batch) error {
	return s.write(ctx, b, nil)
}

// write uploads b as one object with extra metadata.
func (s *Sink) write(ctx context.Context, b *sinks.Batch, extra map[string]string) error {
	if err := s.checkBucket(ctx); err != nil {
		return err // retried: a definite failure is logged by the agent until fixed
	}
	ctx, cancel := context.WithTimeout(ctx, time.Duration(s.cfg.RequestTimeout))
	defer cancel()
	if err := s.resolvePending(ctx); err != nil {
		return err
	}
	first := s.firstEventTime(b)
	obj, err := s.prepare(b, first, s.key(b, first), extra)
	if err != nil {
		return err
	}
	if done, err := s.upload(ctx, obj); err != nil || done {
		return err
	}
	// Someone else's object holds the batch's key. It stays (it is locked,
	// and overwriting it would only shadow it); the batch goes to a key of
	// its own, whose manifest names the key taken, for verify to report.
	alt := collisionKey(obj.key, s.enc.ext)
	s.collisions.Inc()
	s.log.Error("S3 key already holds an object with other records; uploading the batch under another key",
		"sink", s.name, "key", obj.key, "uploadedAs", alt)
	extra = maps.Clone(extra)
	if extra == nil {
		extra = map[string]string{}
	}
	extra[MetaCollision] = obj.key
	if obj, err = s.prepare(b, first, alt, extra); err != nil {
		return err
	}
	done, err := s.upload(ctx, obj)
	if err == nil && !done {
		err = fmt.Errorf("upload %s: %s holds another object too", obj.key, alt)
	}
	return err
}

// collisionKey returns another key for the batch of key: a random tag
// nobody can place an object at ahead of the sink.
func collisionKey(key, ext string) string {
	var r [8]byte
	rand.Read(r[:])
	return strings.TrimSuffix(key, ext) + "_x" + hex.EncodeToString(r[:]) + ext
}

type object struct {
	key    string
	body   []byte
	sha256 []byte
	meta   map[string]string
}

// prepare encodes b as the chain's next object at key. Its body stays
// valid until the next call.
func (s *Sink) prepare(b *sinks.Batch, first time.Time, key string, extra map[string]string) (object, error) {
	obj := object{key: key, meta: s.metadata(b, first)}
	maps.Copy(obj.meta, extra)
	s.chain.next(obj.meta)
	body, err := s.enc.encode(b, func(sum []byte) []byte {
		obj.meta[MetaRecordsSHA256] = hex.EncodeToString(sum)
		return newManifest(obj.meta).line()
	})
	if err != nil {
		return obj, sinks.Permanent(fmt.Errorf("compress batch: %w", err))
	}
	sum := sha256.Sum256(body)
	obj.body, obj.sha256 = body, sum[:]
	obj.meta[MetaSHA256] = hex.EncodeToString(sum[:])
	return obj, nil
}

// upload sends o on condition that its key is free, and records it as the
// chain's last. When the key is taken it reports whether by the same
// records (a batch delivered again: done) or by others (not done, no
// error).
func (s *Sink) upload(ctx context.Context, o object) (bool, error) {
	if err := s.chain.intend(o.key, o.meta); err != nil {
		return false, err
	}
	var err error
	if int64(len(o.body)) > int64(s.cfg.MultipartThreshold) {
		err = s.putMultipart(ctx, o)
	} else {
		err = s.put(ctx, o)
	}
	if preconditionFailed(err) {
		return s.settle(ctx, o)
	}
	if err != nil {
		return false, fmt.Errorf("upload %s: %w", o.key, err) // the next attempt resolves the pending upload
	}
	if err := s.chain.advance(o.key, o.meta); err != nil {
		return false, err
	}
	s.objects.Inc()
	s.objectBytes.Add(float64(len(o.body)))
	return true, nil
}

// settle decides what the object already at o's key is: the same records,
// delivered before (a replay after a restart, or an attempt whose answer
// was lost), or another object. The content decides, never metadata.
func (s *Sink) settle(ctx context.Context, o object) (bool, error) {
	got, err := s.fetch(ctx, o.key)
	if err != nil {
		return false, err
	}
	if got == nil {
		return false, fmt.Errorf("upload %s: S3 answered that the key exists, and then that it does not", o.key)
	}
	if got.NoManifest != nil || got.RecordsSHA256 != o.meta[MetaRecordsSHA256] {
		return false, s.chain.drop()
	}
	meta := manifestMeta(got)
	if s.chain.follows(meta) {
		err = s.chain.advance(o.key, meta)
	} else {
		err = s.chain.drop()
	}
	if err != nil {
		return false, err
	}
	s.skipped.Inc()
	s.log.Info("object already in S3 with the same records; not uploading it again", "sink", s.name, "key", o.key)
	return true, nil
}

// manifestMeta returns the chain place the content of an object states,
// with its SHA-256, as chain metadata; nil without a manifest.
func manifestMeta(got *Scan) map[string]string {
	if got.NoManifest != nil {
		return nil
	}
	return map[string]string{MetaEpoch: got.Manifest.Epoch, MetaSeq: strconv.FormatInt(got.Manifest.Seq, 10), MetaSHA256: got.SHA256}
}

// resolvePending settles an upload whose outcome is unknown: it is the
// chain's last if the key holds exactly the body that was sent.
func (s *Sink) resolvePending(ctx context.Context) error {
	p := s.chain.pending()
	if p == nil {
		return nil
	}
	got, err := s.fetch(ctx, p.Key)
	if err != nil {
		return err
	}
	var meta map[string]string
	if got != nil && got.SHA256 == p.SHA256 {
		meta = manifestMeta(got)
	}
	return s.chain.resolve(meta)
}

// fetch reads the current object at key and hashes its content, in
// bounded memory; nil if there is none.
func (s *Sink) fetch(ctx context.Context, key string) (*Scan, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(s.cfg.Bucket), Key: aws.String(key)})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound {
			return nil, nil
		}
		return nil, fmt.Errorf("look for %s: %w", key, err)
	}
	defer out.Body.Close()
	got, err := s.scanner.Scan(key, out.Body)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return got, nil
}

// preconditionFailed reports whether err is S3's answer to a conditional
// write whose key already exists.
func preconditionFailed(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
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
// encryption and checksum, on condition that the key holds no object
// (If-None-Match: *); putMultipart takes the same settings from it.
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
		IfNoneMatch:               aws.String("*"),
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
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}, IfNoneMatch: p.IfNoneMatch,
	})
	if err != nil {
		abort()
		if preconditionFailed(err) {
			return err // the caller looks at what holds the key
		}
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}
