package agent

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/auditrail/auditrail/checkpoint"
	"github.com/auditrail/auditrail/sinks"
)

// fingerprintSize is how many leading bytes identify a file's content.
const fingerprintSize = 1024

// Reasons a file became unreadable before a sink finished it.
const (
	lostPruned    = "pruned"
	lostTruncated = "truncated"
	lostReplaced  = "replaced"
)

// handle is an open descriptor shared by the readers of one file. It is
// closed when no reader holds it and the registry no longer needs it.
type handle struct {
	f        *os.File
	gz       bool
	dev, ino uint64 // of the open file, which may not be the entry's own (a .gz attached while the plain file is held)
	refs     int
	orphan   bool
}

// entry is one source file known to the registry. Guarded by registry.mu.
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
	lost      string
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
	cursors   map[string]checkpoint.Cursor
}

// candidate is a file found by a directory scan.
type candidate struct {
	name, path string
	gz         bool
	dev, ino   uint64
	size       int64
	mtime      time.Time
	key        orderKey
	// plainSize is the uncompressed size of a compressed candidate the
	// registry does not hold, from the gzip trailer; 0 when unknown.
	plainSize int64

	// f pins the inode that was stat'ed, so a rotation between listing and
	// use cannot swap the file; nil when the registry already holds it.
	f          *os.File
	prefix     []byte
	prefixRead bool
}

// take hands c's descriptor over to the caller.
func (c *candidate) take() *os.File {
	f := c.f
	c.f = nil
	return f
}

func (c *candidate) close() {
	if c.f != nil {
		c.f.Close()
		c.f = nil
	}
}

// testHookAfterReadDir, when set by a test, runs between reading the
// directory and examining its entries.
var testHookAfterReadDir func()

// registry tracks the live file and its rotated siblings, matches what is
// on disk to what the checkpoint knows, holds descriptors open for files
// that some sink has not finished (so pruning cannot take them away), and
// records each sink's acknowledged position.
type registry struct {
	log      *slog.Logger
	naming   naming
	livePath string
	sinks    []string
	maxOpen  int
	m        *metrics

	mu      sync.Mutex
	entries []*entry // ascending Seq
	bySeq   map[uint64]*entry
	nextSeq uint64
	dirty   bool
	waiters []chan struct{}
	problem string
	open    int
	// missingSince is when the live file was first seen missing.
	missingSince time.Time
	// delivered is set once any sink acknowledged a batch.
	delivered bool
	// exported are the file ids with per-file gauges, to delete them when
	// the files are gone.
	exported map[string]bool
	// anchorTo are the sinks that take anchor records (the ones that keep
	// no hash chain themselves); set before the readers start.
	anchorTo []string
	// notices wait for sinks to acknowledge them; noticeGen counts the
	// notices made, so readers notice new ones without the lock.
	notices   []*notice
	noticeGen atomic.Uint64
	// gens are, per sink, the last journal delivery acknowledged (see
	// deliveredGen).
	gens map[string]uint64
	// sealedNoticed is set once a redaction failure was reported.
	sealedNoticed atomic.Bool
	now           func() time.Time
}

func newRegistry(livePath string, sinkNames []string, maxOpen int, st *checkpoint.State, m *metrics, log *slog.Logger, now func() time.Time) *registry {
	r := &registry{
		log: log, now: now, naming: newNaming(livePath), livePath: livePath, sinks: sinkNames,
		maxOpen: maxOpen, m: m, bySeq: make(map[uint64]*entry), nextSeq: st.NextSeq,
	}
	if r.nextSeq == 0 {
		r.nextSeq = 1
	}
	for _, f := range st.Files {
		e := &entry{
			ref: &sinks.FileRef{Seq: f.Seq, ID: f.ID, Path: f.Path},
			dev: f.Dev, ino: f.Ino, fpLen: f.FingerprintLen, fp: f.Fingerprint,
			path: f.Path, size: f.Size, final: f.Final, compressed: f.Compressed,
			cursors: make(map[string]checkpoint.Cursor),
		}
		for _, s := range sinkNames {
			if c, ok := f.Cursors[s]; ok {
				e.cursors[s] = c
			}
		}
		r.entries = append(r.entries, e)
		r.bySeq[f.Seq] = e
	}
	sort.Slice(r.entries, func(i, j int) bool { return r.entries[i].ref.Seq < r.entries[j].ref.Seq })
	r.loadNotices(st.Notices)
	return r
}

