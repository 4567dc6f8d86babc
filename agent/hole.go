package agent

// holeAtLineEndLocked reports a truncation that a writer keeping its
// offset hid: the file did not get shorter than the agent saw it, and its
// start was a hole already, but where it ended with a line's end at an
// earlier scan, it now holds NUL. It notes where the file ends with a
// line's end for the next scan. It looks at the two bytes the candidate's
// readContent read (see holeOffsets).
func (t *tracker) holeAtLineEndLocked(e *entry, c *candidate) bool {
	if e.nlAt > 0 {
		if b, ok := c.byteAt(e.nlAt - 1); ok && b == 0 {
			return true
		}
	}
	if c.size > 0 && c.size != e.nlAt {
		if b, ok := c.byteAt(c.size - 1); ok && b == '\n' {
			e.nlAt = c.size
		}
	}
	return false
}

// holeOffsets are the offsets holeAtLineEndLocked looks at for a live
// candidate c of the file e (nil for a new file).
func holeOffsets(e *entry, c *candidate) []int64 {
	offs := []int64{c.size - 1}
	if e != nil && e.nlAt > 0 {
		offs = append(offs, e.nlAt-1)
	}
	return offs
}
