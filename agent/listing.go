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
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// fingerprintSize is how many leading bytes identify a file's content.
const fingerprintSize = 1024

// sourceState is how the live audit log looked at the last listing.
type sourceState int

const (
	sourceOK sourceState = iota
	// sourceMissing: the live file does not exist (yet); a rotation
	// leaves it missing for a moment.
	sourceMissing
	// sourceBroken: the directory or the live file cannot be read.
	sourceBroken
)

// sourceProblem is why the live audit log cannot be read; the zero value
// is none.
type sourceProblem struct {
	state  sourceState
	detail string
}

func brokenSource(format string, args ...any) sourceProblem {
	return sourceProblem{state: sourceBroken, detail: fmt.Sprintf(format, args...)}
}

// candidate is a file found by a directory scan. Its content is read
// (readContent) before the tracker's lock is taken.
type candidate struct {
	name, path string
	gz         bool
	dev, ino   uint64
	size       int64
	mtime      time.Time
	key        orderKey
	// plainSize is the uncompressed size of a compressed candidate the
	// tracker does not hold, from the gzip trailer; 0 when unknown.
	plainSize int64

	// f pins the inode that was stat'ed, so a rotation between listing and
	// use cannot swap the file; nil when the tracker already holds it.
	f *os.File
	// held is the tracker's descriptor for the file, pinned while the
	// candidate's content is read, when f is nil.
	held *handle
	// prefix is up to fingerprintSize leading bytes of the uncompressed
	// content, once read; prefixRead is set when it was.
	prefix     []byte
	prefixRead bool
	// bytes are single bytes read at the offsets the verification of a
	// live file needs (see holeAtLineEndLocked).
	bytes map[int64]byte
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

// testHookFileIO, when set by a test, runs before the tracker or the
// registry opens, reads or closes an audit file once it listed it.
var testHookFileIO func(op string)

func fileIO(op string) {
	if testHookFileIO != nil {
		testHookFileIO(op)
	}
}

// list reads the directory. It returns ok == false when the directory
// could not be listed, in which case nothing may be concluded about files
// having gone. held are the (device, inode) pairs the tracker holds open,
// which are not opened again.
func (t *tracker) list() (cands []*candidate, problem sourceProblem, ok bool) {
	// A rotation between reading the directory and opening the live file
	// would show the new live file without the backup the old one became,
	// which would then be found later, after the live file, out of order.
	// Listing again after opening reveals the backup's new name: retry
	// until two listings agree, and take the sixth listing as it is.
	for attempt := 1; ; attempt++ {
		var names []string
		cands, problem, ok, names = t.listOnce()
		if !ok || attempt == 6 {
			return cands, problem, ok
		}
		again, err := os.ReadDir(t.naming.dir)
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
func (t *tracker) listOnce() (cands []*candidate, problem sourceProblem, ok bool, names []string) {
	dir := t.naming.dir
	ents, err := os.ReadDir(dir)
	if testHookAfterReadDir != nil {
		testHookAfterReadDir()
	}
	if err != nil {
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, brokenSource("audit log directory %s does not exist", dir), false, nil
		case errors.Is(err, fs.ErrPermission):
			return nil, brokenSource("audit log directory %s: permission denied (the agent needs read and search access, e.g. CAP_DAC_READ_SEARCH)", dir), false, nil
		}
		return nil, brokenSource("list audit log directory %s: %v", dir, err), false, nil
	}
	held := t.heldFiles()
	listed := make(map[string]bool, len(ents))
	for _, e := range ents {
		listed[e.Name()] = true
		names = append(names, e.Name())
	}
	problem = sourceProblem{state: sourceMissing, detail: fmt.Sprintf("audit log %s does not exist yet", t.livePath)}
	for _, de := range ents {
		name := de.Name()
		match, gz := t.naming.match(name)
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
		live := name == t.naming.base
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			if live {
				problem = brokenSource("audit log %s is a symlink; point the agent at the real file", path)
			}
			continue
		case fi.IsDir():
			if live {
				problem = brokenSource("audit log %s is a directory", path)
			}
			continue
		case !fi.Mode().IsRegular():
			continue
		}
		dev, ino := devIno(fi)
		c := &candidate{name: name, path: path, gz: gz, dev: dev, ino: ino, size: fi.Size(), mtime: fi.ModTime(), key: t.naming.orderKey(name, fi.ModTime())}
		if !held[[2]uint64{dev, ino}] {
			f, err := openAudit(path)
			if err != nil {
				if live && errors.Is(err, fs.ErrPermission) {
					problem = brokenSource("open %s: permission denied (the agent needs read access, e.g. CAP_DAC_READ_SEARCH)", path)
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
			problem = sourceProblem{}
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

// file returns the descriptor to read c through: its own, the tracker's
// pinned one, or else one opened now (the descriptor that was held when
// the directory was listed has been released since), which done closes.
func (c *candidate) file() (f *os.File, done func(), ok bool) {
	if c.f != nil {
		return c.f, func() {}, true
	}
	if c.held != nil {
		return c.held.f, func() {}, true
	}
	own, err := openAudit(c.path)
	if err != nil {
		return nil, nil, false
	}
	if fi, err := own.Stat(); err != nil || !sameFile(fi, c.dev, c.ino) {
		own.Close()
		return nil, nil, false
	}
	return own, func() { own.Close() }, true
}

// readContent reads what the scan will look at of c: its prefix when
// prefix is set, and the bytes at offsets. It runs without a lock.
func (c *candidate) readContent(prefix bool, offsets []int64) {
	if !prefix && len(offsets) == 0 {
		return
	}
	fileIO("read candidate")
	f, done, ok := c.file()
	if !ok {
		c.prefixRead = prefix
		return
	}
	defer done()
	if prefix {
		c.readPrefix(f)
	}
	for _, off := range offsets {
		if off < 0 || off >= c.size {
			continue
		}
		var buf [1]byte
		if n, _ := f.ReadAt(buf[:], off); n == 1 {
			if c.bytes == nil {
				c.bytes = make(map[int64]byte, len(offsets))
			}
			c.bytes[off] = buf[0]
		}
	}
}

// readPrefix reads up to fingerprintSize leading bytes of c's
// uncompressed content through f.
func (c *candidate) readPrefix(f *os.File) {
	c.prefixRead = true
	var rd io.Reader = io.NewSectionReader(f, 0, fingerprintSize)
	if c.gz {
		zr, err := gzip.NewReader(io.NewSectionReader(f, 0, 1<<62))
		if err != nil {
			return
		}
		rd = zr
	}
	buf := make([]byte, fingerprintSize)
	n, _ := io.ReadFull(rd, buf)
	c.prefix = buf[:n]
}

// byteAt returns the byte at off that readContent read; ok is false when
// it was not read (no descriptor, or off past the end).
func (c *candidate) byteAt(off int64) (b byte, ok bool) {
	b, ok = c.bytes[off]
	return b, ok
}

func fingerprint(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// isHole reports whether b, a file's first bytes, are NULs only: the hole
// a writer without O_APPEND leaves when the file is truncated under it.
func isHole(b []byte) bool {
	return len(b) > 0 && len(bytes.Trim(b, "\x00")) == 0
}
