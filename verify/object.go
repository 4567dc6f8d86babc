package verify

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
)

// verifyObject downloads the oldest version of one key and checks it
// alone; it returns nil for an object outside any chain.
func verifyObject(ctx context.Context, client *s3.Client, sc *s3sink.Scanner, bucket string, k *keyVersions, opts Options,
	add func(Finding)) (*verified, error) {
	key := k.key
	in := &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled}
	if id := aws.ToString(k.oldest().VersionId); id != "" && id != "null" {
		in.VersionId = aws.String(id)
	}
	out, err := client.GetObject(ctx, in)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	got, err := sc.Scan(key, out.Body)
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	v := &verified{key: key, sha: got.SHA256, meta: out.Metadata, lastMod: aws.ToTime(out.LastModified),
		firstEvent: out.Metadata["first-event"], marked: got.Marked, closed: got.NoManifest == nil && got.Manifest.Closed}
	checkContent(key, got, out, sc.Limit, add)
	checkLock(key, out, v.lastMod, opts, add)
	if !placed(key, out.Metadata) {
		add(Finding{Kind: "misplaced", Key: key, Detail: fmt.Sprintf("the object's metadata describes source %s bytes %s, not what its key names",
			out.Metadata["source-file"], out.Metadata["source-range"])})
	}
	if got.NoManifest == nil && got.Manifest.Collision != "" {
		add(Finding{Kind: "key-collision", Key: key, Detail: fmt.Sprintf(
			"the sink found another object at %s, the key of this batch, when it uploaded it: that object was placed there by someone else", got.Manifest.Collision)})
	}
	seq, err := strconv.ParseInt(out.Metadata[s3sink.MetaSeq], 10, 64)
	if err != nil || out.Metadata[s3sink.MetaEpoch] == "" {
		add(Finding{Kind: "no-chain", Key: key, Detail: "object carries no hash chain metadata"})
		return nil, nil
	}
	v.seq = seq
	return v, nil
}

// checkContent compares what the content hashes to with the manifest, the
// metadata and S3's checksum.
func checkContent(key string, got *s3sink.Scan, out *s3.GetObjectOutput, limit int64, add func(Finding)) {
	switch {
	case got.Oversized:
		add(Finding{Kind: "oversized-object", Key: key, Detail: fmt.Sprintf(
			"more than %d bytes, compressed or not (a decompression bomb?): read no further, its records are not checked", limit)})
	case got.NoManifest != nil:
		add(Finding{Kind: "no-manifest", Key: key, Detail: fmt.Sprintf("%s: %v", key, got.NoManifest)})
	case got.RecordsSHA256 != got.Manifest.RecordsSHA256:
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: fmt.Sprintf("%s: %v: records SHA-256 %s, manifest says %s",
			key, s3sink.ErrRecordsMismatch, got.RecordsSHA256, got.Manifest.RecordsSHA256)})
	default:
		if f := got.Manifest.Mismatch(out.Metadata); f != "" {
			add(Finding{Kind: "manifest-mismatch", Key: key, Detail: fmt.Sprintf("the manifest line's %s differs from the object's metadata", f)})
		}
	}
	if got.SHA256 == "" {
		return
	}
	if want := out.Metadata[s3sink.MetaSHA256]; want != got.SHA256 {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: fmt.Sprintf("content SHA-256 %s, metadata says %q", got.SHA256, want)})
	}
	sum, _ := hex.DecodeString(got.SHA256)
	if c := aws.ToString(out.ChecksumSHA256); c != "" && !strings.Contains(c, "-") && c != base64.StdEncoding.EncodeToString(sum) {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: "content does not match S3's stored SHA-256 checksum " + c})
	}
}

// checkLock checks the object's retention against the policy.
func checkLock(key string, out *s3.GetObjectOutput, lastMod time.Time, opts Options, add func(Finding)) {
	switch {
	case out.ObjectLockMode == "":
		if opts.RequireLock {
			add(Finding{Kind: "unlocked", Key: key, Detail: "no Object Lock retention"})
		}
	case opts.MinRetention > 0:
		until := aws.ToTime(out.ObjectLockRetainUntilDate)
		if until.Sub(lastMod) < opts.MinRetention-time.Minute {
			add(Finding{Kind: "short-retention", Key: key, Detail: fmt.Sprintf("%s retention until %s, %s after upload; policy is %s",
				out.ObjectLockMode, until.UTC().Format(time.RFC3339), until.Sub(lastMod).Round(time.Second), opts.MinRetention)})
		}
	}
}
