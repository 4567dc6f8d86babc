// Package framer splits the bytes of an audit file into frames: complete
// lines, lines above the size limit, and holes (NUL bytes where a line
// should start). It reads a byte source at increasing offsets and knows
// nothing of events, batches, sinks or positions: what a frame becomes is
// the caller's decision.
//
// The rules are those of [Split]: a line ends at a newline and may be
// empty; a line longer than the limit is not kept but hashed as it is read,
// whatever its length, and yielded as one Oversized frame with its size,
// SHA-256 and first bytes; NUL bytes at the start of a line are a hole (the
// one a writer without O_APPEND leaves after the file was truncated under
// it), yielded as they are read. Bytes after the last newline are held
// until their line ends, or yielded by [Framer.Rest] at the end of a file
// that will not grow.
package framer

import (
	"bytes"
	"crypto/sha256"
	"hash"
)

// Kind is what a frame holds.
type Kind uint8

const (
	// Line is a line within the limit, its newline excluded; it may be
	// empty.
	Line Kind = iota + 1
	// Oversized is a line above the limit: only its size, SHA-256 and
	// first PrefixBytes bytes are kept.
	Oversized
	// Hole is a run of NUL bytes where a line should start.
	Hole
)

// BufSize is the size of a framer's read buffer; it grows for a longer
// line up to the limit.
const BufSize = 256 << 10

// keptBuf is the largest read buffer a framer keeps once the long line
// that grew it is framed: a few lines of a few hundred KB are common in
// an audit log (large objects in request or response bodies), and growing
// the buffer again for each would allocate and clear a megabyte every
// time.
const keptBuf = 4 * BufSize

// PrefixBytes is how many of an oversized line's first bytes its frame
// keeps.
const PrefixBytes = 4 << 10

// Frame is one frame of a file: bytes Start to End. A frame and its
// slices are valid until the framer's next Fill, Next or Rest.
type Frame struct {
	Kind Kind
	// Complete reports whether an oversized line's newline was read (false
	// for the last line of a file that ended without one).
	Complete   bool
	Start, End int64
	// Bytes is the line without its newline (Line), or the line's first
	// PrefixBytes bytes (Oversized).
	Bytes []byte
	// Size is the length of an oversized line, its newline excluded.
	Size int64
	// Sum is the SHA-256 of an oversized line; nil for other frames.
	Sum *[sha256.Size]byte
}

// Source reads a file's content. The framer reads at the offset following
// the bytes it read last, except after Reset and Unread, so a sequential
// source (a gzip stream) that is never Unread may ignore off.
type Source interface {
	ReadAt(p []byte, off int64) (int, error)
}

// Split returns the frame at the start of data and its length n: a Line
// (data[n] is its newline), a Hole of n NUL bytes, or an Oversized line
// (n is 0: the line at data, longer than maxLine, is not all in data). It
// returns kind 0 when data holds no complete frame.
func Split(data []byte, maxLine int) (k Kind, n int) {
	if len(data) > 0 && data[0] == 0 {
		return Hole, nuls(data)
	}
	i := bytes.IndexByte(data, '\n')
	switch {
	case i > maxLine || (i < 0 && len(data) > maxLine):
		return Oversized, 0
	case i < 0:
		return 0, 0
	}
	return Line, i
}

// nuls returns how many NUL bytes data starts with.
func nuls(data []byte) int {
	n := 0
	for n < len(data) && data[n] == 0 {
		n++
	}
	return n
}

// Framer frames a source from an offset on. The zero Framer is ready after
// Reset.
type Framer struct {
	// buf[start:end] are the bytes read and not framed yet; they start at
	// file offset pos.
	buf        []byte
	start, end int
	pos        int64
	maxLine    int

	// over, when set, is the hash of the line above the limit that starts
	// at overStart, of which overSize bytes were read.
	over      hash.Hash
	prefix    []byte
	overStart int64
	overSize  int64

	// frame is the last frame returned, sum the hash it points to.
	frame Frame
	sum   [sha256.Size]byte
}

// Reset makes the framer frame from off, lines of at most maxLine bytes.
func (f *Framer) Reset(off int64, maxLine int) {
	if cap(f.buf) < BufSize {
		f.buf = make([]byte, BufSize)
	}
	f.buf = f.buf[:cap(f.buf)]
	f.start, f.end, f.pos, f.maxLine, f.over = 0, 0, off, maxLine, nil
}

// Pos returns the offset of the first byte not yet framed: the start of
// the line being read.
func (f *Framer) Pos() int64 { return f.pos }

// Buffered returns how many bytes were read and not framed yet.
func (f *Framer) Buffered() int { return f.end - f.start }