// subscribe returns a channel that receives a value whenever the files may
// have changed.
func (r *registry) subscribe() <-chan struct{} {
	ch := make(chan struct{}, 1)
	r.mu.Lock()
	r.waiters = append(r.waiters, ch)
	r.mu.Unlock()
	return ch
}

// wake tells every reader to look again. Safe without the lock held.
func (r *registry) wake() {
	r.mu.Lock()
	r.broadcastLocked()
	r.mu.Unlock()
}

func (r *registry) broadcastLocked() {
	for _, ch := range r.waiters {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// list reads the directory. It returns ok == false when the directory
// could not be listed, in which case nothing may be concluded about files
// having gone.
func (r *registry) list() (cands []*candidate, problem string, ok bool) {
	// A rotation between reading the directory and opening the live file
	// would show the new live file without the backup the old one became,
	// which would then be found later, after the live file, out of order.
	// Listing again after opening reveals the backup's new name: retry
	// until two listings agree, and take the sixth listing as it is.
	for attempt := 1; ; attempt++ {
		var names []string
		cands, problem, ok, names = r.listOnce()
		if !ok || attempt == 6 {
			return cands, problem, ok
		}
		again, err := os.ReadDir(r.naming.dir)
		if err != nil || sameNames(names, again) {
			return cands, problem, ok
		}
		for _, c := range cands {
			c.close()
		}
	}
}

func sameNames(names []string, ents []os.DirEntry) bool {
	if len(names) != len(ents) {
		return false
	}
	for i, e := range ents {
		if names[i] != e.Name() {
			return false
		}
	}
	return true
}

// listOnce reads the directory once; names are the entries it listed.
func (r *registry) listOnce() (cands []*candidate, problem string, ok bool, names []string) {
	dir := r.naming.dir
	ents, err := os.ReadDir(dir)
	if testHookAfterReadDir != nil {
		testHookAfterReadDir()
	}
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Sprintf("audit log directory %s does not exist", dir), false, nil
		case errors.Is(err, fs.ErrPermission):
			return nil, fmt.Sprintf("audit log directory %s: permission denied (the agent needs read and search access, e.g. CAP_DAC_READ_SEARCH)", dir), false, nil
		}
		return nil, fmt.Sprintf("list audit log directory %s: %v", dir, err), false, nil
	}
	held := r.heldFiles()
	listed := make(map[string]bool, len(ents))
	for _, e := range ents {
		listed[e.Name()] = true
		names = append(names, e.Name())
	}
	problem = fmt.Sprintf("audit log %s does not exist yet", r.livePath)
	for _, de := range ents {
		name := de.Name()
		match, gz := r.naming.match(name)
		if !match {
			continue
		}
		if gz && listed[strings.TrimSuffix(name, ".gz")] {
			continue // still being compressed: trust it once the original is gone
		}
		path := filepath.Join(dir, name)
		fi, err := os.Lstat(path)
		if err != nil {
			continue // vanished between listing and stat
		}
		live := name == r.naming.base
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if live {
				problem = fmt.Sprintf("audit log %s is a symlink; point the agent at the real file", path)
			}
			continue
		case fi.IsDir():
			if live {
				problem = fmt.Sprintf("audit log %s is a directory", path)
			}
			continue
		case !fi.Mode().IsRegular():
			continue
		}
		dev, ino := devIno(fi)
		c := &candidate{name: name, path: path, gz: gz, dev: dev, ino: ino, size: fi.Size(), mtime: fi.ModTime(), key: r.naming.orderKey(name, fi.ModTime())}
		if !held[[2]uint64{dev, ino}] {
			f, err := openAudit(path)
			if err != nil {
				if live && errors.Is(err, fs.ErrPermission) {
					problem = fmt.Sprintf("open %s: permission denied (the agent needs read access, e.g. CAP_DAC_READ_SEARCH)", path)
				}
				continue
			}
			if fi2, err := f.Stat(); err != nil || !sameFile(fi2, dev, ino) {
				f.Close() // replaced since the stat; the next scan sees the new file
				continue
			}
			c.f = f
			if gz {
				c.plainSize = gzipSize(f, c.size)
			}
		}
		if live {
			problem = ""
		}
		cands = append(cands, c)
	}
	sort.SliceStable(cands, func(i, j int) bool { return cands[i].key.less(cands[j].key) })
	return cands, problem, true, names
}

