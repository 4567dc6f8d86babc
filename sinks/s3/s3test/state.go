package s3test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/auditrail/auditrail/internal/slotfile"
	"github.com/auditrail/auditrail/sinks/s3"
)

// ChainStatePaths returns the slot files of the chain state of the sink
// named "s3" with cfg (see package s3, Chain state).
func ChainStatePaths(cfg s3.Config) [2]string {
	return slotfile.Paths(filepath.Join(cfg.StateDir, "s3-chain-s3"))
}

// ChainState returns the chain state's JSON as the sink named "s3" with
// cfg last wrote it.
func ChainState(t testing.TB, cfg s3.Config) []byte {
	t.Helper()
	f, b, found, err := slotfile.Open(filepath.Join(cfg.StateDir, "s3-chain-s3"), "")
	if err != nil || !found {
		t.Fatalf("chain state: %v, found %v", err, found)
	}
	f.Close()
	return b
}

// SetChainState replaces the chain state of the sink named "s3" with cfg
// by b, as the sink writes it.
func SetChainState(t testing.TB, cfg s3.Config, b []byte) {
	t.Helper()
	f, _, _, err := slotfile.Open(filepath.Join(cfg.StateDir, "s3-chain-s3"), "")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := f.Replace(b); err != nil {
		t.Fatal(err)
	}
}

// RemoveChainState removes the chain state of the sink named "s3" with
// cfg: the state directory lost.
func RemoveChainState(t testing.TB, cfg s3.Config) {
	t.Helper()
	for _, p := range ChainStatePaths(cfg) {
		if err := os.Remove(p); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
	}
}
