package verify

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// keyVersions is every version of one key, and its delete markers. The
// sink writes each key once (If-None-Match: *), so anything more is a
// write over a locked object or a deletion.
type keyVersions struct {
	key      string
	versions []types.ObjectVersion // newest first, as S3 lists them
	markers  []types.DeleteMarkerEntry
}

// oldest is the version the sink wrote: later versions only shadow it.
func (k *keyVersions) oldest() types.ObjectVersion { return k.versions[len(k.versions)-1] }

func (k *keyVersions) size() int64 { return aws.ToInt64(k.oldest().Size) }

// check reports the versions and delete markers past the first version.
func (k *keyVersions) check(add func(Finding)) {
	if n := len(k.versions); n > 1 {
		o := k.oldest()
		add(Finding{Kind: "overwritten", Key: k.key, Detail: fmt.Sprintf(
			"%d versions: written over %d times after the first upload (%s), last at %s; the oldest version is the one verified",
			n, n-1, fmtTime(o.LastModified), fmtTime(k.versions[0].LastModified))})
	}
	if n := len(k.markers); n > 0 {
		add(Finding{Kind: "deleted", Key: k.key, Detail: fmt.Sprintf(
			"%d delete markers, the last at %s: the object is hidden from readers of current versions; the oldest version is the one verified",
			n, fmtTime(k.markers[0].LastModified))})
	}
	if len(k.versions) == 0 {
		add(Finding{Kind: "deleted", Key: k.key, Detail: "only delete markers remain: no version of the object is left"})
	}
}

func fmtTime(t *time.Time) string { return aws.ToTime(t).UTC().Format(time.RFC3339) }

// listVersions lists every version and delete marker under prefix, by
// key, for the keys opts selects.
func listVersions(ctx context.Context, client *s3.Client, bucket, prefix string, opts Options) ([]*keyVersions, error) {
	byKey := map[string]*keyVersions{}
	get := func(key string) *keyVersions {
		if byKey[key] == nil {
			byKey[key] = &keyVersions{key: key}
		}
		return byKey[key]
	}
	pages := s3.NewListObjectVersionsPaginator(client, &s3.ListObjectVersionsInput{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list versions of s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, v := range page.Versions {
			if key := aws.ToString(v.Key); selected(key, opts) {
				k := get(key)
				k.versions = append(k.versions, v)
			}
		}
		for _, m := range page.DeleteMarkers {
			if key := aws.ToString(m.Key); selected(key, opts) {
				k := get(key)
				k.markers = append(k.markers, m)
			}
		}
	}
	out := make([]*keyVersions, 0, len(byKey))
	for _, k := range byKey {
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b *keyVersions) int { return strings.Compare(a.key, b.key) })
	return out, nil
}
