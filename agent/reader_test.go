package agent

import (
	"context"
	"io"
	"os"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/auditrail/auditrail/agent/internal/framer"
	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// pread is one read of an audit file by a reader.
type pread struct {
	at  time.Time
	ino uint64
	off int64
	n   int
}

// preads records the reads of a reader's sources.
type preads struct {
	mu   sync.Mutex
	list []pread
}

func (p *preads) open(h *handle, off int64) (framer.Source, error) {
	src, err := openSource(h, off)
	if err != nil {
		return nil, err
	}
	return countedSource{src, h.ino, p}, nil
}

func (p *preads) all() []pread {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]pread(nil), p.list...)
}

type countedSource struct {
	src framer.Source
	ino uint64
	p   *preads
}

func (s countedSource) ReadAt(b []byte, off int64) (int, error) {
	n, err := s.src.ReadAt(b, off)
	s.p.mu.Lock()
	s.p.list = append(s.p.list, pread{at: time.Now(), ino: s.ino, off: off, n: n})
	s.p.mu.Unlock()
	return n, err
}

// handed is a batch as the writer received it.
type handed struct {
	at, started time.Time
	records     int
	end         int64 // where its last segment ends
}

// followRun is one sink's reader following e's live file, in a synctest
// bubble: the test appends and rings the registry itself, the way the
// watcher does on a write, and time is the bubble's.
type followRun struct {
	reg     *registry
	reads   *preads
	batches chan handed
	stop    func()
}

func startFollow(t *testing.T, e *env, batch BatchOptions) *followRun {
	t.Helper()
	m := newMetrics(nil)
	reg := newRegistry(e.live, []string{"s"}, 16, &checkpoint.State{}, m, testLogger(), time.Now)
	reg.scan()
	out := make(chan *batchBuf)
	free := make(chan *batchBuf, 2)
	free <- &batchBuf{}
	free <- &batchBuf{}
	reads := &preads{}
	r := newReader("s", reg, m, readerOptions{
		log: testLogger(), now: time.Now, maxLine: 1 << 20, batch: batch, poll: time.Hour,
		out: out, free: free,
	})
	r.open = reads.open
	ctx, cancel := context.WithCancel(context.Background())
	fr := &followRun{reg: reg, reads: reads, batches: make(chan handed, 1000)}
	var wg sync.WaitGroup
	wg.Go(func() { r.run(ctx, context.Background()) })
	wg.Go(func() {
		for b := range out {
			h := handed{at: time.Now(), started: b.started, records: len(b.Records)}
			if n := len(b.Segments); n > 0 {
				h.end = b.Segments[n-1].End
			}
			fr.batches <- h
			b.reset()
			free <- b
		}
		close(fr.batches)
	})
	fr.stop = func() {
		cancel()
		wg.Wait()
		reg.files.closeAll()
	}
	return fr
}

// A reader that is caught up with the live file reads the appends of a
// writer that writes every 10 ms at most once per readInterval, at the
// multiples of it, besides the read that starts a batch and the read that
// ends one when it is due: and a due batch holds every line written before
// its deadline.
func TestCaughtUpReaderReadsOncePerInterval(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.live, event(0))
	synctest.Test(t, func(t *testing.T) {
		// Off the clock's ticks, so that a deadline is not also a tick.
		const flush = 1050 * time.Millisecond
		start := time.Now()
		run := startFollow(t, e, BatchOptions{MaxEvents: 1 << 20, MaxBytes: 1 << 30, FlushInterval: flush})
		synctest.Wait()
		type size struct {
			at   time.Time
			size int64
		}
		var sizes []size
		const writes = 300 // 3 s
		// Write off the clock's ticks.
		time.Sleep(3 * time.Millisecond)
		for i := 1; i <= writes; i++ {
			appendLines(t, e.live, event(i))
			fi, err := os.Stat(e.live)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, size{time.Now(), fi.Size()})
			run.reg.grew()
			time.Sleep(10 * time.Millisecond)
		}
		time.Sleep(2 * flush)
		run.stop()

		var got []handed
		records := 0
		for b := range run.batches {
			got = append(got, b)
			records += b.records
		}
		if records != writes+1 {
			t.Fatalf("%d records shipped, want %d", records, writes+1)
		}
		// Every read is at a tick, at the start of a batch, or at its
		// deadline.
		starts, dues := make(map[time.Time]bool), make(map[time.Time]bool)
		for _, b := range got {
			starts[b.started] = true
			dues[b.started.Add(flush)] = true
			if b.at.Sub(b.started) > flush {
				t.Errorf("batch started at %v handed on at %v: held past its flush interval", b.started.Sub(start), b.at.Sub(start))
			}
			// Due: every line written before the deadline is in it.
			var want int64
			for _, s := range sizes {
				if s.at.Before(b.at) {
					want = s.size
				}
			}
			if b.end < want {
				t.Errorf("batch handed on at %v ends at %d; %d bytes were written before", b.at.Sub(start), b.end, want)
			}
		}
		reads := make(map[time.Time]bool)
		ticks := make(map[time.Time]int)
		for _, p := range run.reads.all() {
			if reads[p.at] {
				continue
			}
			reads[p.at] = true
			if starts[p.at] || dues[p.at] {
				continue
			}
			tick := p.at.Truncate(readInterval)
			if ticks[tick]++; ticks[tick] > 1 || !p.at.Equal(tick) {
				t.Errorf("read at %v: neither at a multiple of %v, the start of a batch nor its deadline", p.at.Sub(start), readInterval)
			}
		}
		// 3 s of writes: 15 ticks, and the start and the deadline of
		// each batch.
		if max := int(3*time.Second/readInterval) + 1 + 2*len(got); len(reads) > max {
			t.Errorf("read %d times for %d writes, want at most %d", len(reads), writes, max)
		}
		t.Logf("%d writes read in %d reads, %d batches", writes, len(reads), len(got))
	})
}

