package agent

import (
	"bytes"
	"sort"
	"sync"

	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/rules"
	"github.com/prometheus/client_golang/prometheus"
)

// blockSize is how much a block reads at most.
const blockSize = 256 << 10

// block is a run of complete lines of one file, read and parsed once and
// shared by every sink's reader that comes by the same offset: sinks that
// keep up with each other read, frame and parse each line once, and their
// batches point into the same bytes instead of holding copies. A block is
// never modified after it is built.
type block struct {
	e          *entry
	start, end int64 // the file range: complete lines, newlines included
	data       []byte
	lines      []blockLine
	// tagOnce sets the lines' rules, for the sinks that tag records.
	tagOnce sync.Once
}

// blockLine is one line of a block: data[off:off+n] without its newline.
type blockLine struct {
	off, n int
	ev     auditjson.Event
	err    error
	// secret is redact.Candidate's answer for the line.
	secret bool
	// rules are the ids of the rules of the cache's tag set that the line
	// matches (see block.tagged).
	rules []string
}

// tagged returns b's lines with their rules set, matching them against
// set the first time it is called.
func (b *block) tagged(set *rules.Set) []blockLine {
	b.tagOnce.Do(func() {
		var matched []*rules.Rule
		for i := range b.lines {
			l := &b.lines[i]
			if l.n == 0 || l.err != nil {
				continue
			}
			l.rules, matched = ruleIDs(set, l.line(b), &l.ev, matched)
		}
	})
	return b.lines
}

func (l *blockLine) line(b *block) []byte {
	return b.data[l.off : l.off+l.n : l.off+l.n]
}

type blockKey struct {
	e   *entry
	off int64
}

// blockCache holds the most recent blocks, up to maxBytes of file data.
// Lines longer than a block, NUL holes and compressed files are not cached:
// readers frame those themselves.
type blockCache struct {
	maxLine  int
	maxBytes int
	// tag is the rule set of the sinks that tag records, if any; the rules
	// each event matches are computed once per block, by the first of
	// those sinks to take it.
	tag *rules.Set

	scratch sync.Pool // *[]byte of blockSize
	// lineScratch holds a block's lines while it is parsed; the block
	// keeps an exact copy, as cached blocks are most of what the agent
	// holds.
	lineScratch sync.Pool // *[]blockLine

	mu       sync.Mutex
	blocks   []*block // oldest first
	bytes    int
	inflight map[blockKey]chan struct{}

	hits, misses prometheus.Counter
}

func newBlockCache(maxLine, maxBytes int, tag *rules.Set, m *metrics) *blockCache {
	return &blockCache{
		maxLine: maxLine, maxBytes: maxBytes, tag: tag, inflight: make(map[blockKey]chan struct{}),
		scratch: sync.Pool{New: func() any { b := make([]byte, blockSize); return &b }},
		hits:    m.blockReads.WithLabelValues("shared"), misses: m.blockReads.WithLabelValues("read"),
	}
}

// get returns a block of e holding the line that starts at off, and the
// index of that line, reading the block from src when no cached block has
// it. It returns nil when there is no complete line at off that a block
// can hold; the caller then frames from its own buffer.
func (c *blockCache) get(e *entry, off int64, src source) (*block, int) {
	key := blockKey{e, off}
	for {
		c.mu.Lock()
		if b, i := c.findLocked(e, off); b != nil {
			c.mu.Unlock()
			c.hits.Inc()
			return b, i
		}
		wait, busy := c.inflight[key]
		if !busy {
			c.inflight[key] = make(chan struct{})
		}
		c.mu.Unlock()
		if !busy {
			break
		}
		<-wait // another reader is reading this block
	}
	b := c.read(e, off, src)
	c.mu.Lock()
	close(c.inflight[key])
	delete(c.inflight, key)
	if b != nil {
		c.addLocked(b)
	}
	c.mu.Unlock()
	if b == nil {
		return nil, 0
	}
	c.misses.Inc()
	return b, 0
}

func (c *blockCache) findLocked(e *entry, off int64) (*block, int) {
	for k := len(c.blocks) - 1; k >= 0; k-- {
		b := c.blocks[k]
		if b.e != e || off < b.start || off >= b.end {
			continue
		}
		rel := int(off - b.start)
		i := sort.Search(len(b.lines), func(i int) bool { return b.lines[i].off >= rel })
		if i < len(b.lines) && b.lines[i].off == rel {
			return b, i
		}
	}
	return nil, 0
}

func (c *blockCache) addLocked(b *block) {
	c.blocks = append(c.blocks, b)
	c.bytes += len(b.data)
	n := 0
	for c.bytes > c.maxBytes && n < len(c.blocks)-1 {
		c.bytes -= len(c.blocks[n].data)
		c.blocks[n] = nil
		n++
	}
	if n > 0 {
		c.blocks = append(c.blocks[:0], c.blocks[n:]...)
	}
}

// read builds the block at off: the complete lines among the next
// blockSize bytes, up to the first line a block does not hold (empty
// lines are held; a line starting with NUL, or longer than the limit, is
// not).
func (c *blockCache) read(e *entry, off int64, src source) *block {
	buf := c.scratch.Get().(*[]byte)
	n, _ := src.read(*buf, off)
	data := (*buf)[:n]
	k := bytes.LastIndexByte(data, '\n')
	if k < 0 {
		c.scratch.Put(buf)
		return nil
	}
	// The block keeps a full buffer; of a short read (the end of the live
	// file) it keeps a copy of what it holds, not a whole buffer.
	if data = data[:k+1]; len(data) < blockSize/2 {
		data = bytes.Clone(data)
		c.scratch.Put(buf)
	}
	lines, _ := c.lineScratch.Get().(*[]blockLine)
	if lines == nil {
		lines = new([]blockLine)
	}
	b := &block{e: e, start: off, data: data, lines: (*lines)[:0]}
	for pos := 0; pos < len(data); {
		if data[pos] == 0 {
			break
		}
		i := bytes.IndexByte(data[pos:], '\n')
		if i > c.maxLine {
			break
		}
		b.lines = append(b.lines, blockLine{off: pos, n: i})
		l := &b.lines[len(b.lines)-1]
		pos += i + 1
		if i == 0 {
			continue
		}
		line := l.line(b)
		if l.err = auditjson.Parse(line, &l.ev); l.err != nil {
			continue
		}
		l.secret = redact.Candidate(line, l.ev.Level)
	}
	*lines = b.lines
	b.lines = append([]blockLine(nil), b.lines...)
	clear(*lines)
	c.lineScratch.Put(lines)
	if len(b.lines) == 0 {
		return nil
	}
	last := b.lines[len(b.lines)-1]
	b.end = off + int64(last.off+last.n+1)
	b.data = data[:last.off+last.n+1]
	return b
}
