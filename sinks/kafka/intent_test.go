package kafka

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestIntentRoundTripAndRejects(t *testing.T) {
	dir := t.TempDir()
	path := intentPath(dir, "kafka")
	if _, err := loadIntent(path); !errors.Is(err, errNoIntent) {
		t.Fatalf("no file: err = %v, want errNoIntent", err)
	}
	in := &intent{Version: intentVersion, Topic: topic, Start: snapshot{At: time.Unix(1_700_000_000, 5).UTC(),
		Offsets: map[int32]int64{0: 12, 1: 0, 7: 1 << 50}}}
	if err := saveIntent(path, in); err != nil {
		t.Fatal(err)
	}
	got, err := loadIntent(path)
	if err != nil {
		t.Fatal(err)
	}
	if got.Topic != topic || !got.Start.At.Equal(in.Start.At) || len(got.Start.Offsets) != 3 || got.Start.Offsets[7] != 1<<50 {
		t.Errorf("loaded %+v, saved %+v", got, in)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("intent file mode: %v, %v; want 0600", fi.Mode(), err)
	}
	if tmp, _ := filepath.Glob(filepath.Join(dir, ".*.tmp")); len(tmp) != 0 {
		t.Errorf("temporary files left: %v", tmp)
	}
	for _, bad := range []string{
		``,
		`{"version":1,"topic":"k8s-audit","start":{"at":"2026-11-30T00:00:00Z","offsets":{"0":1`,
		`{"version":2,"topic":"k8s-audit","start":{"at":"2026-11-30T00:00:00Z","offsets":{"0":1}}}`,
		`{"version":1,"topic":"k8s-audit","start":{"at":"2026-11-30T00:00:00Z"}}`,
		`{"version":1,"topic":"k8s-audit","start":{"offsets":{"x":1}}}`,
	} {
		if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := loadIntent(path); err == nil || errors.Is(err, errNoIntent) {
			t.Errorf("intent %q: err = %v, want it refused", bad, err)
		}
	}
	if _, err := loadIntent(""); !errors.Is(err, errNoIntent) {
		t.Errorf("no state directory: err = %v, want errNoIntent", err)
	}
}
