package agent

import (
	"bytes"
	"crypto/sha256"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/internal/auditjson"
	"github.com/auditrail/auditrail/internal/redact"
	"github.com/auditrail/auditrail/rules"
	"github.com/prometheus/client_golang/prometheus"
)

// blockSize is how much a block reads at most, and blockLines how many
// lines it holds at most: a line's parsed fields take about 500 bytes, so
// a block of empty or tiny lines would otherwise take 250 times its size.
const (
	blockSize  = 256 << 10
	blockLines = 2048
)

// freeBlocks is how many emptied buffers and line tables of each kind the
// cache keeps for the next blocks.
const freeBlocks = 16

// block is a run of complete lines of one file, read and parsed once and
// shared by every sink's reader that comes by the same offset: sinks that
// keep up with each other read, frame and parse each line once, and their
// batches point into the same bytes instead of holding copies. A block is
// never modified after it is built.
//
// A block counts its holders: the cache, the readers it was handed to and
// the batches that point into it. The last one to let go gives its buffers
// back to the cache for the next block, so that reading does not allocate
// and the collector has little to do. Sinks keep no record after their
// Write returned, and a batch lets go when its writer resets it.
type block struct {
	c          *blockCache
	e          *entry
	start, end int64 // the file range: complete lines, newlines included
	data       []byte
	lines      []blockLine
	buf        []byte // the whole read buffer data is in; nil for a copy
	refs       atomic.Int32
	// tagOnce sets the lines' rules, for the sinks that tag records;
	// sumOnce gives them room for their sums, for the sinks that key
	// records by them.
	tagOnce, sumOnce sync.Once
}

// hold adds a holder.
func (b *block) hold() { b.refs.Add(1) }

// release lets go of the block; the last holder gives its buffers back.
func (b *block) release() {
	if n := b.refs.Add(-1); n > 0 {
		return
	} else if n < 0 {
		panic("agent: block released more often than held")
	}
	b.free()
}

// free gives the block's buffers back to the cache.
func (b *block) free() {
	if b.buf != nil {
		b.c.freeBufs.put(b.buf)
	}
	if cap(b.lines) >= keptTable {
		clear(b.lines)
		b.c.freeTables.put(b.lines[:0])
	}
	b.data, b.lines, b.buf = nil, nil, nil
}

var newline = []byte{'\n'}

// freeList keeps emptied buffers for reuse, up to its capacity.
type freeList[T any] chan T

// get returns a kept buffer, or false if there is none.
func (f freeList[T]) get() (T, bool) {
	select {
	case v := <-f:
		return v, true
	default:
		var zero T
		return zero, false
	}
}

// put keeps v unless the list is full.
func (f freeList[T]) put(v T) {
	select {
	case f <- v:
	default:
	}
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
	// sum holds the SHA-256 of the line once a sink asked for it (see
	// block.lineSum).
	sum *lineSum
}

