package s3_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"testing"

	s3sink "github.com/auditrail/auditrail/sinks/s3"
	"github.com/auditrail/auditrail/sinks/s3/s3test"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

func TestScanIsBounded(t *testing.T) {
	hb := `{"kind":"AuditrailHeartbeat","apiVersion":"auditrail.io/v1","sink":"s3","at":"2026-11-21T10:00:00Z"}`
	lines := append(sinktest.Events(0, 50, 1), hb)
	recs := ndjson(lines)
	recsSum := sha256.Sum256(recs)
	for _, tc := range []struct {
		name, comp string
		limit      int64
		body       func(key string, body []byte) []byte
		oversized  bool
		noManifest bool
	}{
		{"zstd", "zstd", 1 << 20, nil, false, false},
		{"gzip", "gzip", 1 << 20, nil, false, false},
		{"none", "none", 1 << 20, nil, false, false},
		{"decompressed past the bound", "zstd", int64(len(recs)) / 2, nil, true, false},
		{"zstd bomb", "zstd", 1 << 20, func(key string, _ []byte) []byte { return s3test.Bomb(t, ".ndjson.zst", 8<<20) }, true, true},
		{"gzip bomb", "gzip", 1 << 20, func(key string, _ []byte) []byte { return s3test.Bomb(t, ".ndjson.gz", 8<<20) }, true, true},
		{"stored body past the bound", "none", 1 << 10, nil, true, false},
		{"not compressed as the key says", "zstd", 1 << 20, func(_ string, b []byte) []byte { return []byte("plain text\n") }, false, true},
		{"truncated", "gzip", 1 << 20, func(_ string, b []byte) []byte { return b[:len(b)/2] }, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, body := s3sink.EncodeBatch(t, tc.comp, lines)
			if tc.body != nil {
				body = tc.body(key, body)
			}
			sc := &s3sink.Scanner{Limit: tc.limit}
			defer sc.Close()
			got, err := sc.Scan(key, bytes.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if got.Oversized != tc.oversized || (got.NoManifest != nil) != tc.noManifest {
				t.Fatalf("oversized %v, no manifest %v; want %v, %v", got.Oversized, got.NoManifest, tc.oversized, tc.noManifest)
			}
			bodySum := sha256.Sum256(body)
			if wantSHA := hex.EncodeToString(bodySum[:]); !got.Oversized || int64(len(body)) <= tc.limit {
				if got.SHA256 != wantSHA {
					t.Errorf("body SHA-256 %q, want %s", got.SHA256, wantSHA)
				}
			}
			if tc.oversized || tc.noManifest {
				return
			}
			if got.RecordsSHA256 != hex.EncodeToString(recsSum[:]) || got.Manifest.RecordsSHA256 != got.RecordsSHA256 {
				t.Errorf("records SHA-256 %s, manifest %s, want %x", got.RecordsSHA256, got.Manifest.RecordsSHA256, recsSum)
			}
			if len(got.Marked) != 1 || got.Marked[0].Kind != "AuditrailHeartbeat" || string(got.Marked[0].Line) != hb {
				t.Errorf("marked records %+v", got.Marked)
			}
		})
	}
	// One scanner reads objects one after the other, whatever happened to
	// the one before.
	sc := &s3sink.Scanner{Limit: 1 << 20}
	defer sc.Close()
	for i, comp := range []string{"zstd", "zstd", "gzip", "gzip", "zstd"} {
		key, body := s3sink.EncodeBatch(t, comp, lines)
		if i == 1 {
			body = s3test.Bomb(t, ".ndjson.zst", 8<<20)
		}
		got, err := sc.Scan(key, bytes.NewReader(body))
		if err != nil || (i != 1 && got.RecordsSHA256 != hex.EncodeToString(recsSum[:])) {
			t.Errorf("object %d (%s): err %v, scan %+v", i, comp, err, got)
		}
	}
}

type failingReader struct{}

func (failingReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// A body that cannot be read is an error, not a finding about content.
func TestScanReadError(t *testing.T) {
	sc := &s3sink.Scanner{Limit: 1 << 20}
	defer sc.Close()
	for _, key := range []string{"k.ndjson.zst", "k.ndjson.gz", "k.ndjson"} {
		if _, err := sc.Scan(key, failingReader{}); err == nil {
			t.Errorf("%s: no error from a failing body", key)
		}
	}
}
