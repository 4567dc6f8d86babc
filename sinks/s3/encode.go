package s3

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/internal/ocsf"
	"github.com/auditrail/auditrail/sinks"
)

// encoder turns a batch into an object body, reusing its buffers.
type encoder struct {
	kind        string
	ext         string
	contentType string
	zw          *zstd.Encoder
	gw          *gzip.Writer
	out         bytes.Buffer
	sum         hash.Hash
	sumBuf      [sha256.Size]byte
	// ocsf maps events to OCSF API Activity (Config.Format) into mapped,
	// record i at mapped[ends[i-1]:ends[i]].
	ocsf   bool
	mapped []byte
	ends   []int
}

func newEncoder(kind string) (*encoder, error) {
	e := &encoder{kind: kind, sum: sha256.New()}
	switch kind {
	case "zstd":
		// One goroutine, the fastest level and a 256 KiB window: about 1
		// GB/s per core on audit events (BenchmarkEncode), several times
		// the speed of the default window with the low-memory option, and
		// within 0.5% of the ratio of a 1 MiB window, which needs four
		// times the memory. No content checksum: S3 checks the object's
		// SHA-256, and the manifest holds the SHA-256 of the records.
		zw, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1),
			zstd.WithWindowSize(256<<10), zstd.WithEncoderCRC(false))
		if err != nil {
			return nil, err
		}
		e.zw, e.ext, e.contentType = zw, ".ndjson.zst", "application/zstd"
	case "gzip":
		e.gw, e.ext, e.contentType = gzip.NewWriter(nil), ".ndjson.gz", "application/gzip"
	case "none":
		e.ext, e.contentType = ".ndjson", "application/x-ndjson"
	default:
		return nil, fmt.Errorf("unknown compression %q", kind)
	}
	return e, nil
}

// encode returns the body for b: the line head returns for the SHA-256 of
// the records, then the records, compressed as they are written, without
// an uncompressed copy. It stays valid until the next call.
func (e *encoder) encode(b *sinks.Batch, head func(recordsSHA256 []byte) []byte) ([]byte, error) {
	if e.ocsf {
		e.mapOCSF(b)
	}
	e.sum.Reset()
	for i := range b.Records {
		e.sum.Write(e.record(b, i))
		e.sum.Write(newline)
	}
	manifest := head(e.sum.Sum(e.sumBuf[:0]))
	e.out.Reset()
	var w io.Writer = &e.out
	switch e.kind {
	case "zstd":
		e.zw.Reset(&e.out)
		w = e.zw
	case "gzip":
		e.gw.Reset(&e.out)
		w = e.gw
	default:
		e.out.Grow(len(manifest) + 1 + b.Bytes + len(b.Records))
	}
	w.Write(manifest)
	w.Write(newline)
	for i := range b.Records {
		w.Write(e.record(b, i))
		w.Write(newline)
	}
	if cap(e.mapped) > 64<<20 {
		e.mapped = nil // a rare huge batch: do not keep its buffer
	}
	var err error
	switch e.kind {
	case "zstd":
		err = e.zw.Close()
	case "gzip":
		err = e.gw.Close()
	}
	if err != nil {
		return nil, err
	}
	return e.out.Bytes(), nil
}

var newline = []byte{'\n'}

// mapOCSF maps b's events to OCSF into e.mapped; the agent's records and
// lines OCSF cannot hold stay as they are.
func (e *encoder) mapOCSF(b *sinks.Batch) {
	e.mapped, e.ends = e.mapped[:0], e.ends[:0]
	for i := range b.Records {
		r := &b.Records[i]
		mapped := false
		if r.Kind == sinks.KindEvent && r.Event != nil {
			if out, err := ocsf.Append(e.mapped, r.Line, r.Event); err == nil {
				e.mapped, mapped = out, true
			}
		}
		if !mapped {
			e.mapped = append(e.mapped, r.Line...)
		}
		e.ends = append(e.ends, len(e.mapped))
	}
}

// record returns the bytes stored for record i of b: its line, or as
// mapped by mapOCSF.
func (e *encoder) record(b *sinks.Batch, i int) []byte {
	if !e.ocsf {
		return b.Records[i].Line
	}
	start := 0
	if i > 0 {
		start = e.ends[i-1]
	}
	return e.mapped[start:e.ends[i]]
}

func (e *encoder) close() {
	if e.zw != nil {
		e.zw.Close()
	}
}
