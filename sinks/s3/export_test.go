package s3

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/sinktest"
)

// What the external tests (package s3_test, which share the fixtures of
// package s3test with package verify) read and set of the sink's
// internals. These names exist only in test builds.

// ChainState and PendingObject are the chain state file's contents.
type (
	ChainState    = chainState
	PendingObject = pendingObject
)

// BatchKey returns the key s gives b.
func (s *Sink) BatchKey(b *sinks.Batch) string { return s.key(b, s.firstEventTime(b)) }

// KeyOf returns the key that a sink with cfg, compressing with zstd,
// gives b; it connects to nothing.
func KeyOf(cfg Config, b *sinks.Batch) string {
	enc, _ := newEncoder("zstd")
	s := &Sink{cfg: cfg, enc: enc}
	return s.BatchKey(b)
}

// NextObject returns the key and metadata s gives b as the chain's next
// object, and moves s's chain (in memory) past it.
func (s *Sink) NextObject(b *sinks.Batch) (key string, meta map[string]string) {
	first := s.firstEventTime(b)
	key = s.key(b, first)
	meta = s.metadata(b, first)
	s.chain.next(meta)
	return key, meta
}

// Chain returns s's chain state.
func (s *Sink) Chain() ChainState { return s.chain.st }

// SetChain replaces s's chain state and the reason its epoch started.
func (s *Sink) SetChain(st ChainState, start string) { s.chain.st, s.chain.start = st, start }

// Client returns s's S3 client.
func (s *Sink) Client() *s3.Client { return s.client }

// Objects, Skipped and Parts return s's counters.
func (s *Sink) Objects() float64 { return testutil.ToFloat64(s.objects) }
func (s *Sink) Skipped() float64 { return testutil.ToFloat64(s.skipped) }
func (s *Sink) Parts() float64   { return testutil.ToFloat64(s.parts) }

// NewManifest returns the manifest of an object with metadata meta.
func NewManifest(meta map[string]string) Manifest { return newManifest(meta) }

// PreconditionFailed reports whether err is S3's 412.
func PreconditionFailed(err error) bool { return preconditionFailed(err) }

// EncodeBatch returns the key (its extension) and the body the sink
// uploads for the given lines, compressed with comp.
func EncodeBatch(t *testing.T, comp string, lines []string) (key string, body []byte) {
	t.Helper()
	enc, err := newEncoder(comp)
	if err != nil {
		t.Fatal(err)
	}
	b := sinktest.Batch(sinktest.File(1), 0, lines...)
	meta := map[string]string{MetaChain: "n/s", MetaEpoch: "e", MetaSeq: "1"}
	body, err = enc.encode(b, func(sum []byte) []byte {
		meta[MetaRecordsSHA256] = hex.EncodeToString(sum)
		return newManifest(meta).line()
	})
	if err != nil {
		t.Fatal(err)
	}
	return "k" + enc.ext, bytes.Clone(body)
}
