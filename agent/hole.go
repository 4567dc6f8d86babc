package agent

import "bytes"

// isHole reports whether b, a file's first bytes, are NULs only: the hole
// a writer without O_APPEND leaves when the file is truncated under it.
func isHole(b []byte) bool {
	return len(b) > 0 && len(bytes.Trim(b, "\x00")) == 0
}

// holeAtLineEndLocked reports a truncation that a writer keeping its
// offset hid: the file did not get shorter than the agent saw it, and its
// start was a hole already, but where it ended with a line's end at an
// earlier scan, it now holds NUL. It notes where the file ends with a
// line's end for the next scan. It reads at most two bytes.
func (r *registry) holeAtLineEndLocked(e *entry, c *candidate) bool {
	if e.nlAt > 0 {
		if b, ok := c.byteAt(e.h, e.nlAt-1); ok && b == 0 {
			return true
		}
	}
	if c.size > 0 && c.size != e.nlAt {
		if b, ok := c.byteAt(e.h, c.size-1); ok && b == '\n' {
			e.nlAt = c.size
		}
	}
	return false
}

// byteAt reads the byte at off through the candidate's descriptor or the
// one held for it; ok is false when neither is open or off is past the end.
func (c *candidate) byteAt(held *handle, off int64) (b byte, ok bool) {
	f := c.f
	if f == nil && held != nil && held.dev == c.dev && held.ino == c.ino {
		f = held.f
	}
	if off < 0 || off >= c.size {
		return 0, false
	}
	if f == nil {
		// The descriptor held when the directory was listed was
		// released since (the file was just detached): open it again.
		own, err := openAudit(c.path)
		if err != nil {
			return 0, false
		}
		defer own.Close()
		if fi, err := own.Stat(); err != nil || !sameFile(fi, c.dev, c.ino) {
			return 0, false
		}
		f = own
	}
	var buf [1]byte
	n, _ := f.ReadAt(buf[:], off)
	return buf[0], n == 1
}