// AtLineStart reports whether the next byte to read starts a line: no byte
// of an unfinished line is held or being hashed.
func (f *Framer) AtLineStart() bool { return f.start == f.end && f.over == nil }

// Advance moves the framer, at a line start, to off: the bytes up to there
// were framed elsewhere.
func (f *Framer) Advance(off int64) { f.pos = off }

// Unread forgets the bytes read and not framed yet (once Next returned
// nil, the start of the line at Pos), so that the next Fill reads them
// again. Inside a line above the limit, whose bytes are hashed as they are
// read, it does nothing.
func (f *Framer) Unread() {
	if f.over == nil {
		f.start, f.end = 0, 0
	}
}

// Fill reads more bytes from src, making room first. It returns how many
// it read and the source's error. Call it once Next returned nil: the
// bytes it holds are then at most the start of one line.
func (f *Framer) Fill(src Source) (int, error) {
	if f.end == len(f.buf) && f.start > 0 {
		n := copy(f.buf, f.buf[f.start:f.end])
		f.start, f.end = 0, n
	}
	if f.end == len(f.buf) {
		if len(f.buf) <= f.maxLine {
			nb := make([]byte, min(2*len(f.buf), f.maxLine+1))
			copy(nb, f.buf[:f.end])
			f.buf = nb
		} else {
			// A full buffer without a newline is the start of a line
			// above the limit: hash it and free the room.
			f.startOver()
			f.absorb(f.buf[f.start:f.end])
			f.start, f.end = 0, 0
			f.shrink()
		}
	}
	off := f.pos + int64(f.end-f.start)
	if f.over != nil {
		off = f.overStart + f.overSize + int64(f.end-f.start)
	}
	n, err := src.ReadAt(f.buf[f.end:], off)
	f.end += n
	return n, err
}

// Next returns the next complete frame of the bytes read, or nil when
// they hold none: Fill reads more.
func (f *Framer) Next() *Frame {
	data := f.buf[f.start:f.end]
	if f.over == nil {
		k, n := Split(data, f.maxLine)
		switch k {
		case Line:
			f.frame = Frame{Kind: Line, Start: f.pos, End: f.pos + int64(n) + 1, Bytes: data[:n:n]}
			f.skip(n + 1)
			return &f.frame
		case Hole:
			f.frame = Frame{Kind: Hole, Start: f.pos, End: f.pos + int64(n)}
			f.skip(n)
			return &f.frame
		case 0:
			return nil
		}
		f.startOver()
	}
	// Inside a line above the limit: hash it, keep nothing.
	i := bytes.IndexByte(data, '\n')
	if i < 0 {
		f.absorb(data)
		f.start, f.end = 0, 0
		return nil
	}
	f.absorb(data[:i])
	f.skip(i + 1)
	return f.oversized(true)
}

// Rest returns the unfinished last line, at the end of a file that will
// not grow (once Next returned nil after the last Fill): a Line without
// its newline, or an Oversized line that is not Complete. It returns nil
// when the file ended with a newline.
func (f *Framer) Rest() *Frame {
	if f.over != nil {
		return f.oversized(false)
	}
	if f.end == f.start {
		return nil
	}
	data := f.buf[f.start:f.end]
	f.frame = Frame{Kind: Line, Start: f.pos, End: f.pos + int64(len(data)), Bytes: data[:len(data):len(data)]}
	f.skip(len(data))
	return &f.frame
}

// oversized ends the line above the limit and returns its frame.
func (f *Framer) oversized(complete bool) *Frame {
	f.frame = Frame{Kind: Oversized, Start: f.overStart, End: f.overStart + f.overSize, Bytes: f.prefix, Size: f.overSize, Complete: complete, Sum: &f.sum}
	if complete {
		f.frame.End++
	}
	f.over.Sum(f.sum[:0])
	f.pos, f.over = f.frame.End, nil
	return &f.frame
}

func (f *Framer) skip(n int) {
	f.start += n
	f.pos += int64(n)
	if f.start == f.end {
		f.start, f.end = 0, 0
		f.shrink()
	}
}

// shrink gives back the memory a very long line took.
func (f *Framer) shrink() {
	if len(f.buf) > keptBuf {
		f.buf = make([]byte, BufSize)
	}
}

// startOver starts hashing the line at pos, which is above the limit.
func (f *Framer) startOver() {
	f.over = sha256.New()
	f.prefix = f.prefix[:0]
	f.overStart = f.pos
	f.overSize = 0
}

// absorb adds data, the next bytes of the line above the limit, to its
// hash, keeping the first bytes.
func (f *Framer) absorb(data []byte) {
	f.over.Write(data)
	if room := PrefixBytes - len(f.prefix); room > 0 {
		f.prefix = append(f.prefix, data[:min(room, len(data))]...)
	}
	f.overSize += int64(len(data))
}
