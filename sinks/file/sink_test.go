package file

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/sinks"
)

func batch(lines ...string) *sinks.Batch {
	b := &sinks.Batch{}
	for _, l := range lines {
		b.Records = append(b.Records, sinks.Record{Line: []byte(l)})
	}
	return b
}

func readAll(t *testing.T, dir string) (files []string, content string) {
	t.Helper()
	files, err := Files(dir)
	if err != nil {
		t.Fatal(err)
	}
	var sb strings.Builder
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sb.Write(b)
	}
	return files, sb.String()
}

func TestWriteRotatePrune(t *testing.T) {
	dir := t.TempDir()
	cfg := DefaultConfig()
	cfg.Directory, cfg.MaxFileBytes, cfg.MaxFiles = dir, 10, 0
	s, err := New("f", cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for _, b := range []*sinks.Batch{batch("aaaa", "bbbb"), batch("cccc"), batch("dddd", "eeee", "ffff")} {
		if err := s.Write(ctx, b); err != nil {
			t.Fatal(err)
		}
	}
	files, content := readAll(t, dir)
	if content != "aaaa\nbbbb\ncccc\ndddd\neeee\nffff\n" {
		t.Fatalf("content = %q", content)
	}
	// The first batch fills the first file to its 10-byte limit; the next
	// two share the second file. A batch is never split.
	if len(files) != 2 {
		t.Fatalf("%d files, want 2: %v", len(files), files)
	}
	s.Close(ctx)

	// A second sink in the same directory, created within the same
	// millisecond, must still name its files after the existing ones.
	cfg.MaxFiles = 2
	s2, err := New("f", cfg)
	s2.now = func() time.Time { return s.last }
	if err != nil {
		t.Fatal(err)
	}
	if err := s2.Write(ctx, batch("gggg")); err != nil {
		t.Fatal(err)
	}
	files, content = readAll(t, dir)
	if len(files) != 2 || !strings.HasSuffix(content, "gggg\n") || strings.Contains(content, "aaaa") {
		t.Fatalf("after pruning: files %v content %q", files, content)
	}
	if fi, _ := os.Stat(files[1]); fi.Mode().Perm() != 0o600 {
		t.Errorf("file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestValidate(t *testing.T) {
	c := Config{}
	err := c.Validate("sinks[0].file")
	if err == nil || !strings.Contains(err.Error(), "sinks[0].file.directory is required") || !strings.Contains(err.Error(), "sinks[0].file.maxFileBytes must be positive") {
		t.Fatalf("Validate = %v", err)
	}
}

// Archive files an older version left 0640 are made 0600 at start, and the
// directory 0700.
func TestNewMakesOldFilesPrivate(t *testing.T) {
	dir := t.TempDir()
	old := dir + "/auditrail-20200101T000000.000000000Z-1.ndjson"
	if err := os.WriteFile(old, []byte("x\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	os.Chmod(old, 0o640)
	os.Chmod(dir, 0o750)
	if _, err := New("f", Config{Directory: dir, MaxFileBytes: 10}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]os.FileMode{old: 0o600, dir: 0o700} {
		if fi, _ := os.Stat(p); fi.Mode().Perm() != want {
			t.Errorf("%s is %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}
