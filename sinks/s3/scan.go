package s3

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"strings"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/auditrail/auditrail/sinks"
)

// DefaultMaxObjectBytes bounds what is read of one object, compressed and
// decompressed, when nothing else is configured: far above any object the
// sink writes (a batch of batch.maxBytes, 4 MiB by default, plus one line
// of at most maxLineBytes), far below what would stop verification.
const DefaultMaxObjectBytes = 1 << 30

// maxManifestBytes bounds the manifest line; the agent's are under 1 KiB.
const maxManifestBytes = 64 << 10

// maxMarkedLine bounds the lines kept to look for the agent's records,
// which are a few hundred bytes; longer lines are events.
const maxMarkedLine = 64 << 10

// Scan is what reading one object's body found, in one pass and in
// bounded memory.
type Scan struct {
	SHA256    string // hex SHA-256 of the body as stored; "" if it was not read whole
	bodyBytes int64
	Manifest  Manifest
	// NoManifest is why the first line is not a manifest (ErrNoManifest,
	// or the body does not decompress), nil if it is: then every line
	// of the content is a record.
	NoManifest    error
	RecordsSHA256 string // hex SHA-256 of the bytes after the manifest line
	// Oversized is set when the body or its decompressed content exceeds
	// the bound: the records' SHA-256 is then unknown.
	Oversized bool
	// Marked are the records the agent made, found among the records.
	Marked []MarkedRecord
}

// MarkedRecord is a record the agent made (sinks.GapRecord,
// sinks.TamperRecord, sinks.StartRecord, …), found in an object.
type MarkedRecord struct {
	Kind string // the record's "kind": sinks.GapRecordKind, …
	Line []byte
}

// Scanner reads objects one after the other, reusing its decoders. The
// zero value is ready to use.
type Scanner struct {
	// Limit bounds the bytes read of one object, compressed and
	// decompressed; zero means DefaultMaxObjectBytes.
	Limit int64
	zstd  *zstd.Decoder
	gzip  *gzip.Reader
}

// Close releases the scanner's decoders.
func (sc *Scanner) Close() {
	if sc.zstd != nil {
		sc.zstd.Close()
	}
}

// Scan reads the body of the object at key: it hashes the body, and
// decompresses it by the key's extension, at most sc.Limit bytes of
// either, to check the manifest line, hash the records and find the
// agent's records among them. It returns an error only when the body
// cannot be read; what the content is wrong about is in the Scan.
func (sc *Scanner) Scan(key string, body io.Reader) (*Scan, error) {
	limit := sc.Limit
	if limit <= 0 {
		limit = DefaultMaxObjectBytes
	}
	s := &Scan{}
	h := sha256.New()
	raw := &countingReader{r: io.TeeReader(io.LimitReader(body, limit+1), h)}
	content, err := sc.decompressor(key, raw)
	if err == nil {
		err = s.readContent(io.LimitReader(content, limit+1), limit)
	}
	if err != nil && !isReadError(err) {
		s.NoManifest = fmt.Errorf("decompress: %w", err)
		err = nil
	}
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, err
	}
	s.bodyBytes = raw.n
	if raw.n > limit {
		s.Oversized = true
		return s, nil
	}
	s.SHA256 = hex.EncodeToString(h.Sum(nil))
	return s, nil
}

// readError marks a failure to read the body, as opposed to content that
// does not decompress.
type readError struct{ err error }

func (e *readError) Error() string { return e.err.Error() }
func (e *readError) Unwrap() error { return e.err }

func isReadError(err error) bool {
	var re *readError
	return errors.As(err, &re)
}

type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err != nil && err != io.EOF {
		err = &readError{err}
	}
	return n, err
}

func (sc *Scanner) decompressor(key string, r io.Reader) (io.Reader, error) {
	switch {
	case strings.HasSuffix(key, ".zst"):
		if sc.zstd == nil {
			d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1), zstd.WithDecoderLowmem(true),
				zstd.WithDecoderMaxWindow(64<<20))
			if err != nil {
				return nil, err
			}
			sc.zstd = d
		}
		return sc.zstd, sc.zstd.Reset(r)
	case strings.HasSuffix(key, ".gz"):
		if sc.gzip == nil {
			zr, err := gzip.NewReader(r)
			sc.gzip = zr
			return zr, err
		}
		return sc.gzip, sc.gzip.Reset(r)
	}
	return r, nil
}

// readContent reads the decompressed content: the manifest line, then
// the records, hashed and searched for the agent's records.
func (s *Scan) readContent(r io.Reader, limit int64) error {
	br := bufio.NewReaderSize(r, 64<<10)
	head, err := br.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull, err == io.EOF:
		s.NoManifest = ErrNoManifest
	case err != nil:
		return err
	case json.Unmarshal(head[:len(head)-1], &s.Manifest) != nil || s.Manifest.Kind != KindManifest:
		s.NoManifest = ErrNoManifest
	}
	n := int64(len(head))
	rw := &recordsWriter{h: sha256.New()}
	if s.NoManifest != nil {
		rw.Write(head) // the whole content is records
	}
	m, err := io.Copy(rw, br)
	if err != nil {
		return err
	}
	rw.flush()
	s.Marked = rw.marked
	if n+m > limit {
		s.Oversized = true
		return nil
	}
	s.RecordsSHA256 = hex.EncodeToString(rw.h.Sum(nil))
	return nil
}

// recordsWriter hashes the records and keeps the agent's records among
// them.
type recordsWriter struct {
	h      hash.Hash
	line   []byte
	long   bool // the current line is past maxMarkedLine: an event
	marked []MarkedRecord
}

func (w *recordsWriter) Write(p []byte) (int, error) {
	w.h.Write(p)
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			w.add(p)
			break
		}
		w.add(p[:i])
		w.flush()
		p = p[i+1:]
	}
	return n, nil
}

func (w *recordsWriter) add(p []byte) {
	if w.long || len(w.line)+len(p) > maxMarkedLine {
		w.long, w.line = true, w.line[:0]
		return
	}
	w.line = append(w.line, p...)
}

func (w *recordsWriter) flush() {
	if !w.long && len(w.line) > 0 {
		w.marked = append(w.marked, markedRecords(w.line)...)
	}
	w.long, w.line = false, w.line[:0]
}

// markedRecords returns the records the agent made among recs.
func markedRecords(recs []byte) []MarkedRecord {
	var out []MarkedRecord
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
			out = append(out, MarkedRecord{Kind: head.Kind, Line: bytes.Clone(line)})
		}
	}
	return out
}
