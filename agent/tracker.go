package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sort"
	"sync"
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

// handle is an open descriptor shared by the readers of one file. It is
// closed when no reader holds it and the tracker no longer needs it.
// Guarded by tracker.mu.
type handle struct {
	f        *os.File
	gz       bool
	dev, ino uint64 // of the open file, which may not be the entry's own (a .gz attached while the plain file is held)
	refs     int
	orphan   bool
}

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
	// finished are the files finished, the latest sets read from the
	// table; lasts the latest event acknowledged from the files not
	// final, as of the last scan.
	finished *doneSets
	lasts    map[uint64]time.Time
	// later runs once mu is unlocked: closing descriptors, logging.
	later []func()
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

// pinLocked returns the descriptor held for (dev, ino), kept open until
// unpinLocked, or nil.
func (t *tracker) pinLocked(dev, ino uint64) *handle {
	for _, e := range t.entries {
		if e.h != nil && !e.gone && e.h.dev == dev && e.h.ino == ino {
			e.h.refs++
			return e.h
		}
	}
	return nil
}

func (t *tracker) unpinLocked(h *handle) {
	h.refs--
	if h.refs == 0 && h.orphan {
		t.closeLater(h.f)
	}
}

// updateLocked matches the candidates to the files the tracker knows.
func (t *tracker) updateLocked(cands []*candidate) (removed []uint64, tampers []sinks.TamperRecord) {
	matched := make(map[*entry]bool, len(t.entries))
	byIno := t.byInoLocked()
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

// goneAfterScans is how many consecutive listings must miss a file before
// it is taken as gone.
const goneAfterScans = 2

// tamperSettle is how long a file that vanished may wait for the verdict
// on whether that was tampering. kube-apiserver's lumberjack removes the
// backups of one pruning pass newest first, so a newer backup is gone for
// a moment while older ones remain; and a rotated file turns up under its
// compressed name only once it is compressed.
const tamperSettle = 3 * time.Second

// missingGrace is how long the live file may be absent before it is
// reported: a rotation leaves it missing for a moment.
const missingGrace = 5 * time.Second

func (t *tracker) reportLocked(p sourceProblem) {
	if p.state == sourceMissing {
		if t.missingSince.IsZero() {
			t.missingSince = t.now()
		}
		if t.now().Sub(t.missingSince) < missingGrace && t.problem == (sourceProblem{}) {
			return
		}
	} else {
		t.missingSince = time.Time{}
	}
	if p == t.problem {
		return
	}
	if p.state != sourceOK {
		t.logLater(slog.LevelWarn, "audit log unavailable; retrying", "problem", p.detail)
		t.m.sourceUp.Set(0)
	} else {
		t.logLater(slog.LevelInfo, "audit log available", "path", t.livePath)
		t.m.sourceUp.Set(1)
	}
	t.problem = p
}

// unchangedLocked reports whether c, at e's inode, is a rotated file whose
// size and modification time are those it had when its content was last
// verified: it is taken as e without reading it.
func (t *tracker) unchangedLocked(e *entry, c *candidate) bool {
	if !c.gz && c.size < e.size {
		return false
	}
	return c.name != t.naming.base && c.size == e.seenSize && c.mtime.Equal(e.seenMtime)
}

// verifyLocked checks that the candidate at e's inode still holds e's
// content. It returns why not, or "".
func (t *tracker) verifyLocked(e *entry, c *candidate) lossReason {
	if !c.gz && c.size < e.size {
		return lostTruncated
	}
	if t.unchangedLocked(e, c) {
		return ""
	}
	live := c.name == t.naming.base
	prefix := c.prefix
	if e.fpLen > 0 && (len(prefix) < e.fpLen || fingerprint(prefix[:e.fpLen]) != e.fp) {
		if !c.gz && len(prefix) < e.fpLen && int64(len(prefix)) == c.size {
			return lostTruncated
		}
		if !c.gz && isHole(prefix) {
			// Truncated, then written again by a writer that kept its
			// offset: the start is now a hole of NUL bytes.
			return lostTruncated
		}
		return lostReplaced
	}
	if live && !c.gz && t.holeAtLineEndLocked(e, c) {
		return lostTruncated
	}
	if len(prefix) > e.fpLen {
		e.fpLen, e.fp = len(prefix), fingerprint(prefix)
	}
	e.head = prefix[:e.fpLen]
	if !live {
		e.seenSize, e.seenMtime = c.size, c.mtime
	}
	return ""
}

// identifiableLocked reports whether c holds enough to be told apart from
// any other file that had or will have its inode: its whole first line, a
// fingerprint's worth of bytes, or all it will ever hold (a rotated or
// compressed file). A file's id is made from its inode and the digest of
// what it held when first seen; from an empty file or half a line (every
// audit line starts with the same 70 bytes) that digest tells nothing.
func (t *tracker) identifiableLocked(c *candidate) bool {
	if c.gz || c.name != t.naming.base {
		return true
	}
	return len(c.prefix) == fingerprintSize || bytes.IndexByte(c.prefix, '\n') >= 0
}

// copyingLocked reports whether c, a file under a rotated name that no
// fingerprint matched, holds less than a fingerprint and nothing but the
// start of a known file: copytruncate's copy while it is being written.
// Until it holds a fingerprint's worth of bytes, which matchFingerprintLocked
// then tells apart, it is not taken for a new file, which would ship its
// content a second time.
func (t *tracker) copyingLocked(c *candidate) bool {
	if c.gz || c.name == t.naming.base || c.size >= fingerprintSize {
		return false
	}
	for _, e := range t.entries {
		if len(e.head) > 0 && len(e.head) >= len(c.prefix) && bytes.HasPrefix(e.head, c.prefix) {
			return true
		}
	}
	return false
}

// matchFingerprintLocked finds the entry whose content c continues, by
// fingerprint: a compressed backup, a copy, a file moved across devices.
// alias is true when c duplicates an entry already matched in this scan.
func (t *tracker) matchFingerprintLocked(c *candidate, matched map[*entry]bool) (best *entry, alias bool) {
	prefix := c.prefix
	if len(prefix) == 0 || isHole(prefix) {
		return nil, false // NUL bytes are the start of any truncated file
	}
	for _, e := range t.entries {
		if e.fpLen == 0 || e.fpLen > len(prefix) || fingerprint(prefix[:e.fpLen]) != e.fp {
			continue
		}
		if matched[e] {
			if !c.gz && c.name != t.naming.base {
				return nil, true
			}
			continue
		}
		if best == nil || e.fpLen > best.fpLen {
			best = e
		}
	}
	return best, false
}

// refreshLocked updates e from c, found at e's inode.
func (t *tracker) refreshLocked(e *entry, c *candidate) {
	if c.path != e.path {
		if e.path == t.livePath {
			t.m.rotations.Inc()
			t.logLater(slog.LevelDebug, "audit log rotated", "file", e.ref.ID, "to", c.path)
		}
		e.path = c.path
	}
	if c.name != t.naming.base {
		e.final = true
	}
	if !c.gz {
		e.size = c.size
	}
	if e.h == nil && c.f != nil && !t.doneByAllLocked(e) && t.open < t.maxOpen {
		t.adoptLocked(e, c.take(), c.gz, c.dev, c.ino)
	}
}

// adoptLocked makes f e's handle.
func (t *tracker) adoptLocked(e *entry, f *os.File, gz bool, dev, ino uint64) {
	e.h = &handle{f: f, gz: gz, dev: dev, ino: ino}
	t.open++
	t.m.openFiles.Set(float64(t.open))
}

func (t *tracker) attachLocked(e *entry, c *candidate) {
	t.logLater(slog.LevelDebug, "file found under a new name", "file", e.ref.ID, "path", c.path, "compressed", c.gz)
	if e.lost == lostTruncated && !c.gz && c.name != t.naming.base {
		// copytruncate: the live file's content turned up in a copy.
		e.window = &copyWindow{copyEnd: c.size, liveEnd: e.size}
		t.m.rotations.Inc()
		t.logLater(slog.LevelInfo, "audit log copied and truncated", "file", e.ref.ID, "to", c.path)
	}
	// A held descriptor on the uncompressed file keeps serving the same
	// content when the file turns up compressed; otherwise read the new one.
	if e.h != nil && e.compressed == c.gz {
		t.dropHandleLocked(e)
	}
	e.dev, e.ino, e.path, e.compressed = c.dev, c.ino, c.path, c.gz
	if c.plainSize > 0 {
		e.plainSize = c.plainSize
	}
	e.gone, e.lost = false, ""
	if c.name != t.naming.base {
		e.final = true
	}
	if !c.gz && c.size > e.size {
		e.size = c.size
	}
	if e.h == nil && c.f != nil && !t.doneByAllLocked(e) {
		t.adoptLocked(e, c.take(), c.gz, c.dev, c.ino)
	}
}

func (t *tracker) addLocked(c *candidate) *entry {
	prefix := c.prefix
	fp := ""
	if len(prefix) > 0 {
		fp = fingerprint(prefix)
	}
	short := fp
	if isHole(prefix) {
		// A hole's digest is every hole's: tell this one apart by its seq.
		short = fingerprint(fmt.Appendf(prefix, "seq %d", t.nextSeq))
	}
	if len(short) > 16 {
		short = short[:16]
	}
	e := &entry{
		ref: &sinks.FileRef{Seq: t.nextSeq, ID: fmt.Sprintf("%d-%d-%s", c.dev, c.ino, short), Path: c.path},
		dev: c.dev, ino: c.ino, fpLen: len(prefix), fp: fp, head: prefix, path: c.path,
		final: c.name != t.naming.base || c.gz, compressed: c.gz, plainSize: c.plainSize,
	}
	if !c.gz {
		e.size = c.size
	}
	if c.name == t.naming.base && !c.gz {
		t.holeAtLineEndLocked(e, c) // notes where it ends with a line's end
	}
	if c.f != nil && t.open < t.maxOpen {
		t.adoptLocked(e, c.take(), c.gz, c.dev, c.ino)
	}
	t.nextSeq++
	t.entries = append(t.entries, e)
	t.bySeq[e.ref.Seq] = e
	t.m.filesDiscovered.Inc()
	t.logLater(slog.LevelInfo, "new audit file", "file", e.ref.ID, "path", c.path, "seq", e.ref.Seq)
	return e
}

// markGoneLocked notes that e is no longer on disk. A held descriptor keeps
// it readable; otherwise what no sink read of it is lost. Whether its
// going was tampering is decided once the directory settled
// (settleLocked).
func (t *tracker) markGoneLocked(e *entry) {
	e.gone = true
	if e.h == nil && !t.doneByAllLocked(e) {
		e.lost = lostPruned
		t.logLater(slog.LevelWarn, "audit file removed before every sink read it", "file", e.ref.ID, "path", e.path)
	}
	if t.tamperLocked(e) != "" {
		e.suspectSince = t.now()
	}
}

// tamperLocked returns the tamper reason for e having vanished as things
// stand, or "" if that is how kube-apiserver rotates and prunes: the live
// file must be renamed, not removed, and backups go oldest first.
func (t *tracker) tamperLocked(e *entry) string {
	switch {
	case !e.gone:
		return ""
	case e.path == t.livePath:
		return sinks.TamperDeleted
	case t.olderPresentLocked(e):
		return sinks.TamperDeletedOutOfOrder
	}
	return ""
}

// settleLocked gives the verdict on every file that vanished suspiciously
// at least tamperSettle ago: if it still looks like tampering (the live
// file's content turned up under no other name, or an older backup is
// still there), it returns a tamper record for every sink.
func (t *tracker) settleLocked() []sinks.TamperRecord {
	now := t.now()
	var out []sinks.TamperRecord
	for _, e := range t.entries {
		if e.suspectSince.IsZero() || now.Sub(e.suspectSince) < tamperSettle {
			continue
		}
		e.suspectSince = time.Time{}
		var r sinks.TamperRecord
		switch t.tamperLocked(e) {
		case sinks.TamperDeleted:
			r = newTamper(sinks.TamperDeleted, "the live audit log disappeared without being rotated: its content is under no name in the directory", now)
		case sinks.TamperDeletedOutOfOrder:
			r = newTamper(sinks.TamperDeletedOutOfOrder, "a rotated audit file disappeared while older ones remain; kube-apiserver prunes the oldest first", now)
		default:
			continue
		}
		r.File, r.Size = &sinks.FileInfo{ID: e.ref.ID, Path: e.path}, e.size
		out = append(out, r)
	}
	return out
}

// olderPresentLocked reports whether a file older than e is still on disk.
func (t *tracker) olderPresentLocked(e *entry) bool {
	for _, o := range t.entries {
		if o.ref.Seq < e.ref.Seq && !o.gone && o.path != t.livePath {
			return true
		}
	}
	return false
}

// detachLocked retires e because its inode now holds other content.
func (t *tracker) detachLocked(e *entry, reason lossReason) {
	t.logLater(slog.LevelWarn, "audit file changed outside a normal rotation", "file", e.ref.ID, "path", e.path, "reason", reason)
	t.dropHandleLocked(e)
	e.gone, e.lost = true, reason
	if t.doneByAllLocked(e) {
		e.lost = ""
	}
}

// removeFinished releases the files every sink finished and stops
// tracking those gone from disk, whose seqs it returns.
func (t *tracker) removeFinished() []uint64 {
	finished := t.table.finished()
	t.mu.Lock()
	defer t.unlock()
	t.learnLocked(finished)
	return t.removeFinishedLocked()
}

func (t *tracker) removeFinishedLocked() (removed []uint64) {
	kept := t.entries[:0]
	for _, e := range t.entries {
		if t.doneByAllLocked(e) {
			t.dropHandleLocked(e)
			if e.gone && e.suspectSince.IsZero() {
				delete(t.bySeq, e.ref.Seq)
				removed = append(removed, e.ref.Seq)
				continue
			}
		}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(t.entries); i++ {
		t.entries[i] = nil
	}
	t.entries = kept
	return removed
}

// wantOpen is a descriptor to open without the lock, for an entry as it
// was when planned.
type wantOpen struct {
	e        *entry
	path     string
	gz       bool
	dev, ino uint64
}

func wantOpenOf(e *entry) wantOpen {
	return wantOpen{e: e, path: e.path, gz: e.compressed, dev: e.dev, ino: e.ino}
}

// holdOpen opens descriptors for unfinished files, oldest first, up to
// maxOpen, so that a file pruned while a sink is behind stays readable.
func (t *tracker) holdOpen() {
	tried := make(map[*entry]bool)
	for {
		finished := t.table.finished()
		t.mu.Lock()
		t.learnLocked(finished)
		var want []wantOpen
		for _, e := range t.entries {
			if t.open+len(want) >= t.maxOpen {
				break
			}
			if e.h == nil && !e.gone && !t.doneByAllLocked(e) && !tried[e] {
				tried[e] = true
				want = append(want, wantOpenOf(e))
			}
		}
		t.unlock()
		if len(want) == 0 {
			return
		}
		failed := false
		for _, w := range want {
			if !t.openFor(w, true) {
				failed = true
			}
		}
		if !failed {
			return
		}
	}
}

// openFor opens w's file and makes it w.e's handle if w.e is still the
// file planned for and still needs one; hold asks for holdOpen's
// conditions (unfinished, within maxOpen), else acquire's (not lost). It
// reports whether the open succeeded.
func (t *tracker) openFor(w wantOpen, hold bool) bool {
	f, problem := openIdentified(w.path, w.dev, w.ino)
	t.mu.Lock()
	defer t.unlock()
	if problem != (sourceProblem{}) {
		t.reportLocked(problem)
	}
	if f == nil {
		return false
	}
	e := w.e
	ok := t.bySeq[e.ref.Seq] == e && e.h == nil && !e.gone && e.dev == w.dev && e.ino == w.ino && e.compressed == w.gz
	if hold {
		ok = ok && !t.doneByAllLocked(e) && t.open < t.maxOpen
	} else {
		ok = ok && e.lost == ""
	}
	if !ok {
		t.closeLater(f)
		return true
	}
	t.adoptLocked(e, f, w.gz, w.dev, w.ino)
	return true
}

// openIdentified opens path if it is still the file (dev, ino). The
// problem is set when it could not be opened for lack of permission.
func openIdentified(path string, dev, ino uint64) (*os.File, sourceProblem) {
	fileIO("open")
	f, err := openAudit(path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return nil, brokenSource("open %s: permission denied", path)
		}
		return nil, sourceProblem{}
	}
	fi, err := f.Stat()
	if err != nil || !sameFile(fi, dev, ino) {
		f.Close() // replaced since the scan; the next scan sorts it out
		return nil, sourceProblem{}
	}
	return f, sourceProblem{}
}

func (t *tracker) dropHandleLocked(e *entry) {
	if e.h == nil {
		return
	}
	h := e.h
	e.h = nil
	t.open--
	t.m.openFiles.Set(float64(t.open))
	if h.refs == 0 {
		t.closeLater(h.f)
	} else {
		h.orphan = true
	}
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

// acquire returns a handle to read e, opening it if needed, or nil when e
// cannot be read.
func (t *tracker) acquire(e *entry) *handle {
	t.mu.Lock()
	if e.h == nil && !e.gone && e.lost == "" {
		w := wantOpenOf(e)
		t.unlock()
		t.openFor(w, false)
		t.mu.Lock()
	}
	defer t.unlock()
	if e.h == nil {
		return nil
	}
	e.h.refs++
	return e.h
}

func (t *tracker) release(h *handle) {
	t.mu.Lock()
	defer t.unlock()
	t.unpinLocked(h)
}

// closeAll releases every descriptor.
func (t *tracker) closeAll() {
	t.mu.Lock()
	defer t.unlock()
	for _, e := range t.entries {
		t.dropHandleLocked(e)
	}
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
	out := make([]fileStat, 0, 32) // rarely grown with the lock held
	t.mu.Lock()
	defer t.unlock()
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

// onlyPartialLine reports whether the file seq holds no newline after
// off, read through the descriptor held for it, pinned for the read.
func (t *tracker) onlyPartialLine(seq uint64, off int64) bool {
	t.mu.Lock()
	e := t.bySeq[seq]
	if e == nil || e.h == nil || e.h.gz || e.size-off > 64<<10 {
		t.unlock()
		return false
	}
	h, size := e.h, e.size
	h.refs++
	t.unlock()
	defer t.release(h)
	fileIO("read tail")
	buf := make([]byte, size-off)
	n, _ := h.f.ReadAt(buf, off)
	return bytes.IndexByte(buf[:n], '\n') < 0
}