// lineSum is the SHA-256 of a block's line, computed by the first reader
// that needs it.
type lineSum struct {
	once sync.Once
	sum  [sha256.Size]byte
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

// lineSum returns the SHA-256 of l, an event line of b, for the sinks
// that key their records by it (see sinks.Record.Sum). The first of them
// to take the line hashes it: each line is hashed once however many of
// them read it, and only if one does.
func (b *block) lineSum(l *blockLine) *[sha256.Size]byte {
	b.sumOnce.Do(func() {
		sums := make([]lineSum, len(b.lines))
		for i := range b.lines {
			b.lines[i].sum = &sums[i]
		}
	})
	s := l.sum
	s.once.Do(func() { s.sum = sha256.Sum256(l.line(b)) })
	return &s.sum
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

	// freeBufs and freeTables hold the read buffers (blockSize bytes)
	// and line tables of released blocks.
	freeBufs   freeList[[]byte]
	freeTables freeList[[]blockLine]
	bufsMade   atomic.Int64 // read buffers allocated

	mu       sync.Mutex
	blocks   []*block // oldest first
	bytes    int
	inflight map[blockKey]chan struct{}

	hits, misses prometheus.Counter
}

func newBlockCache(maxLine, maxBytes int, tag *rules.Set, m *metrics) *blockCache {
	return &blockCache{
		maxLine: maxLine, maxBytes: maxBytes, tag: tag, inflight: make(map[blockKey]chan struct{}),
		freeBufs: make(freeList[[]byte], freeBlocks), freeTables: make(freeList[[]blockLine], freeBlocks),
		hits: m.blockReads.WithLabelValues("shared"), misses: m.blockReads.WithLabelValues("read"),
	}
}

// readBuf returns a read buffer of blockSize bytes.
func (c *blockCache) readBuf() []byte {
	if b, ok := c.freeBufs.get(); ok {
		return b
	}
	c.bufsMade.Add(1)
	return make([]byte, blockSize)
}

// get returns a block of e holding the line that starts at off, and the
// index of that line, reading the block from src when no cached block has
// it. The caller holds the block and must release it. It returns nil when
// there is no complete line at off that a block can hold; the caller then
// frames from its own buffer.
func (c *blockCache) get(e *entry, off int64, src framer.Source) (*block, int) {
	key := blockKey{e, off}
	for {
		c.mu.Lock()
		if b, i := c.findLocked(e, off); b != nil {
			b.hold()
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
		b.refs.Store(2) // the cache and the caller
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
		c.blocks[n].release()
		c.blocks[n] = nil
		n++
	}
	if n > 0 {
		c.blocks = append(c.blocks[:0], c.blocks[n:]...)
	}
}

// keptTable is the fewest lines a line table must have room for to be
// kept for reuse. Following a live log, a block often holds a few lines
// and a batch points into hundreds of blocks: a table of such a block is
// made to measure and left to the collector, rather than taken from tables
// with room for hundreds of lines (a 64-line table is 32 KB).
const keptTable = 64

// table returns an empty line table for n lines: a kept one if it has room
// for n lines and at most twice that, else a new one, sized beforehand
// rather than grown by doubling so that tables stay close to what they
// hold.
func (c *blockCache) table(n int) []blockLine {
	if n < keptTable {
		return make([]blockLine, 0, n)
	}
	if t, ok := c.freeTables.get(); ok && cap(t) >= n && cap(t) <= 2*n {
		return t
	}
	return make([]blockLine, 0, (n+keptTable-1)&^(keptTable-1))
}

// read builds the block at off: the complete lines among the next
// blockSize bytes, framed as the readers frame (framer.Split), up to
// blockLines of them and up to the first frame a block does not hold
// (empty lines are held; a hole or a line longer than the limit is not).
func (c *blockCache) read(e *entry, off int64, src framer.Source) *block {
	buf := c.readBuf()
	n, _ := src.ReadAt(buf, off)
	data := buf[:n]
	k := bytes.LastIndexByte(data, '\n')
	if k < 0 {
		c.freeBufs.put(buf)
		return nil
	}
	// The block keeps a full buffer; of a short read (the end of the live
	// file) it keeps a copy of what it holds, not a whole buffer.
	if data = data[:k+1]; len(data) < blockSize/2 {
		data = bytes.Clone(data)
		c.freeBufs.put(buf)
		buf = nil
	}
	b := &block{c: c, e: e, start: off, data: data, buf: buf}
	b.lines = c.table(min(bytes.Count(data, newline), blockLines))
	for pos := 0; pos < len(data) && len(b.lines) < blockLines; {
		k, i := framer.Split(data[pos:], c.maxLine)
		if k != framer.Line {
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
		l.secret = redact.Candidate(line, &l.ev)
	}
	if len(b.lines) == 0 {
		b.free()
		return nil
	}
	last := b.lines[len(b.lines)-1]
	b.end = off + int64(last.off+last.n+1)
	b.data = data[:last.off+last.n+1]
	return b
}