func sameFile(fi os.FileInfo, dev, ino uint64) bool {
	d, i := devIno(fi)
	return d == dev && i == ino
}

// heldFiles returns the (device, inode) pairs the registry holds open.
func (r *registry) heldFiles() map[[2]uint64]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	held := make(map[[2]uint64]bool, r.open)
	for _, e := range r.entries {
		if e.h != nil && !e.gone {
			held[[2]uint64{e.h.dev, e.h.ino}] = true
		}
	}
	return held
}

// readPrefix returns up to fingerprintSize leading bytes of the candidate's
// uncompressed content, read through f (the candidate's own descriptor or
// the one the registry holds for it).
func (c *candidate) readPrefix(held *handle) []byte {
	if c.prefixRead {
		return c.prefix
	}
	c.prefixRead = true
	f := c.f
	if f == nil && held != nil && held.dev == c.dev && held.ino == c.ino {
		f = held.f
	}
	if f == nil {
		// The descriptor that was held when the directory was listed has
		// been released since: open the candidate itself.
		own, err := openAudit(c.path)
		if err != nil {
			return nil
		}
		defer own.Close()
		if fi, err := own.Stat(); err != nil || !sameFile(fi, c.dev, c.ino) {
			return nil
		}
		f = own
	}
	var rd io.Reader = io.NewSectionReader(f, 0, fingerprintSize)
	if c.gz {
		zr, err := gzip.NewReader(io.NewSectionReader(f, 0, 1<<62))
		if err != nil {
			return nil
		}
		rd = zr
	}
	buf := make([]byte, fingerprintSize)
	n, _ := io.ReadFull(rd, buf)
	c.prefix = buf[:n]
	return c.prefix
}

func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// scan lists the directory and brings the registry up to date: renames,
// new files, compressed backups, truncation, inode reuse and pruning.
func (r *registry) scan() {
	cands, problem, listed := r.list()
	defer func() {
		for _, c := range cands {
			c.close()
		}
	}()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reportLocked(problem)
	if !listed {
		return
	}
	matched := make(map[*entry]bool, len(r.entries))
	byIno := make(map[[2]uint64]*entry, len(r.entries))
	for _, e := range r.entries {
		if !e.gone {
			byIno[[2]uint64{e.dev, e.ino}] = e
		}
	}
	var rest []*candidate
	for _, c := range cands {
		e := byIno[[2]uint64{c.dev, c.ino}]
		if e == nil || matched[e] || e.compressed != c.gz {
			rest = append(rest, c)
			continue
		}
		if reason := r.verifyLocked(e, c); reason != "" {
			r.detachLocked(e, reason)
			rest = append(rest, c)
			continue
		}
		r.updateLocked(e, c)
		matched[e] = true
	}
	for _, c := range rest {
		e, alias := r.matchFingerprintLocked(c, matched)
		switch {
		case alias:
			// A copy of a file still present under its own inode
			// (copytruncate in progress): it holds nothing new.
		case e != nil:
			r.attachLocked(e, c)
			matched[e] = true
		case r.copyingLocked(c):
			// Looked at again on the next scan.
		case !r.identifiableLocked(c):
			// Looked at again once its first line is complete.
		default:
			matched[r.addLocked(c)] = true
		}
	}
	for _, e := range r.entries {
		switch {
		case matched[e]:
			e.missed = 0
		case !e.gone:
			if e.missed++; e.missed >= goneAfterScans {
				r.markGoneLocked(e)
				if e.lost == lostPruned && !e.final {
					e.bound = r.boundLossLocked(e)
				}
			}
		}
	}
	r.settleLocked()
	r.removeFinishedLocked()
	r.holdOpenLocked()
	r.dirty = true
	r.broadcastLocked()
}

