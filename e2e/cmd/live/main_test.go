package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/auditrail/auditrail/e2e"
)

func TestStatCPU(t *testing.T) {
	// A command name with a space and a parenthesis, utime 250, stime 31.
	line := "4242 (audit (x) rail) S 1 4242 4242 0 -1 4194560 9000 0 0 0 250 31 0 0 20 0 9 0 100 0 0"
	got, err := statCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 2810 * time.Millisecond; got != want {
		t.Fatalf("statCPU = %v, want %v", got, want)
	}
	if _, err := statCPU("4242 (auditrail) S 1"); err == nil {
		t.Fatal("statCPU of a short line: no error")
	}
}

// The replay keys lines as the trackers do, without decoding them.
func TestLineKey(t *testing.T) {
	line := []byte(`{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"a1b2","stage":"ResponseComplete","requestURI":"/api/v1/pods","requestObject":{"auditID":"x","stage":"y"}}` + "\n")
	if got, want := e2e.LineKey(line), "a1b2/ResponseComplete"; got != want {
		t.Fatalf("LineKey = %q, want %q", got, want)
	}
	if got := e2e.LineKey([]byte(`{"kind":"Event","stage":"ResponseComplete"}`)); got != "" {
		t.Fatalf("LineKey of a line without auditID = %q, want none", got)
	}
}

// The replay says where each key was written: after how many rotations
// and at which offset of that file, as lumberjack cut them.
func TestReplayPosition(t *testing.T) {
	src, dst := t.TempDir(), t.TempDir()
	var corpus bytes.Buffer
	pad := strings.Repeat("x", 4000)
	for i := range 1000 { // about 3.5 MB: rotations at 1 MiB
		fmt.Fprintf(&corpus, `{"kind":"Event","auditID":"id-%d","stage":"ResponseComplete","requestObject":"%s"}`+"\n", i, pad[:3000+i])
	}
	if err := os.WriteFile(filepath.Join(src, "audit.log"), corpus.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	r, err := newReplay(src, filepath.Join(dst, "audit.log"), 1)
	if err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		r.WriteRequest()
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	files, err := filepath.Glob(filepath.Join(dst, "audit-*.log"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(files)
	files = append(files, filepath.Join(dst, "audit.log"))
	if len(files) < 3 {
		t.Fatalf("%d files after 3 MB at 1 MiB each, want at least 3", len(files))
	}
	for _, i := range []int{0, 1, 345, 346, 347, 700, 999} {
		key := fmt.Sprintf("id-%d/ResponseComplete", i)
		p, ok := r.Position(key)
		if !ok {
			t.Fatalf("no position for %s", key)
		}
		if p.file >= len(files) {
			t.Fatalf("%s after %d rotations, but only %d files", key, p.file, len(files))
		}
		b, err := os.ReadFile(files[p.file])
		if err != nil {
			t.Fatal(err)
		}
		if p.off >= int64(len(b)) {
			t.Fatalf("%s at offset %d of %s, which holds %d bytes", key, p.off, files[p.file], len(b))
		}
		line := b[p.off:]
		if j := bytes.IndexByte(line, '\n'); j >= 0 {
			line = line[:j+1]
		}
		if got := e2e.LineKey(line); got != key {
			t.Fatalf("at %s offset %d: %q, want the line of %s", files[p.file], p.off, got, key)
		}
	}
}
