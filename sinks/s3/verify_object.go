package s3

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditrail/auditrail/sinks"
)

// verifyObject downloads the oldest version of one key and checks it
// alone; it returns nil for an object outside any chain.
func verifyObject(ctx context.Context, client *s3.Client, sc *scanner, bucket string, k *keyVersions, opts VerifyOptions,
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
	got, err := sc.scan(key, out.Body)
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	v := &verified{key: key, sha: got.sha, meta: out.Metadata, lastMod: aws.ToTime(out.LastModified),
		firstEvent: out.Metadata["first-event"], marked: got.marked, closed: got.noManifest == nil && got.manifest.Closed}
	checkContent(key, got, out, sc.limit, add)
	checkLock(key, out, v.lastMod, opts, add)
	if !placed(key, out.Metadata) {
		add(Finding{Kind: "misplaced", Key: key, Detail: fmt.Sprintf("the object's metadata describes source %s bytes %s, not what its key names",
			out.Metadata["source-file"], out.Metadata["source-range"])})
	}
	if got.noManifest == nil && got.manifest.Collision != "" {
		add(Finding{Kind: "key-collision", Key: key, Detail: fmt.Sprintf(
			"the sink found another object at %s, the key of this batch, when it uploaded it: that object was placed there by someone else", got.manifest.Collision)})
	}
	seq, err := strconv.ParseInt(out.Metadata[MetaSeq], 10, 64)
	if err != nil || out.Metadata[MetaEpoch] == "" {
		add(Finding{Kind: "no-chain", Key: key, Detail: "object carries no hash chain metadata"})
		return nil, nil
	}
	v.seq = seq
	return v, nil
}

// checkContent compares what the content hashes to with the manifest, the
// metadata and S3's checksum.
func checkContent(key string, got *scan, out *s3.GetObjectOutput, limit int64, add func(Finding)) {
	switch {
	case got.oversized:
		add(Finding{Kind: "oversized-object", Key: key, Detail: fmt.Sprintf(
			"more than %d bytes, compressed or not (a decompression bomb?): read no further, its records are not checked", limit)})
	case got.noManifest != nil:
		add(Finding{Kind: "no-manifest", Key: key, Detail: fmt.Sprintf("%s: %v", key, got.noManifest)})
	case got.recordsSHA != got.manifest.RecordsSHA256:
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: fmt.Sprintf("%s: %v: records SHA-256 %s, manifest says %s",
			key, ErrRecordsMismatch, got.recordsSHA, got.manifest.RecordsSHA256)})
	default:
		if f := got.manifest.mismatch(out.Metadata); f != "" {
			add(Finding{Kind: "manifest-mismatch", Key: key, Detail: fmt.Sprintf("the manifest line's %s differs from the object's metadata", f)})
		}
	}
	if got.sha == "" {
		return
	}
	if want := out.Metadata[MetaSHA256]; want != got.sha {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: fmt.Sprintf("content SHA-256 %s, metadata says %q", got.sha, want)})
	}
	sum, _ := hex.DecodeString(got.sha)
	if c := aws.ToString(out.ChecksumSHA256); c != "" && !strings.Contains(c, "-") && c != base64.StdEncoding.EncodeToString(sum) {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: "content does not match S3's stored SHA-256 checksum " + c})
	}
}

// checkLock checks the object's retention against the policy.
func checkLock(key string, out *s3.GetObjectOutput, lastMod time.Time, opts VerifyOptions, add func(Finding)) {
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

// markedRecords returns the records the agent made among recs.
func markedRecords(recs []byte) []markedRecord {
	var out []markedRecord
	for len(recs) > 0 {
		line := recs
		if i := bytes.IndexByte(recs, '\n'); i >= 0 {
			line, recs = recs[:i], recs[i+1:]
		} else {
			recs = nil
		}
		if !bytes.Contains(line, []byte(`"kind":"Auditrail`)) || !bytes.Contains(line, []byte(`"apiVersion":"`+sinks.RecordAPIVersion+`"`)) {
			continue
		}
		var head struct{ Kind string }
		if json.Unmarshal(line, &head) == nil && strings.HasPrefix(head.Kind, "Auditrail") {
			// A copy: the line is in a buffer reused for the next one.
			out = append(out, markedRecord{kind: head.Kind, line: bytes.Clone(line)})
		}
	}
	return out
}
