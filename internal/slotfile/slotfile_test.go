package slotfile

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func open(t *testing.T, base, legacy string) (*File, []byte, bool) {
	t.Helper()
	f, b, found, err := Open(base, legacy)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, b, found
}

func replace(t *testing.T, f *File, s string) {
	t.Helper()
	if err := f.Replace([]byte(s)); err != nil {
		t.Fatal(err)
	}
}

func read(t *testing.T, base string) string {
	t.Helper()
	f, b, found, err := Open(base, "")
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !found {
		return "<none>"
	}
	return string(b)
}

func TestReplaceAndReopen(t *testing.T) {
	base := filepath.Join(t.TempDir(), "state", "x")
	f, _, found := open(t, base, "")
	if found {
		t.Fatal("content found in an empty directory")
	}
	for i, s := range []string{"one", "two", strings.Repeat("3", 10000), "four", ""} {
		replace(t, f, s)
		if got := read(t, base); got != s {
			t.Fatalf("after write %d: read %.20q, want %.20q", i, got, s)
		}
	}
	// A second opener continues the generations.
	f.Close()
	g, b, _ := open(t, base, "")
	if string(b) != "" {
		t.Fatalf("reopened content %q", b)
	}
	replace(t, g, "five")
	replace(t, g, "six")
	if got := read(t, base); got != "six" {
		t.Fatalf("read %q after reopening and two writes, want six", got)
	}
	for _, p := range Paths(base) {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", p, fi.Mode().Perm())
		}
	}
	if fi, _ := os.Stat(filepath.Dir(base)); fi.Mode().Perm() != 0o700 {
		t.Errorf("directory mode %v, want 0700", fi.Mode().Perm())
	}
}

// slotBytes returns the bytes on disk of both slots.
func slotBytes(t *testing.T, base string) [2][]byte {
	t.Helper()
	var out [2][]byte
	for i, p := range Paths(base) {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		out[i] = b
	}
	return out
}

