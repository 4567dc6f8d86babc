package agent

import (
	"bytes"
	"fmt"
	"log/slog"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

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

// settleFinalLocked marks e final once c, where e was found, can grow no
// more: compressed, or under a rotated name with its writer moved on to a
// new live file. A writer that renames its file and then creates the next
// one may write through its old descriptor until it has (logrotate's
// create with a reopening daemon; a line in flight at the rename): until
// another file is live, or for missingGrace at most, e is read as still
// growing. Files under rotated names at the first scan are final.
func (t *tracker) settleFinalLocked(e *entry, c *candidate) {
	if e.final || (!c.gz && c.name == t.naming.base) {
		return
	}
	if c.gz || !t.scanned || (t.liveFound && t.live != [2]uint64{e.dev, e.ino}) {
		e.final = true
		return
	}
	if e.renamedAt.IsZero() {
		e.renamedAt = t.now()
	}
	e.final = t.now().Sub(e.renamedAt) >= missingGrace
}

// movedLocked counts a rotation when e, last seen as the live file, is
// found at path, another name.
func (t *tracker) movedLocked(e *entry, path string) {
	if e.path == t.livePath && path != t.livePath {
		t.m.rotations.Inc()
		t.logLater(slog.LevelDebug, "audit log rotated", "file", e.ref.ID, "to", path)
	}
}

// refreshLocked updates e from c, found at e's inode.
func (t *tracker) refreshLocked(e *entry, c *candidate) {
	t.movedLocked(e, c.path)
	e.path = c.path
	t.settleFinalLocked(e, c)
	if !c.gz {
		e.size = c.size
	}
	if e.h == nil && c.f != nil && !t.doneByAllLocked(e) && t.open < t.maxOpen {
		t.adoptLocked(e, c.take(), c.gz, c.dev, c.ino)
	}
}

func (t *tracker) attachLocked(e *entry, c *candidate) {
	t.logLater(slog.LevelDebug, "file found under a new name", "file", e.ref.ID, "path", c.path, "compressed", c.gz)
	if e.lost == lostTruncated && !c.gz && c.name != t.naming.base {
		// copytruncate: the live file's content turned up in a copy.
		e.window = &copyWindow{copyEnd: c.size, liveEnd: e.size}
		t.m.rotations.Inc()
		t.logLater(slog.LevelInfo, "audit log copied and truncated", "file", e.ref.ID, "to", c.path)
	} else {
		// Also a file renamed and compressed before a scan saw it under
		// its plain name, as lumberjack does right after a rotation.
		t.movedLocked(e, c.path)
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
	t.settleFinalLocked(e, c)
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
		compressed: c.gz, plainSize: c.plainSize,
	}
	t.settleFinalLocked(e, c)
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
