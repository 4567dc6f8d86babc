package agent

import (
	"context"
	"log/slog"
	"os"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// lossReason is why a file became unreadable before a sink finished it;
// it is the reason of the gap record a sink receives in its place.
type lossReason string

const (
	lostPruned     lossReason = "pruned"
	lostTruncated  lossReason = "truncated"
	lostReplaced   lossReason = "replaced"
	lostUnreadable lossReason = "unreadable"
)

// entry is one source file known to the tracker. Its ref is immutable;
// the rest is guarded by tracker.mu.
type entry struct {
	ref      *sinks.FileRef
	dev, ino uint64
	fpLen    int
	fp       string
	// head is the file's first fpLen bytes, once read in this run.
	head       []byte
	path       string
	size       int64
	final      bool
	compressed bool
	// plainSize is the uncompressed size of a compressed file, from its
	// gzip trailer; 0 when unknown.
	plainSize int64
	gone      bool
	lost      lossReason
	// bound, set when the file was pruned while live when last seen,
	// bounds what was lost with it.
	bound *lossBound
	// nlAt is a size at which the file ended with a line's end ('\n' at
	// nlAt-1) when verified; 0 when none.
	nlAt int64
	// window, set when the file was copied and truncated in place, is
	// what may have been written between the copy and the truncation.
	window *copyWindow
	// missed counts consecutive scans that did not find the file. A
	// listing races with renames (a file renamed between reading the
	// directory and opening it is in neither place), so a file is only
	// taken as gone when a second listing confirms it.
	missed int
	// suspectSince is when the file vanished in a way that may be
	// tampering; the verdict waits for the directory to settle (see
	// tamperSettle). Zero when there is nothing to decide.
	suspectSince time.Time
	// seenSize and seenMtime are the candidate's stat when its content
	// was last verified: an inode number alone is no identity once the
	// file is not held open (freed inodes are handed out again).
	seenSize  int64
	seenMtime time.Time
	// renamedAt is when the file was first seen under a rotated name
	// while no other file was live: its writer may still be writing.
	renamedAt time.Time
	h         *handle
}

// progress is what the tracker reads of the position table.
type progress interface {
	// finished returns the files finished, immutable sets.
	finished() *doneSets
	// lastEvents returns the time of the latest event acknowledged from
	// each file of seqs.
	lastEvents(seqs []uint64) map[uint64]time.Time
}

// tracker is the file tracker: it finds the live file and its rotated
// siblings, tells them apart by inode and fingerprint, follows their
// names, and holds descriptors open for files that some sink has not
// finished (so pruning cannot take them away). It knows which files are
// finished from the position table (progress) and moves no cursor.
//
// mu guards memory only. Every open, read and close happens without it:
// a scan reads what it needs of the files first, then updates under mu;
// descriptors are opened without mu and adopted under it only if the
// file is still the one planned for (same entry, inode and state);
// descriptors and log lines released under mu are closed and written
// once it is unlocked (later).
type tracker struct {
	log      *slog.Logger
	naming   naming
	livePath string
	maxOpen  int
	m        *metrics
	bell     *bell
	now      func() time.Time
	// table is the position table; read without mu held.
	table progress

	// scanMu serializes scans: between a scan's reads, done without mu,
	// and its update under mu, no other scan changes what it read.
	scanMu sync.Mutex

	mu      sync.Mutex
	entries []*entry // ascending Seq
	bySeq   map[uint64]*entry
	nextSeq uint64
	dirty   bool
	problem sourceProblem
	open    int
	// missingSince is when the live file was first seen missing.
	missingSince time.Time
	// live is the (device, inode) of the live file in the latest listing,
	// liveFound whether it had one; scanned is set after the first scan.
	live      [2]uint64
	liveFound bool
	scanned   bool
	// finished are the files finished, the latest sets read from the
	// table; lasts the latest event acknowledged from the files not
	// final, as of the last scan.
	finished *doneSets
	lasts    map[uint64]time.Time
	// later runs once mu is unlocked: closing descriptors, logging.
	later []func()
	// statsHint is how many files the last stats returned.
	statsHint atomic.Int32
}

func newTracker(livePath string, maxOpen int, st *checkpoint.State, m *metrics, log *slog.Logger, now func() time.Time, b *bell, table progress) *tracker {
	t := &tracker{
		log: log, now: now, naming: newNaming(livePath), livePath: livePath, maxOpen: maxOpen, m: m, bell: b,
		table: table, bySeq: make(map[uint64]*entry), nextSeq: max(st.NextSeq, 1),
	}
	t.finished = table.finished()
	for _, f := range st.Files {
		e := &entry{
			ref: &sinks.FileRef{Seq: f.Seq, ID: f.ID, Path: f.Path},
			dev: f.Dev, ino: f.Ino, fpLen: f.FingerprintLen, fp: f.Fingerprint,
			path: f.Path, size: f.Size, final: f.Final, compressed: f.Compressed,
		}
		t.entries = append(t.entries, e)
		t.bySeq[f.Seq] = e
	}
	sort.Slice(t.entries, func(i, j int) bool { return t.entries[i].ref.Seq < t.entries[j].ref.Seq })
	return t
}

// unlock releases mu, then closes the descriptors and writes the log
// lines released under it.
func (t *tracker) unlock() {
	later := t.later
	t.later = nil
	t.mu.Unlock()
	for _, f := range later {
		f()
	}
}

func (t *tracker) closeLater(f *os.File) {
	t.later = append(t.later, func() {
		fileIO("close")
		f.Close()
	})
}

func (t *tracker) logLater(level slog.Level, msg string, args ...any) {
	t.later = append(t.later, func() { t.log.Log(context.Background(), level, msg, args...) })
}

// heldFiles returns the (device, inode) pairs the tracker holds open.
func (t *tracker) heldFiles() map[[2]uint64]bool {
	t.mu.Lock()
	defer t.unlock()
	held := make(map[[2]uint64]bool, t.open)
	for _, e := range t.entries {
		if e.h != nil && !e.gone {
			held[[2]uint64{e.h.dev, e.h.ino}] = true
		}
	}
	return held
}

// learnLocked takes d as what is finished, unless a later set was taken
// already by a concurrent caller.
func (t *tracker) learnLocked(d *doneSets) {
	if t.finished == nil || d.gen > t.finished.gen {
		t.finished = d
	}
}

func (t *tracker) doneByAllLocked(e *entry) bool {
	return t.finished.all[e.ref.Seq]
}

// scan lists the directory and brings the tracker up to date: renames,
// new files, compressed backups, truncation, inode reuse and pruning. It
// returns the seqs of the files it stopped tracking and the tamper
// records to send.
func (t *tracker) scan() (removed []uint64, tampers []sinks.TamperRecord) {
	t.scanMu.Lock()
	defer t.scanMu.Unlock()
	cands, problem, listed := t.list()
	defer func() {
		for _, c := range cands {
			c.close()
		}
	}()
	var lasts map[uint64]time.Time
	if listed {
		lasts = t.table.lastEvents(t.readCandidates(cands))
	}
	finished := t.table.finished()
	t.mu.Lock()
	t.learnLocked(finished)
	t.lasts = lasts
	t.reportLocked(problem)
	if !listed {
		t.unlock()
		return nil, nil
	}
	removed, tampers = t.updateLocked(cands)
	t.dirty = true
	t.unlock()
	t.holdOpen()
	t.bell.ring()
	return removed, tampers
}

// readCandidates reads, without mu, what updateLocked will look at of
// each candidate: the prefix of every one but those unchanged since
// their content was verified, and the bytes at the end of the live file
// (holeAtLineEndLocked). It returns the seqs of the files not final,
// whose loss is bounded if they are found gone (boundLossLocked).
func (t *tracker) readCandidates(cands []*candidate) (unfinal []uint64) {
	type plan struct {
		prefix bool
		offs   []int64
	}
	plans := make([]plan, len(cands))
	t.mu.Lock()
	byIno := t.byInoLocked()
	first := make(map[*entry]bool, len(cands))
	for i, c := range cands {
		e := byIno[[2]uint64{c.dev, c.ino}]
		if e != nil && (first[e] || e.compressed != c.gz) {
			e = nil
		}
		if e != nil {
			first[e] = true
		}
		plans[i].prefix = e == nil || !t.unchangedLocked(e, c)
		if c.name == t.naming.base && !c.gz {
			plans[i].offs = holeOffsets(e, c)
		}
		if c.f == nil {
			c.held = t.pinLocked(c.dev, c.ino)
		}
	}
	for _, e := range t.entries {
		if !e.final && !e.gone {
			unfinal = append(unfinal, e.ref.Seq)
		}
	}
	t.unlock()
	for i, c := range cands {
		c.readContent(plans[i].prefix, plans[i].offs)
	}
	t.mu.Lock()
	for _, c := range cands {
		if c.held != nil {
			t.unpinLocked(c.held)
			c.held = nil
		}
	}
	t.unlock()
	return unfinal
}

// byInoLocked maps the (device, inode) of every file still on disk to it.
func (t *tracker) byInoLocked() map[[2]uint64]*entry {
	byIno := make(map[[2]uint64]*entry, len(t.entries))
	for _, e := range t.entries {
		if !e.gone {
			byIno[[2]uint64{e.dev, e.ino}] = e
		}
	}
	return byIno
}

// updateLocked matches the candidates to the files the tracker knows.
func (t *tracker) updateLocked(cands []*candidate) (removed []uint64, tampers []sinks.TamperRecord) {
	matched := make(map[*entry]bool, len(t.entries))
	byIno := t.byInoLocked()
	t.liveFound = false
	for _, c := range cands {
		if c.name == t.naming.base && !c.gz {
			t.live, t.liveFound = [2]uint64{c.dev, c.ino}, true
		}
	}
	defer func() { t.scanned = true }()
	var rest []*candidate
	for _, c := range cands {
		e := byIno[[2]uint64{c.dev, c.ino}]
		if e == nil || matched[e] || e.compressed != c.gz {
			rest = append(rest, c)
			continue
		}
		if reason := t.verifyLocked(e, c); reason != "" {
			t.detachLocked(e, reason)
			rest = append(rest, c)
			continue
		}
		t.refreshLocked(e, c)
		matched[e] = true
	}
	for _, c := range rest {
		e, alias := t.matchFingerprintLocked(c, matched)
		switch {
		case alias:
			// A copy of a file still present under its own inode
			// (copytruncate in progress): it holds nothing new.
		case e != nil:
			t.attachLocked(e, c)
			matched[e] = true
		case t.copyingLocked(c):
			// Looked at again on the next scan.
		case !t.identifiableLocked(c):
			// Looked at again once its first line is complete.
		default:
			matched[t.addLocked(c)] = true
		}
	}
	for _, e := range t.entries {
		switch {
		case matched[e]:
			e.missed = 0
		case !e.gone:
			if e.missed++; e.missed >= goneAfterScans {
				t.markGoneLocked(e)
				if e.lost == lostPruned && !e.final {
					e.bound = t.boundLossLocked(e)
				}
			}
		}
	}
	tampers = t.settleLocked()
	return t.removeFinishedLocked(), tampers
}

// next returns the first file after seq that done does not hold, or nil.
func (t *tracker) next(afterSeq uint64, done map[uint64]bool) *entry {
	t.mu.Lock()
	defer t.unlock()
	for _, e := range t.entries {
		if e.ref.Seq > afterSeq && !done[e.ref.Seq] {
			return e
		}
	}
	return nil
}

// fileView is a reader's snapshot of an entry.
type fileView struct {
	h        *handle
	final    bool
	gone     bool
	lost     lossReason
	size     int64
	path     string
	lastTime string
	bound    *lossBound
	window   *copyWindow
}

// view returns e as it stands, without lastTime.
func (t *tracker) view(e *entry) fileView {
	t.mu.Lock()
	defer t.unlock()
	return fileView{h: e.h, final: e.final, gone: e.gone, lost: e.lost, size: e.size, path: e.path, bound: e.bound, window: e.window}
}

// takeDirty reports whether a scan ran since the last call.
func (t *tracker) takeDirty() bool {
	t.mu.Lock()
	defer t.unlock()
	d := t.dirty
	t.dirty = false
	return d
}

// identity is e's checkpoint record, without cursors.
func (e *entry) identity() checkpoint.File {
	return checkpoint.File{
		Seq: e.ref.Seq, ID: e.ref.ID, Dev: e.dev, Ino: e.ino, FingerprintLen: e.fpLen, Fingerprint: e.fp,
		Path: e.path, Size: e.size, Final: e.final, Compressed: e.compressed,
	}
}

// identities returns the checkpoint records of the files with the given
// seqs that the tracker tracks, without cursors.
func (t *tracker) identities(seqs []uint64) []checkpoint.File {
	t.mu.Lock()
	defer t.unlock()
	out := make([]checkpoint.File, 0, len(seqs))
	for _, seq := range seqs {
		e := t.bySeq[seq]
		if e == nil || containsSeq(out, seq) {
			continue
		}
		out = append(out, e.identity())
	}
	return out
}

func containsSeq(fs []checkpoint.File, seq uint64) bool {
	for _, f := range fs {
		if f.Seq == seq {
			return true
		}
	}
	return false
}

// fileStat is what the tracker knows of a file, for the checkpoint, the
// gauges and the caught-up check.
type fileStat struct {
	checkpoint.File
	gone bool
}

// stats returns every tracked file, ascending seq, and the next seq.
func (t *tracker) stats() ([]fileStat, uint64) {
	out := make([]fileStat, 0, t.statsHint.Load()+2) // rarely grown with the lock held
	t.mu.Lock()
	defer t.unlock()
	t.statsHint.Store(int32(len(t.entries)))
	for _, e := range t.entries {
		out = append(out, fileStat{File: e.identity(), gone: e.gone})
	}
	return out, t.nextSeq
}

// entry returns the file with seq, or nil.
func (t *tracker) entry(seq uint64) *entry {
	t.mu.Lock()
	defer t.unlock()
	return t.bySeq[seq]
}