func writeSlots(t *testing.T, base string, s [2][]byte) {
	t.Helper()
	for i, p := range Paths(base) {
		if s[i] == nil {
			os.Remove(p)
			continue
		}
		if err := os.WriteFile(p, s[i], 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// torn returns old overwritten in place by the first n bytes of new.
func torn(old, new []byte, n int) []byte {
	out := append([]byte(nil), old...)
	if len(out) < n {
		out = append(out, make([]byte, n-len(out))...)
	}
	copy(out, new[:n])
	return out
}

// TestTornWriteAtEveryOffset cuts the write of the third content at every
// byte: the file reads as the second content until the write is whole,
// then as the third.
func TestTornWriteAtEveryOffset(t *testing.T) {
	for _, tc := range []struct{ name, a, b, c string }{
		{"same size", "first content", "second content", "third content!"},
		{"longer", "a", "bb", strings.Repeat("c", 300)},
		{"shorter", strings.Repeat("a", 300), strings.Repeat("b", 200), "c"},
		{"across a block", strings.Repeat("a", 4000), "b", strings.Repeat("c", 4200)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := filepath.Join(t.TempDir(), "x")
			f, _, _ := open(t, base, "")
			replace(t, f, tc.a)
			replace(t, f, tc.b)
			var written []byte
			f.BeforeWrite = func(path string, b []byte) {
				if path != Paths(base)[0] {
					t.Errorf("third write goes to %s, want slot 0 (slot 1 holds the newest)", path)
				}
				written = append([]byte(nil), b...)
			}
			before := slotBytes(t, base)
			replace(t, f, tc.c)
			f.Close()
			for n := 0; n <= len(written); n++ {
				writeSlots(t, base, [2][]byte{torn(before[0], written, n), before[1]})
				want := tc.b
				if n >= headerSize+len(tc.c) {
					want = tc.c
				}
				if got := read(t, base); got != want {
					t.Fatalf("write cut after %d of %d bytes: read %.20q, want %.20q", n, len(written), got, want)
				}
			}
		})
	}
}

// TestTornSectors writes the new slot's 512-byte sectors in every subset,
// as a disk may after a power loss: the file reads as the previous content
// or the new one.
func TestTornSectors(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x")
	f, _, _ := open(t, base, "")
	replace(t, f, strings.Repeat("a", 3000))
	replace(t, f, strings.Repeat("b", 3500))
	var written []byte
	f.BeforeWrite = func(_ string, b []byte) { written = append([]byte(nil), b...) }
	before := slotBytes(t, base)
	newer := strings.Repeat("c", 3900)
	replace(t, f, newer)
	f.Close()
	const sector = 512
	sectors := (len(written) + sector - 1) / sector
	for mask := 0; mask < 1<<sectors; mask++ {
		slot := append([]byte(nil), before[0]...)
		for s := range sectors {
			if mask&(1<<s) != 0 {
				end := min((s+1)*sector, len(written))
				copy(slot[s*sector:end], written[s*sector:end])
			}
		}
		writeSlots(t, base, [2][]byte{slot, before[1]})
		got := read(t, base)
		if got != before1(t, before) && got != newer {
			t.Fatalf("sectors %b written: read %.20q, neither the previous content nor the new", mask, got)
		}
		if mask == 1<<sectors-1 && got != newer {
			t.Fatalf("every sector written: read %.20q, want the new content", got)
		}
	}
}

func before1(t *testing.T, s [2][]byte) string {
	_, p, ok := parse(s[1])
	if !ok {
		t.Fatal("slot 1 does not verify")
	}
	return string(p)
}

// TestCorruptSlot flips each byte of the newest slot: the other one, with
// the previous content, wins.
func TestCorruptSlot(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x")
	f, _, _ := open(t, base, "")
	replace(t, f, "previous")
	replace(t, f, "newest")
	f.Close()
	s := slotBytes(t, base)
	for i := range headerSize + len("newest") {
		c := [2][]byte{s[0], append([]byte(nil), s[1]...)}
		c[1][i] ^= 0x40
		writeSlots(t, base, c)
		if got := read(t, base); got != "previous" {
			t.Fatalf("byte %d of the newest slot flipped: read %q, want previous", i, got)
		}
	}
	// Both slots damaged: corrupt, never empty.
	c := [2][]byte{append([]byte(nil), s[0]...), append([]byte(nil), s[1]...)}
	c[0][25] ^= 1
	c[1][25] ^= 1
	writeSlots(t, base, c)
	if _, _, _, err := Open(base, ""); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("both slots damaged: Open = %v, want ErrCorrupt", err)
	}
}

// TestFirstWriteCut: a first write cut leaves slot 0 alone and invalid;
// the file has no content (or the legacy file's) and the next write works.
func TestFirstWriteCut(t *testing.T) {
	dir := t.TempDir()
	base, legacy := filepath.Join(dir, "x"), filepath.Join(dir, "x.json")
	if err := os.WriteFile(legacy, []byte("legacy"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, 1, headerSize, headerSize + 2} {
		whole := encode(nil, 1, []byte("new"))
		writeSlots(t, base, [2][]byte{whole[:n], nil})
		f, b, found := open(t, base, legacy)
		if !found || string(b) != "legacy" {
			t.Fatalf("first write cut after %d bytes: found %v %q, want the legacy content", n, found, b)
		}
		f.Close()
	}
	f, _, _ := open(t, base, legacy)
	replace(t, f, "new")
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy file still there after the first write: %v", err)
	}
	if got := read(t, base); got != "new" {
		t.Fatalf("read %q, want new", got)
	}
	// A crash between the first write and the legacy file's removal: the
	// slot wins, and the next write removes the legacy file.
	f.Close()
	if err := os.WriteFile(legacy, []byte("legacy"), 0o600); err != nil {
		t.Fatal(err)
	}
	g, b, _ := open(t, base, legacy)
	if string(b) != "new" {
		t.Fatalf("slot and legacy file: read %q, want the slot's new", b)
	}
	replace(t, g, "newer")
	if _, err := os.Stat(legacy); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy file left by a crash still there after a write: %v", err)
	}
}

