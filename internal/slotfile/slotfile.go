package slotfile

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"

	"github.com/auditrail/auditrail/internal/fsutil"
)

const (
	magic      = "AUDSLOT1"
	headerSize = 24
	// block is the step in which a slot grows.
	block = 4096
	// maxPayload bounds what a slot may claim to hold.
	maxPayload = 1 << 30
)

// ErrCorrupt is returned by Open when slot files exist and none verifies.
var ErrCorrupt = errors.New("slotfile: no slot verifies")

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// File is a state file kept in two slots. Its methods must not be called
// concurrently.
type File struct {
	paths  [2]string
	legacy string
	slots  [2]*os.File
	// size is each slot file's size, as written.
	size [2]int64
	// unsynced is set from a slot file's creation until the directory
	// was fsynced after it.
	unsynced [2]bool
	// gen is the newest generation read or written.
	gen uint64
	// next is the slot the next Replace overwrites.
	next int
	buf  []byte
	// BeforeWrite, when set (by tests), runs before each slot write with
	// the slot file's path and the bytes about to be written from offset 0.
	BeforeWrite func(path string, b []byte)
}

// Paths returns the two slot files of base.
func Paths(base string) [2]string { return [2]string{base + ".0", base + ".1"} }

// Open opens the slots of base and returns the file's content: the
// payload of the newest slot that verifies or, when there is none,
// legacy's content if legacy is not empty and exists. found is false when
// there is no content. When slots exist and none verifies, it returns the
// File (to Quarantine) and an error wrapping ErrCorrupt.
func Open(base, legacy string) (f *File, content []byte, found bool, err error) {
	f = &File{paths: Paths(base), legacy: legacy}
	var corrupt bool
	// A reader in another process racing the writer may find one slot torn
	// as it is written, and the other torn by the next write: read again.
	for range 3 {
		content, found, corrupt, err = f.read()
		if err != nil {
			f.Close()
			return nil, nil, false, err
		}
		if !corrupt {
			break
		}
	}
	if legacy != "" && (found || corrupt) {
		// A legacy file left by a crash before the first write removed
		// it is removed by the next; none: nothing to remove.
		if _, err := os.Lstat(legacy); errors.Is(err, os.ErrNotExist) {
			f.legacy = ""
		}
	}
	if found {
		return f, content, true, nil
	}
	if corrupt {
		return f, nil, false, fmt.Errorf("%s: %w", base, ErrCorrupt)
	}
	// No slot, or only a first write that was cut: the legacy file, if any.
	if legacy == "" {
		return f, nil, false, nil
	}
	b, err := os.ReadFile(legacy)
	if errors.Is(err, os.ErrNotExist) {
		f.legacy = ""
		return f, nil, false, nil
	}
	if err != nil {
		f.Close()
		return nil, nil, false, fmt.Errorf("read %s: %w", legacy, err)
	}
	return f, b, true, nil
}

// read reads both slots and returns the newest payload that verifies;
// corrupt is set when none does and base.1 exists.
func (f *File) read() (content []byte, found, corrupt bool, err error) {
	var (
		payload [2][]byte
		gens    [2]uint64
		ok      [2]bool
	)
	for i, p := range f.paths {
		if f.slots[i] == nil {
			fd, err := openSlot(p, 0)
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			if err != nil {
				return nil, false, false, err
			}
			f.slots[i] = fd
		}
		b, err := readAll(f.slots[i])
		if err != nil {
			return nil, false, false, fmt.Errorf("read %s: %w", p, err)
		}
		f.size[i] = int64(len(b))
		gens[i], payload[i], ok[i] = parse(b)
	}
	switch {
	case ok[0] && (!ok[1] || gens[0] >= gens[1]):
		f.gen, f.next = gens[0], 1
		return payload[0], true, false, nil
	case ok[1]:
		f.gen, f.next = gens[1], 0
		return payload[1], true, false, nil
	}
	f.gen, f.next = 0, 0
	return nil, false, f.slots[1] != nil, nil
}

// openSlot opens the slot file p for reading and writing, without
// following a symbolic link, with flag added (os.O_CREATE), and makes it
// private.
func openSlot(p string, flag int) (*os.File, error) {
	fd, err := os.OpenFile(p, os.O_RDWR|syscall.O_NOFOLLOW|syscall.O_CLOEXEC|flag, 0o600)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		return nil, fmt.Errorf("open %s: %w", p, err)
	}
	fi, err := fd.Stat()
	if err != nil {
		fd.Close()
		return nil, fmt.Errorf("check %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		fd.Close()
		return nil, fmt.Errorf("%s is not a regular file (%v)", p, fi.Mode().Type())
	}
	if fi.Mode().Perm() != 0o600 {
		if err := fd.Chmod(0o600); err != nil {
			fd.Close()
			return nil, fmt.Errorf("make %s private: %w", p, err)
		}
	}
	return fd, nil
}

