package s3

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks"
)

// KindManifest is the kind of the manifest line that opens every object.
const KindManifest = "AuditrailManifest"

// Manifest is the first line of every object: its place in the hash chain
// and what it holds, so that the chain can be checked from the content
// alone, for example after the objects were copied out of S3 without their
// metadata. The object's own SHA-256 cannot be inside it; RecordsSHA256
// covers every byte after the manifest line, and the next object's Prev
// covers the whole object.
type Manifest struct {
	Kind          string `json:"kind"`
	APIVersion    string `json:"apiVersion"`
	Chain         string `json:"chain"`
	Epoch         string `json:"epoch"`
	Seq           int64  `json:"seq"`
	Prev          string `json:"prev,omitempty"`
	ChainStart    string `json:"chainStart,omitempty"`
	Records       int    `json:"records"`
	RecordsSHA256 string `json:"recordsSHA256"`
	SourceFile    string `json:"sourceFile"`
	SourceRange   string `json:"sourceRange"`
	FirstEvent    string `json:"firstEvent,omitempty"`
	LastEvent     string `json:"lastEvent,omitempty"`
	Marked        string `json:"marked,omitempty"`
	// Closed says the sink closed the chain here (a clean shutdown): the
	// chain may end with this object.
	Closed bool `json:"closed,omitempty"`
	// Collision is the key this object belongs at, which already held
	// another object when the sink uploaded it.
	Collision string `json:"collision,omitempty"`
	// Format is "ocsf" when the events are OCSF API Activity events
	// (Config.Format); empty when they are the bytes kube-apiserver wrote.
	Format string `json:"format,omitempty"`
}

// newManifest fills a manifest from the object's metadata (without its
// SHA-256, which is not known yet).
func newManifest(meta map[string]string) Manifest {
	seq, _ := strconv.ParseInt(meta[MetaSeq], 10, 64)
	records, _ := strconv.Atoi(meta["records"])
	return Manifest{
		Kind: KindManifest, APIVersion: sinks.RecordAPIVersion,
		Chain: meta[MetaChain], Epoch: meta[MetaEpoch], Seq: seq, Prev: meta[MetaPrev], ChainStart: meta[MetaChainStart],
		Records: records, RecordsSHA256: meta[MetaRecordsSHA256],
		SourceFile: meta["source-file"], SourceRange: meta["source-range"],
		FirstEvent: meta["first-event"], LastEvent: meta["last-event"], Marked: meta[MetaMarked],
		Closed: meta[MetaClosed] == "true", Collision: meta[MetaCollision], Format: meta[MetaFormat],
	}
}

func (m Manifest) line() []byte {
	b, _ := json.Marshal(m) // strings and numbers always marshal
	return b
}

// Mismatch names the first of the manifest's chain fields (chain, epoch,
// seq, prev, records-sha256) that disagrees with the object's metadata,
// or returns "" when they agree.
func (m Manifest) Mismatch(meta map[string]string) string {
	switch {
	case m.Chain != meta[MetaChain]:
		return "chain"
	case m.Epoch != meta[MetaEpoch]:
		return "epoch"
	case strconv.FormatInt(m.Seq, 10) != meta[MetaSeq]:
		return "seq"
	case m.Prev != meta[MetaPrev]:
		return "prev"
	case m.RecordsSHA256 != meta[MetaRecordsSHA256]:
		return "records-sha256"
	}
	return ""
}

// ReadObject decompresses an object's body, by the extension of its key,
// at most DefaultMaxObjectBytes, and splits off its manifest line. It returns the records' bytes, which
// are the lines as read from the source files, and checks them against
// the manifest's RecordsSHA256.
func ReadObject(key string, body []byte) (Manifest, []byte, error) {
	var m Manifest
	raw, err := decompress(key, body)
	if err != nil {
		return m, nil, fmt.Errorf("decompress %s: %w", key, err)
	}
	head, recs, ok := bytes.Cut(raw, []byte{'\n'})
	if !ok || json.Unmarshal(head, &m) != nil || m.Kind != KindManifest {
		return m, raw, fmt.Errorf("%s: %w", key, ErrNoManifest)
	}
	sum := sha256.Sum256(recs)
	if got := hex.EncodeToString(sum[:]); got != m.RecordsSHA256 {
		return m, recs, fmt.Errorf("%s: %w: records SHA-256 %s, manifest says %s", key, ErrRecordsMismatch, got, m.RecordsSHA256)
	}
	return m, recs, nil
}

// Errors of ReadObject.
var (
	ErrNoManifest      = errors.New("no manifest line")
	ErrRecordsMismatch = errors.New("records do not match the manifest")
)

// zstdDecoder is shared by every ReadObject: DecodeAll may be called
// concurrently, and a decoder is costly to set up for each object.
var zstdDecoder = sync.OnceValues(func() (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderMaxMemory(DefaultMaxObjectBytes))
})

func decompress(key string, body []byte) ([]byte, error) {
	switch {
	case strings.HasSuffix(key, ".zst"):
		d, err := zstdDecoder()
		if err != nil {
			return nil, err
		}
		return d.DecodeAll(body, nil)
	case strings.HasSuffix(key, ".gz"):
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		raw, err := io.ReadAll(io.LimitReader(zr, DefaultMaxObjectBytes+1))
		if err == nil && len(raw) > DefaultMaxObjectBytes {
			err = fmt.Errorf("more than %d bytes decompressed", DefaultMaxObjectBytes)
		}
		return raw, err
	}
	return body, nil
}