// TestFailedWriteRetriesTheSameSlot: a write that fails leaves the other
// slot, with the last content committed, alone.
func TestFailedWriteRetriesTheSameSlot(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x")
	f, _, _ := open(t, base, "")
	replace(t, f, "one")
	replace(t, f, "two")
	var paths []string
	f.BeforeWrite = func(p string, _ []byte) {
		paths = append(paths, p)
		if len(paths) == 1 {
			f.slots[0].Close() // the write fails
		}
	}
	if err := f.Replace([]byte("three")); err == nil {
		t.Fatal("write to a closed slot succeeded")
	}
	if got := read(t, base); got != "two" {
		t.Fatalf("after a failed write: read %q, want two", got)
	}
	replace(t, f, "three")
	if got := read(t, base); got != "three" || len(paths) != 2 || paths[0] != paths[1] {
		t.Fatalf("read %q, slots written %v: want three, the same slot twice", got, paths)
	}
	replace(t, f, "four")
	if got := read(t, base); got != "four" {
		t.Fatalf("read %q, want four", got)
	}
}

func TestPermissionsAndLinks(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "x")
	f, _, _ := open(t, base, "")
	replace(t, f, "one")
	replace(t, f, "two")
	f.Close()
	os.Chmod(Paths(base)[0], 0o644)
	g, _, _ := open(t, base, "")
	g.Close()
	if fi, _ := os.Stat(Paths(base)[0]); fi.Mode().Perm() != 0o600 {
		t.Errorf("slot left %v after Open, want 0600", fi.Mode().Perm())
	}

	// A slot that is a symbolic link is refused, not followed.
	target := filepath.Join(dir, "elsewhere")
	os.WriteFile(target, []byte("keep"), 0o644)
	linked := filepath.Join(dir, "y")
	if err := os.Symlink(target, Paths(linked)[0]); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := Open(linked, ""); err == nil {
		t.Error("Open followed a symbolic link")
	}
	h := &File{paths: Paths(linked)}
	if err := h.Replace([]byte("x")); err == nil {
		t.Error("Replace wrote through a symbolic link")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("link target now holds %q", b)
	}
}

// TestSlotSizeIsStable: content of varying size within a block leaves the
// slot files' size alone (overwrites only), and a much shorter content
// cuts a large slot back.
func TestSlotSizeIsStable(t *testing.T) {
	base := filepath.Join(t.TempDir(), "x")
	f, _, _ := open(t, base, "")
	for i := range 20 {
		replace(t, f, strings.Repeat("x", 100+i*50))
		for _, p := range Paths(base) {
			if fi, err := os.Stat(p); err == nil && fi.Size() != block {
				t.Fatalf("write %d: %s is %d bytes, want %d", i, p, fi.Size(), block)
			}
		}
	}
	replace(t, f, strings.Repeat("x", 300<<10))
	replace(t, f, strings.Repeat("x", 300<<10))
	replace(t, f, "small")
	replace(t, f, "small")
	for _, p := range Paths(base) {
		if fi, _ := os.Stat(p); fi.Size() != block {
			t.Errorf("%s is %d bytes after small writes, want %d", p, fi.Size(), block)
		}
	}
}

func TestRemoveAndQuarantine(t *testing.T) {
	dir := t.TempDir()
	base := filepath.Join(dir, "x")
	f, _, _ := open(t, base, "")
	replace(t, f, "one")
	replace(t, f, "two")
	moved, err := f.Quarantine(".corrupt-1")
	if err != nil || len(moved) != 2 {
		t.Fatalf("Quarantine = %v, %v", moved, err)
	}
	if got := read(t, base); got != "<none>" {
		t.Fatalf("after Quarantine read %q", got)
	}
	replace(t, f, "three")
	if got := read(t, base); got != "three" {
		t.Fatalf("read %q, want three", got)
	}
	if err := f.Remove(); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if fmt.Sprint(names) != "[x.0.corrupt-1 x.1.corrupt-1]" {
		t.Errorf("directory holds %v after Remove", names)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(encode(nil, 1, []byte("x")))
	f.Add(encode(nil, 7, bytes.Repeat([]byte("y"), 100)))
	f.Fuzz(func(t *testing.T, b []byte) {
		gen, p, ok := parse(b)
		if !ok {
			return
		}
		if again := encode(nil, gen, p); !bytes.Equal(again, b[:len(again)]) {
			t.Fatalf("a slot that verifies does not encode back to its bytes")
		}
	})
}
