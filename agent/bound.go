package agent

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

// lossBound bounds what was lost when the file the agent last saw live was
// pruned before it was read to its end (the agent was down while it was
// rotated and pruned, and maybe files after it). It is made from the
// backups on disk: their sizes (kube-apiserver's lumberjack rotates at a
// fixed size, so a backup shows how large a full file is) and the rotation
// times in their names.
type lossBound struct {
	// minFull and typical are the smallest and the median uncompressed
	// size of the backups; 0 when none is known.
	minFull, typical int64
	// files estimates how many files were lost, this one included.
	files int
}

// boundLossLocked returns the bound on what e lost, from the backups on
// disk that were rotated after the last event read from e. Memory only.
func (t *tracker) boundLossLocked(e *entry) *lossBound {
	last := t.lasts[e.ref.Seq]
	var sizes []int64
	var times []time.Time
	for _, o := range t.entries {
		at, ok := t.naming.rotatedAt(filepath.Base(o.path))
		if o.gone || !ok || !at.After(last) {
			continue
		}
		times = append(times, at)
		switch {
		case !o.compressed:
			sizes = append(sizes, o.size)
		case o.plainSize > 0:
			sizes = append(sizes, o.plainSize)
		}
	}
	b := &lossBound{files: estimateFiles(last, times)}
	if len(sizes) > 0 {
		slices.Sort(sizes)
		b.minFull, b.typical = sizes[0], sizes[len(sizes)/2]
	}
	return b
}

// estimateFiles estimates how many files were rotated between last (the
// last event read from the lost file) and the oldest of times (the
// rotations of the backups on disk), at the median interval between those
// rotations: at least 1, the lost file itself.
func estimateFiles(last time.Time, times []time.Time) int {
	if last.IsZero() || len(times) < 2 {
		return 1
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	gaps := make([]time.Duration, 0, len(times)-1)
	for i := 1; i < len(times); i++ {
		gaps = append(gaps, times[i].Sub(times[i-1]))
	}
	slices.Sort(gaps)
	d := gaps[len(gaps)/2]
	if d <= 0 {
		return 1
	}
	return max(1, int(times[0].Sub(last)/d))
}

// applyBound fills g's bounds for a sink that read the lost file up to
// off. The known range (From, To) is left as it is.
func applyBound(g *sinks.GapRecord, b *lossBound, off, size int64) {
	g.Files = &sinks.GapFiles{AtLeast: 1, Estimate: b.files}
	if b.typical == 0 {
		return
	}
	g.Bytes.AtLeast = max(size, b.minFull) - off
	g.Bytes.Estimate = max(size, b.typical) - off + int64(b.files-1)*b.typical
}

// gzipSize returns the uncompressed size a gzip file of size bytes records
// in its trailer (modulo 4 GiB, far above any audit log's rotation size),
// or 0 when it cannot be read.
func gzipSize(f *os.File, size int64) int64 {
	if size < 18 { // a gzip header and trailer
		return 0
	}
	var b [4]byte
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return 0
	}
	return int64(binary.LittleEndian.Uint32(b[:]))
}

// copyWindow is what logrotate's copytruncate lost: the lines written to
// the live file between the end of the copy and the truncation.
type copyWindow struct {
	// copyEnd is the copy's size; liveEnd the largest size the agent saw
	// the live file reach before the truncation, a lower bound of its end.
	copyEnd, liveEnd int64
}

// copyWindowView is the view a gap record for w is made from, for a
// reader at pos in the copy: from the later of pos and the copy's end to
// at least liveEnd, reason truncated.
func copyWindowView(v fileView, w *copyWindow, pos int64) (int64, fileView) {
	v.lost, v.final, v.size = lostTruncated, false, w.liveEnd
	return max(pos, w.copyEnd), v
}
