package framer

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"testing"
)

// chunkSource serves data in reads of varying sizes, like a file being
// appended to.
type chunkSource struct {
	data  []byte
	sizes []byte
	n     int
}

func (s *chunkSource) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(s.data)) {
		return 0, io.EOF
	}
	sz := 1
	if len(s.sizes) > 0 {
		sz = int(s.sizes[s.n%len(s.sizes)]&0x7f) + 1
	}
	s.n++
	end := min(len(s.data), int(off)+sz, int(off)+len(p))
	return copy(p, s.data[off:end]), nil
}

// model frames data whole, as the file of a final file: the frames a
// Framer must yield, holes merged.
func model(data []byte, maxLine int) []Frame {
	var out []Frame
	off := 0
	for off < len(data) {
		if data[off] == 0 {
			n := len(data[off:]) - len(bytes.TrimLeft(data[off:], "\x00"))
			out = append(out, Frame{Kind: Hole, Start: int64(off), End: int64(off + n)})
			off += n
			continue
		}
		line, complete := data[off:], false
		if i := bytes.IndexByte(line, '\n'); i >= 0 {
			line, complete = line[:i], true
		}
		f := Frame{Kind: Line, Start: int64(off), End: int64(off + len(line)), Bytes: line}
		if complete {
			f.End++
		}
		if len(line) > maxLine {
			sum := sha256.Sum256(line)
			f.Kind, f.Bytes, f.Size, f.Complete, f.Sum = Oversized, line[:min(len(line), PrefixBytes)], int64(len(line)), complete, &sum
		}
		out = append(out, f)
		off = int(f.End)
	}
	return out
}

// run frames src with a read buffer of bufSize bytes to start with. A
// size byte with its top bit set makes it, as the agent's reader does
// with shared blocks, Unread the rest after a read that framed something,
// and, at a line start, frame the next complete lines itself with Split
// and Advance past them.
func run(t *testing.T, data, sizes []byte, maxLine, bufSize int) []Frame {
	var f Framer
	f.Reset(0, maxLine)
	f.buf = make([]byte, bufSize)
	src := &chunkSource{data: data, sizes: sizes}
	var out []Frame
	add := func(fr Frame) {
		fr.Bytes = bytes.Clone(fr.Bytes)
		if fr.Sum != nil {
			sum := *fr.Sum
			fr.Sum = &sum
		}
		if n := len(out); n > 0 && fr.Kind == Hole && out[n-1].Kind == Hole && out[n-1].End == fr.Start {
			out[n-1].End = fr.End
			return
		}
		out = append(out, fr)
	}
	for k := 0; ; k++ {
		odd := len(sizes) > 0 && sizes[k%len(sizes)]&0x80 != 0
		if odd && f.AtLineStart() {
			pos := int(f.Pos())
			for {
				k, n := Split(data[pos:], maxLine)
				if k != Line {
					break
				}
				add(Frame{Kind: Line, Start: int64(pos), End: int64(pos + n + 1), Bytes: data[pos : pos+n]})
				pos += n + 1
			}
			f.Advance(int64(pos))
		}
		before := f.Pos()
		n, err := f.Fill(src)
		for fr := f.Next(); fr != nil; fr = f.Next() {
			if fr.End != f.Pos() {
				t.Fatalf("frame %+v ends at %d, Pos is %d", fr, fr.End, f.Pos())
			}
			add(*fr)
		}
		if n == 0 {
			if err != io.EOF {
				t.Fatalf("Fill read nothing: %v", err)
			}
			break
		}
		if odd && f.Pos() > before {
			f.Unread()
		}
	}
	if fr := f.Rest(); fr != nil {
		add(*fr)
	}
	if f.Pos() != int64(len(data)) || f.Buffered() != 0 {
		t.Fatalf("Pos %d, %d bytes buffered after the end; want %d, 0", f.Pos(), f.Buffered(), len(data))
	}
	return out
}

// FuzzFramer checks that a Framer, whatever the reads' sizes, its buffer's
// size, and the lines framed elsewhere, yields the frames of the whole
// data: each line whole up to maxLine, as size, hash and prefix above it,
// holes where lines start with NUL, and the unfinished last line at the
// end, covering every byte once in order.
func FuzzFramer(f *testing.F) {
	f.Add([]byte("a\nbb\n\nccc"), []byte{0, 3, 1}, uint8(40), uint16(16))
	f.Add([]byte(`{"auditID":"x","big":"`+string(bytes.Repeat([]byte("z"), 100))+"\"}\nok\n"), []byte{7}, uint8(40), uint16(64))
	f.Add(bytes.Repeat([]byte("0123456789abcdefghijklmnopqrstuvwxyz\n"), 20), []byte{2, 63, 0x85}, uint8(36), uint16(16))
	f.Add([]byte("\x00\x00\x00a\n\x00\n\x00\x00"), []byte{0, 0x81}, uint8(4), uint16(1))
	f.Add(bytes.Repeat([]byte("x"), 300), []byte{0x7f}, uint8(10), uint16(4000))
	f.Fuzz(func(t *testing.T, data, sizes []byte, maxLine uint8, bufSize uint16) {
		limit, size := int(maxLine), max(int(bufSize)%4096, 1)
		got, want := run(t, data, sizes, limit, size), model(data, limit)
		if len(got) != len(want) {
			t.Fatalf("%d frames, want %d:\n got %s\nwant %s", len(got), len(want), show(got), show(want))
		}
		for i := range got {
			if g, w := got[i], want[i]; g.Kind != w.Kind || g.Start != w.Start || g.End != w.End || !bytes.Equal(g.Bytes, w.Bytes) ||
				g.Size != w.Size || g.Complete != w.Complete || (g.Sum == nil) != (w.Sum == nil) || (g.Sum != nil && *g.Sum != *w.Sum) {
				t.Fatalf("frame %d = %s, want %s", i, show(got[i:i+1]), show(want[i:i+1]))
			}
		}
	})
}

func show(fs []Frame) string {
	var b bytes.Buffer
	for _, f := range fs {
		fmt.Fprintf(&b, "{%d %d-%d %.20q size %d complete %v} ", f.Kind, f.Start, f.End, f.Bytes, f.Size, f.Complete)
	}
	return b.String()
}

// A line of exactly the limit is a line; one byte more is oversized, and
// so is a line whose newline has not been read once more than the limit
// was.
func TestLimit(t *testing.T) {
	var f Framer
	f.Reset(0, 3)
	src := &chunkSource{data: []byte("abc\nabcd\nabcdefgh")}
	var kinds []Kind
	for {
		n, _ := f.Fill(src)
		for fr := f.Next(); fr != nil; fr = f.Next() {
			kinds = append(kinds, fr.Kind)
		}
		if n == 0 {
			break
		}
	}
	if fr := f.Rest(); fr != nil {
		kinds = append(kinds, fr.Kind)
		if fr.Complete || fr.Size != 8 {
			t.Fatalf("last line: %+v, want an incomplete oversized line of 8 bytes", fr)
		}
	}
	if want := []Kind{Line, Oversized, Oversized}; fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("kinds %v, want %v", kinds, want)
	}
}
