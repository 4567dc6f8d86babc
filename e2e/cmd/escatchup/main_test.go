package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The backlog is the oldest whole files of the corpus until the limit,
// the last of them renamed audit.log, as the agent finds a live log and
// its backups; its events are the non-empty lines.
func TestCopyCorpus(t *testing.T) {
	from := t.TempDir()
	files := map[string]string{
		"audit-2026-01-01T00-00-00.000.log": "a\nb\n\nc\n", // 7 bytes, 3 events
		"audit-2026-01-01T00-00-01.000.log": "d\ne\n",      // 2 events
		"audit-2026-01-01T00-00-02.000.log": "f\n",
		"audit.log":                         "g\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(from, name), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "audit")
	events, err := copyCorpus(from, dir, 9)
	if err != nil {
		t.Fatal(err)
	}
	if events != 5 {
		t.Errorf("%d events, want 5", events)
	}
	got := map[string]string{}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		b, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		got[e.Name()] = string(b)
	}
	want := map[string]string{"audit-2026-01-01T00-00-00.000.log": "a\nb\n\nc\n", "audit.log": "d\ne\n"}
	if len(got) != len(want) {
		t.Fatalf("copied %v, want %v", got, want)
	}
	for name, body := range want {
		if got[name] != body {
			t.Errorf("%s = %q, want %q (copied: %s)", name, got[name], body, strings.Join(keys(got), ", "))
		}
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