// A reader that holds appends for the next tick does not hold a rotation:
// the rotated file is read to its end and the new live file read as soon
// as the scan has seen them.
func TestRotationNotHeldBack(t *testing.T) {
	e := newEnv(t)
	appendLines(t, e.live, event(0))
	synctest.Test(t, func(t *testing.T) {
		run := startFollow(t, e, BatchOptions{MaxEvents: 1 << 20, MaxBytes: 1 << 30, FlushInterval: time.Hour})
		synctest.Wait()
		time.Sleep(3 * time.Millisecond)
		appendLines(t, e.live, event(1)) // the batch is no longer empty: appends wait
		run.reg.grew()
		synctest.Wait()
		time.Sleep(10 * time.Millisecond)
		appendLines(t, e.live, event(2))
		run.reg.grew()
		synctest.Wait()
		// lumberjack: rename, then create.
		backup := lumberjackName(e.dir, time.Now())
		if err := os.Rename(e.live, backup); err != nil {
			t.Fatal(err)
		}
		appendLines(t, e.live, event(3))
		oldIno, newIno := inode(t, backup), inode(t, e.live)
		rotated := time.Now()
		run.reg.scan()
		synctest.Wait()
		var old, live bool
		for _, p := range run.reads.all() {
			if !p.at.Equal(rotated) {
				continue
			}
			old = old || p.ino == oldIno
			live = live || p.ino == newIno
		}
		if !old || !live {
			t.Errorf("when the rotation was seen: read the rotated file %v, the new live file %v; want both", old, live)
		}
		run.stop()
		records := 0
		for b := range run.batches {
			records += b.records
		}
		if records != 4 {
			t.Errorf("%d records shipped, want 4", records)
		}
	})
}

func inode(t *testing.T, path string) uint64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	_, ino := devIno(fi)
	return ino
}

// growingSource is a file being appended to: only its first limit bytes
// can be read.
type growingSource struct {
	data  []byte
	limit int
}

func (s *growingSource) ReadAt(p []byte, off int64) (int, error) {
	if int(off) >= s.limit {
		return 0, io.EOF
	}
	return copy(p, s.data[off:s.limit]), nil
}

// A reader that shares blocks with other sinks' readers and had to frame
// alone the end of a line it first found in part (the end of the live
// file read during a write) takes the lines after it from a block again,
// instead of framing alone all it read with it.
func TestSharedReaderBackToBlocks(t *testing.T) {
	var data []byte
	for i := range 10 {
		data = append(data, event(i)...)
		data = append(data, '\n')
	}
	first := len(event(0)) + 1
	m := newMetrics(nil)
	reg := newRegistry("/nonexistent/audit.log", []string{"s"}, 1, &checkpoint.State{}, m, testLogger(), time.Now)
	free := make(chan *batchBuf, 1)
	free <- &batchBuf{}
	r := newReader("s", reg, m, readerOptions{
		log: testLogger(), now: time.Now, maxLine: 1 << 20, poll: time.Second,
		batch: BatchOptions{MaxEvents: 1 << 30, MaxBytes: 1 << 30, FlushInterval: time.Hour},
		out:   make(chan *batchBuf, 1), free: free,
		blocks: newBlockCache(1<<20, 1<<20, nil, m),
	})
	r.takeBatch(context.Background())
	e := &entry{ref: &sinks.FileRef{Seq: 1, ID: "f"}}
	src := &growingSource{data: data, limit: first / 2}
	r.fr.Reset(0, 1<<20)
	readAll := func() {
		for {
			if n, _, _ := r.step(context.Background(), e, src, false); n == 0 {
				return
			}
		}
	}
	readAll()
	src.limit = len(data)
	readAll()
	if len(r.cur.Records) != 10 {
		t.Fatalf("%d records, want 10", len(r.cur.Records))
	}
	r.blocks.mu.Lock()
	b, i := r.blocks.findLocked(e, int64(first))
	r.blocks.mu.Unlock()
	if b == nil || i != 0 || b.end != int64(len(data)) {
		t.Fatalf("no block holds the lines after the first, read in part: the reader framed them alone")
	}
	for _, rec := range r.cur.Records[1:] {
		if rec.Event != &b.lines[(rec.Offset-b.start)/int64(first)].ev {
			t.Fatalf("record at %d not taken from the block", rec.Offset)
		}
	}
}