func readAll(fd *os.File) ([]byte, error) {
	fi, err := fd.Stat()
	if err != nil {
		return nil, err
	}
	b := make([]byte, fi.Size())
	n, err := fd.ReadAt(b, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b[:n], nil
}

// parse returns the generation and payload of the slot b, and whether it
// verifies.
func parse(b []byte) (gen uint64, payload []byte, ok bool) {
	if len(b) < headerSize || string(b[:8]) != magic {
		return 0, nil, false
	}
	gen = binary.LittleEndian.Uint64(b[8:16])
	n := binary.LittleEndian.Uint32(b[16:20])
	if gen == 0 || int64(n) > int64(len(b)-headerSize) {
		return 0, nil, false
	}
	payload = b[headerSize : headerSize+int(n)]
	c := crc32.Update(crc32.Checksum(b[:20], castagnoli), castagnoli, payload)
	if c != binary.LittleEndian.Uint32(b[20:24]) {
		return 0, nil, false
	}
	return gen, payload, true
}

// encode appends the slot holding payload as generation gen to dst.
func encode(dst []byte, gen uint64, payload []byte) []byte {
	dst = append(dst, magic...)
	dst = binary.LittleEndian.AppendUint64(dst, gen)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(payload)))
	c := crc32.Update(crc32.Checksum(dst[len(dst)-20:], castagnoli), castagnoli, payload)
	dst = binary.LittleEndian.AppendUint32(dst, c)
	return append(dst, payload...)
}

// Replace makes b the file's content, durably: once it returns, a crash
// leaves b readable; a crash before leaves b or the previous content.
func (f *File) Replace(b []byte) error {
	if len(b) > maxPayload {
		return fmt.Errorf("write %s: %d bytes, more than a slot holds", f.paths[f.next], len(b))
	}
	i := f.next
	if f.slots[i] == nil {
		if err := fsutil.PrivateDir(filepath.Dir(f.paths[i])); err != nil {
			return err
		}
		fd, err := openSlot(f.paths[i], 0)
		if errors.Is(err, os.ErrNotExist) {
			fd, err = openSlot(f.paths[i], os.O_CREATE|os.O_EXCL)
			f.unsynced[i] = true
		}
		if err != nil {
			return err
		}
		fi, err := fd.Stat()
		if err != nil {
			fd.Close()
			return fmt.Errorf("check %s: %w", f.paths[i], err)
		}
		f.slots[i], f.size[i] = fd, fi.Size()
	}
	f.buf = encode(f.buf[:0], f.gen+1, b)
	need := roundUp(int64(len(f.buf)))
	shrink := f.size[i] > 4*need && f.size[i] > 64<<10
	if int64(len(f.buf)) > f.size[i] || shrink {
		// Growing (or cut back): the slot ends at a block boundary, so
		// that the next writes overwrite allocated blocks.
		f.buf = append(f.buf, make([]byte, need-int64(len(f.buf)))...)
	}
	if f.BeforeWrite != nil {
		f.BeforeWrite(f.paths[i], f.buf)
	}
	size, err := f.write(i, need, shrink)
	if err != nil {
		// The slot may be torn: the next write goes to it again, through
		// a new descriptor (one that has not seen the error).
		f.slots[i].Close()
		f.slots[i] = nil
		return err
	}
	f.size[i] = size
	if f.unsynced[i] {
		if err := fsutil.SyncDir(filepath.Dir(f.paths[i])); err != nil {
			return err
		}
		f.unsynced[i] = false
	}
	f.gen++
	f.next = 1 - i
	if f.legacy != "" {
		// The slot holds the content now: the legacy file goes, so that
		// it is never read again.
		if err := os.Remove(f.legacy); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", f.legacy, err)
		}
		if err := fsutil.SyncDir(filepath.Dir(f.legacy)); err != nil {
			return err
		}
		f.legacy = ""
	}
	return nil
}

// write writes f.buf to slot i from offset 0, cuts it back to need if
// shrink, and fdatasyncs it. It returns the slot's new size.
func (f *File) write(i int, need int64, shrink bool) (int64, error) {
	fd := f.slots[i]
	if _, err := fd.WriteAt(f.buf, 0); err != nil {
		return 0, fmt.Errorf("write %s: %w", f.paths[i], err)
	}
	size := max(f.size[i], int64(len(f.buf)))
	if shrink {
		if err := fd.Truncate(need); err != nil {
			return 0, fmt.Errorf("cut back %s: %w", f.paths[i], err)
		}
		size = need
	}
	if err := datasync(fd); err != nil {
		return 0, fmt.Errorf("sync %s: %w", f.paths[i], err)
	}
	return size, nil
}

func roundUp(n int64) int64 { return (n + block - 1) / block * block }

// Remove closes the slots and removes them and the legacy file, durably:
// the file has no content after.
func (f *File) Remove() error {
	f.Close()
	dirs := map[string]bool{}
	for _, p := range append(f.paths[:], f.legacy) {
		if p == "" {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", p, err)
		}
		dirs[filepath.Dir(p)] = true
	}
	for d := range dirs {
		if err := fsutil.SyncDir(d); err != nil {
			return err
		}
	}
	f.gen, f.next, f.legacy = 0, 0, ""
	return nil
}

// Quarantine closes the slots and renames every file that holds the
// content (the slots and the legacy file) to its name followed by suffix,
// durably. It returns the new names. The file has no content after.
func (f *File) Quarantine(suffix string) ([]string, error) {
	f.Close()
	var moved []string
	for _, p := range append(f.paths[:], f.legacy) {
		if p == "" {
			continue
		}
		if err := os.Rename(p, p+suffix); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return moved, fmt.Errorf("move %s aside: %w", p, err)
		}
		moved = append(moved, p+suffix)
	}
	for _, p := range moved {
		if err := fsutil.SyncDir(filepath.Dir(p)); err != nil {
			return moved, err
		}
	}
	f.gen, f.next, f.legacy = 0, 0, ""
	return moved, nil
}

// Close closes the slot files. A later Replace opens them again.
func (f *File) Close() error {
	var err error
	for i, fd := range f.slots {
		if fd != nil {
			err = errors.Join(err, fd.Close())
			f.slots[i] = nil
		}
	}
	return err
}
