package agent

import (
	"bytes"
	"compress/gzip"
	"io"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/internal/auditjson"
)

// plainSource reads an uncompressed file through its held descriptor.
type plainSource struct{ h *handle }

func (s plainSource) ReadAt(p []byte, off int64) (int, error) { return s.h.f.ReadAt(p, off) }

// gzipSource reads a compressed file's content in order: it ignores the
// offset, which is always where the last read ended.
type gzipSource struct{ zr *gzip.Reader }

func (s gzipSource) ReadAt(p []byte, _ int64) (int, error) { return s.zr.Read(p) }

// openSource returns a source of h's uncompressed content positioned at
// off.
func openSource(h *handle, off int64) (framer.Source, error) {
	if !h.gz {
		return plainSource{h}, nil
	}
	zr, err := gzip.NewReader(io.NewSectionReader(h.f, 0, 1<<62))
	if err != nil {
		return nil, err
	}
	if _, err := io.CopyN(io.Discard, zr, off); err != nil {
		return nil, err
	}
	return gzipSource{zr}, nil
}

// firstEventTime returns the timestamp of the first event in e, if it can
// be read cheaply.
func firstEventTime(reg *registry, e *entry) string {
	h := reg.files.acquire(e)
	if h == nil {
		return ""
	}
	defer reg.files.release(h)
	src, err := openSource(h, 0)
	if err != nil {
		return ""
	}
	buf := make([]byte, 64<<10)
	n, _ := io.ReadFull(io.NewSectionReader(src, 0, 1<<62), buf)
	line := buf[:n]
	if i := bytes.IndexByte(line, '\n'); i >= 0 {
		line = line[:i]
	}
	var ev auditjson.Event
	auditjson.Parse(line, &ev)
	if len(ev.RequestReceivedTimestamp) > 0 {
		return string(ev.RequestReceivedTimestamp)
	}
	return string(ev.StageTimestamp)
}