// identifiableLocked reports whether c holds enough to be told apart from
// any other file that had or will have its inode: its whole first line, a
// fingerprint's worth of bytes, or all it will ever hold (a rotated or
// compressed file). A file's id is made from its inode and the digest of
// what it held when first seen; from an empty file or half a line (every
// audit line starts with the same 70 bytes) that digest tells nothing.
func (r *registry) identifiableLocked(c *candidate) bool {
	if c.gz || c.name != r.naming.base {
		return true
	}
	prefix := c.readPrefix(nil)
	return len(prefix) == fingerprintSize || bytes.IndexByte(prefix, '\n') >= 0
}

// copyingLocked reports whether c, a file under a rotated name that no
// fingerprint matched, holds less than a fingerprint and nothing but the
// start of a known file: copytruncate's copy while it is being written.
// Until it holds a fingerprint's worth of bytes, which matchFingerprintLocked
// then tells apart, it is not taken for a new file, which would ship its
// content a second time.
func (r *registry) copyingLocked(c *candidate) bool {
	if c.gz || c.name == r.naming.base || c.size >= fingerprintSize {
		return false
	}
	prefix := c.readPrefix(nil)
	for _, e := range r.entries {
		if len(e.head) > 0 && len(e.head) >= len(prefix) && bytes.HasPrefix(e.head, prefix) {
			return true
		}
	}
	return false
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

func (r *registry) reportLocked(problem string) {
	if strings.HasSuffix(problem, "does not exist yet") {
		if r.missingSince.IsZero() {
			r.missingSince = time.Now()
		}
		if time.Since(r.missingSince) < missingGrace && r.problem == "" {
			return
		}
	} else {
		r.missingSince = time.Time{}
	}
	if problem == r.problem {
		return
	}
	if problem != "" {
		r.log.Warn("audit log unavailable; retrying", "problem", problem)
		r.m.sourceUp.Set(0)
	} else {
		r.log.Info("audit log available", "path", r.livePath)
		r.m.sourceUp.Set(1)
	}
	r.problem = problem
}

// verifyLocked checks that the candidate at e's inode still holds e's
// content. It returns why not, or "".
func (r *registry) verifyLocked(e *entry, c *candidate) string {
	if !c.gz && c.size < e.size {
		return lostTruncated
	}
	live := c.name == r.naming.base
	if !live && c.size == e.seenSize && c.mtime.Equal(e.seenMtime) {
		return "" // unchanged since its content was verified
	}
	prefix := c.readPrefix(e.h)
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
	if live && !c.gz && r.holeAtLineEndLocked(e, c) {
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

// matchFingerprintLocked finds the entry whose content c continues, by
// fingerprint: a compressed backup, a copy, a file moved across devices.
// alias is true when c duplicates an entry already matched in this scan.
func (r *registry) matchFingerprintLocked(c *candidate, matched map[*entry]bool) (best *entry, alias bool) {
	prefix := c.readPrefix(nil)
	if len(prefix) == 0 || isHole(prefix) {
		return nil, false // NUL bytes are the start of any truncated file
	}
	for _, e := range r.entries {
		if e.fpLen == 0 || e.fpLen > len(prefix) || fingerprint(prefix[:e.fpLen]) != e.fp {
			continue
		}
		if matched[e] {
			if !c.gz && c.name != r.naming.base {
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

func (r *registry) updateLocked(e *entry, c *candidate) {
	if c.path != e.path {
		if e.path == r.livePath {
			r.m.rotations.Inc()
			r.log.Debug("audit log rotated", "file", e.ref.ID, "to", c.path)
		}
		e.path = c.path
	}
	if c.name != r.naming.base {
		e.final = true
	}
	if !c.gz {
		e.size = c.size
	}
	if e.h == nil && c.f != nil && !r.doneByAllLocked(e) && r.open < r.maxOpen {
		r.adoptLocked(e, c)
	}
}

// adoptLocked makes c's descriptor e's handle.
func (r *registry) adoptLocked(e *entry, c *candidate) {
	e.h = &handle{f: c.take(), gz: c.gz, dev: c.dev, ino: c.ino}
	r.open++
	r.m.openFiles.Set(float64(r.open))
}

func (r *registry) attachLocked(e *entry, c *candidate) {
	r.log.Debug("file found under a new name", "file", e.ref.ID, "path", c.path, "compressed", c.gz)
	if e.lost == lostTruncated && !c.gz && c.name != r.naming.base {
		// copytruncate: the live file's content turned up in a copy.
		e.window = &copyWindow{copyEnd: c.size, liveEnd: e.size}
		r.m.rotations.Inc()
		r.log.Info("audit log copied and truncated", "file", e.ref.ID, "to", c.path)
	}
	// A held descriptor on the uncompressed file keeps serving the same
	// content when the file turns up compressed; otherwise read the new one.
	if e.h != nil && e.compressed == c.gz {
		r.dropHandleLocked(e)
	}
	e.dev, e.ino, e.path, e.compressed = c.dev, c.ino, c.path, c.gz
	if c.plainSize > 0 {
		e.plainSize = c.plainSize
	}
	e.gone, e.lost = false, ""
	if c.name != r.naming.base {
		e.final = true
	}
	if !c.gz && c.size > e.size {
		e.size = c.size
	}
	if e.h == nil && c.f != nil && !r.doneByAllLocked(e) {
		r.adoptLocked(e, c)
	}
}

func (r *registry) addLocked(c *candidate) *entry {
	prefix := c.readPrefix(nil)
	fp := ""
	if len(prefix) > 0 {
		fp = fingerprint(prefix)
	}
	short := fp
	if isHole(prefix) {
		// A hole's digest is every hole's: tell this one apart by its seq.
		short = fingerprint(fmt.Appendf(prefix, "seq %d", r.nextSeq))
	}
	if len(short) > 16 {
		short = short[:16]
	}
	e := &entry{
		ref: &sinks.FileRef{Seq: r.nextSeq, ID: fmt.Sprintf("%d-%d-%s", c.dev, c.ino, short), Path: c.path},
		dev: c.dev, ino: c.ino, fpLen: len(prefix), fp: fp, head: prefix, path: c.path,
		final: c.name != r.naming.base || c.gz, compressed: c.gz, plainSize: c.plainSize,
		cursors: make(map[string]checkpoint.Cursor),
	}
	if !c.gz {
		e.size = c.size
	}
	if c.name == r.naming.base && !c.gz {
		r.holeAtLineEndLocked(e, c) // notes where it ends with a line's end
	}
	if c.f != nil && r.open < r.maxOpen {
		r.adoptLocked(e, c)
	}
	r.nextSeq++
	r.entries = append(r.entries, e)
	r.bySeq[e.ref.Seq] = e
	r.m.filesDiscovered.Inc()
	r.log.Info("new audit file", "file", e.ref.ID, "path", c.path, "seq", e.ref.Seq)
	return e
}

// markGoneLocked notes that e is no longer on disk. A held descriptor keeps
// it readable; otherwise what no sink read of it is lost. Whether its
// going was tampering is decided once the directory settled
// (settleLocked).
func (r *registry) markGoneLocked(e *entry) {
	e.gone = true
	if e.h == nil && !r.doneByAllLocked(e) {
		e.lost = lostPruned
		r.log.Warn("audit file removed before every sink read it", "file", e.ref.ID, "path", e.path)
	}
	if r.tamperLocked(e) != "" {
		e.suspectSince = r.now()
	}
}

// tamperLocked returns the tamper reason for e having vanished as things
// stand, or "" if that is how kube-apiserver rotates and prunes: the live
// file must be renamed, not removed, and backups go oldest first.
func (r *registry) tamperLocked(e *entry) string {
	switch {
	case !e.gone:
		return ""
	case e.path == r.livePath:
		return sinks.TamperDeleted
	case r.olderPresentLocked(e):
		return sinks.TamperDeletedOutOfOrder
	}
	return ""
}

// settleLocked gives the verdict on every file that vanished suspiciously
// at least tamperSettle ago: if it still looks like tampering (the live
// file's content turned up under no other name, or an older backup is
// still there), every sink gets a tamper record.
func (r *registry) settleLocked() {
	now := r.now()
	for _, e := range r.entries {
		if e.suspectSince.IsZero() || now.Sub(e.suspectSince) < tamperSettle {
			continue
		}
		e.suspectSince = time.Time{}
		var t sinks.TamperRecord
		switch r.tamperLocked(e) {
		case sinks.TamperDeleted:
			t = newTamper(sinks.TamperDeleted, "the live audit log disappeared without being rotated: its content is under no name in the directory", now)
		case sinks.TamperDeletedOutOfOrder:
			t = newTamper(sinks.TamperDeletedOutOfOrder, "a rotated audit file disappeared while older ones remain; kube-apiserver prunes the oldest first", now)
		default:
			continue
		}
		t.File, t.Size = &sinks.FileInfo{ID: e.ref.ID, Path: e.path}, e.size
		r.notifyLocked(sinks.KindTamper, t, now)
	}
}

// olderPresentLocked reports whether a file older than e is still on disk.
func (r *registry) olderPresentLocked(e *entry) bool {
	for _, o := range r.entries {
		if o.ref.Seq < e.ref.Seq && !o.gone && o.path != r.livePath {
			return true
		}
	}
	return false
}

// detachLocked retires e because its inode now holds other content.
func (r *registry) detachLocked(e *entry, reason string) {
	r.log.Warn("audit file changed outside a normal rotation", "file", e.ref.ID, "path", e.path, "reason", reason)
	r.dropHandleLocked(e)
	e.gone, e.lost = true, reason
	if r.doneByAllLocked(e) {
		e.lost = ""
	}
}

func (r *registry) doneByAllLocked(e *entry) bool {
	for _, s := range r.sinks {
		if !e.cursors[s].Done {
			return false
		}
	}
	return true
}

func (r *registry) removeFinishedLocked() {
	kept := r.entries[:0]
	for _, e := range r.entries {
		if r.doneByAllLocked(e) {
			r.dropHandleLocked(e)
			if e.gone && e.suspectSince.IsZero() {
				delete(r.bySeq, e.ref.Seq)
				continue
			}
		}
		kept = append(kept, e)
	}
	for i := len(kept); i < len(r.entries); i++ {
		r.entries[i] = nil
	}
	r.entries = kept
}

// holdOpenLocked opens descriptors for unfinished files, oldest first, up
// to maxOpen, so that a file pruned while a sink is behind stays readable.
func (r *registry) holdOpenLocked() {
	for _, e := range r.entries {
		if r.open >= r.maxOpen {
			return
		}
		if e.h == nil && !e.gone && !r.doneByAllLocked(e) {
			r.openLocked(e)
		}
	}
}

func (r *registry) openLocked(e *entry) {
	f, err := openAudit(e.path)
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			r.reportLocked(fmt.Sprintf("open %s: permission denied", e.path))
		}
		return
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return
	}
	if dev, ino := devIno(fi); dev != e.dev || ino != e.ino {
		f.Close() // replaced since the scan; the next scan sorts it out
		return
	}
	e.h = &handle{f: f, gz: e.compressed, dev: e.dev, ino: e.ino}
	r.open++
	r.m.openFiles.Set(float64(r.open))
}

func (r *registry) dropHandleLocked(e *entry) {
	if e.h == nil {
		return
	}
	h := e.h
	e.h = nil
	r.open--
	r.m.openFiles.Set(float64(r.open))
	if h.refs == 0 {
		h.f.Close()
	} else {
		h.orphan = true
	}
}

// next returns the first file after seq that sink has not finished, or nil.
func (r *registry) next(sink string, afterSeq uint64) *entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		if e.ref.Seq > afterSeq && !e.cursors[sink].Done {
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
	lost     string
	size     int64
	path     string
	lastTime string
	bound    *lossBound
	window   *copyWindow
}

func (r *registry) view(e *entry, sink string) fileView {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fileView{h: e.h, final: e.final, gone: e.gone, lost: e.lost, size: e.size, path: e.path, lastTime: e.cursors[sink].LastEventTime, bound: e.bound, window: e.window}
}

// cursor returns sink's acknowledged position in e.
func (r *registry) cursor(e *entry, sink string) checkpoint.Cursor {
	r.mu.Lock()
	defer r.mu.Unlock()
	return e.cursors[sink]
}

// acquire returns a handle to read e, opening it if needed, or nil when e
// cannot be read.
func (r *registry) acquire(e *entry) *handle {
	r.mu.Lock()
	defer r.mu.Unlock()
	if e.h == nil && !e.gone && e.lost == "" {
		r.openLocked(e)
	}
	if e.h == nil {
		return nil
	}
	e.h.refs++
	return e.h
}

func (r *registry) release(h *handle) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h.refs--
	if h.refs == 0 && h.orphan {
		h.f.Close()
	}
}

// ack records that sink acknowledged segs.
func (r *registry) ack(sink string, segs []sinks.Segment) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.delivered = true
	finished := false
	for _, s := range segs {
		e := r.bySeq[s.File.Seq]
		if e == nil {
			continue
		}
		c := e.cursors[sink]
		if s.End > c.Offset {
			c.Offset = s.End
		}
		if s.LastEventTime != "" {
			c.LastEventTime = s.LastEventTime
		}
		if s.Done {
			c.Done = true
			finished = true
		}
		e.cursors[sink] = c
	}
	if finished {
		r.removeFinishedLocked()
		r.holdOpenLocked()
	}
	r.dirty = true
}

// snapshot returns the state to commit and whether it changed since the
// last snapshot. It also refreshes the lag gauges.
func (r *registry) snapshot() (*checkpoint.State, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	st := &checkpoint.State{NextSeq: r.nextSeq, Files: make([]checkpoint.File, 0, len(r.entries)),
		SavedAt: r.now().UTC(), Notices: r.exportNoticesLocked()}
	lag := make(map[string]int64, len(r.sinks))
	lastAcked := make(map[string]string, len(r.sinks))
	for _, e := range r.entries {
		f := checkpoint.File{
			Seq: e.ref.Seq, ID: e.ref.ID, Dev: e.dev, Ino: e.ino, FingerprintLen: e.fpLen, Fingerprint: e.fp,
			Path: e.path, Size: e.size, Final: e.final, Compressed: e.compressed,
			Cursors: make(map[string]checkpoint.Cursor, len(e.cursors)),
		}
		for _, s := range r.sinks {
			c := e.cursors[s]
			f.Cursors[s] = c
			if c.LastEventTime != "" && lag[s] == 0 {
				lastAcked[s] = c.LastEventTime // the last event before the backlog
			}
			if !c.Done && e.size > c.Offset {
				lag[s] += e.size - c.Offset
			}
		}
		st.Files = append(st.Files, f)
	}
	r.exportFilesLocked()
	for _, s := range r.sinks {
		r.m.lagBytes.WithLabelValues(s).Set(float64(lag[s]))
		secs := 0.0
		if t, err := time.Parse(time.RFC3339Nano, lastAcked[s]); err == nil && lag[s] > 0 {
			secs = max(time.Since(t).Seconds(), 0)
		}
		r.m.lagSeconds.WithLabelValues(s).Set(secs)
	}
	dirty := r.dirty
	r.dirty = false
	return st, dirty
}

// exportFilesLocked refreshes the per-file gauges and drops those of files
// the registry no longer tracks.
func (r *registry) exportFilesLocked() {
	now := make(map[string]bool, len(r.entries))
	for _, e := range r.entries {
		id := e.ref.ID
		now[id] = true
		if !e.compressed {
			r.m.fileSize.WithLabelValues(id).Set(float64(e.size))
		}
		for _, s := range r.sinks {
			r.m.fileOffset.WithLabelValues(s, id).Set(float64(e.cursors[s].Offset))
		}
	}
	for id := range r.exported {
		if !now[id] {
			r.m.fileSize.DeleteLabelValues(id)
			for _, s := range r.sinks {
				r.m.fileOffset.DeleteLabelValues(s, id)
			}
		}
	}
	r.exported = now
}

// skipExisting makes every sink start at the current end of the files on
// disk, for a first start with startAt: end.
func (r *registry) skipExisting() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		off := e.size
		if !e.final {
			off = lastLineEnd(e.path, e.size)
		}
		for _, s := range r.sinks {
			e.cursors[s] = checkpoint.Cursor{Offset: off, Done: e.final}
		}
	}
	r.removeFinishedLocked()
	r.dirty = true
}

// lastLineEnd returns the offset just after the last newline before size.
func lastLineEnd(path string, size int64) int64 {
	f, err := openAudit(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	const chunk = 64 << 10
	buf := make([]byte, chunk)
	for end := size; end > 0; {
		start := max(end-chunk, 0)
		n, _ := f.ReadAt(buf[:end-start], start)
		for i := n - 1; i >= 0; i-- {
			if buf[i] == '\n' {
				return start + int64(i) + 1
			}
		}
		end = start
	}
	return 0
}

// markDirty makes the next snapshot report a change, so a failed commit
// is tried again.
func (r *registry) markDirty() {
	r.mu.Lock()
	r.dirty = true
	r.mu.Unlock()
}

// closeAll releases every descriptor.
func (r *registry) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.entries {
		r.dropHandleLocked(e)
	}
}

// shipping reports whether some sink acknowledged data since the start, or
// there was nothing to ship.
func (r *registry) shipping() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.delivered || r.caughtUpLocked()
}

// caughtUp reports whether every sink has acknowledged every complete line
// of every file on disk.
func (r *registry) caughtUp() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.caughtUpLocked()
}

func (r *registry) caughtUpLocked() bool {
	if len(r.notices) > 0 {
		return false
	}
	for _, e := range r.entries {
		for _, s := range r.sinks {
			c := e.cursors[s]
			if c.Done {
				continue
			}
			if e.gone || e.compressed || (e.final && c.Offset < e.size) {
				return false
			}
			if c.Offset < e.size && !r.onlyPartialLineLocked(e, c.Offset) {
				return false
			}
		}
	}
	return true
}

// onlyPartialLineLocked reports whether e holds no newline after off.
func (r *registry) onlyPartialLineLocked(e *entry, off int64) bool {
	if e.h == nil || e.h.gz || e.size-off > 64<<10 {
		return false
	}
	buf := make([]byte, e.size-off)
	n, _ := e.h.f.ReadAt(buf, off)
	return bytes.IndexByte(buf[:n], '\n') < 0
}
