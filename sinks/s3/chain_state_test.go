package s3

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A chain state written by a release before the slot files
// (s3-chain-<sink>.json, replaced by renaming) continues its chain: same
// epoch, next sequence number, the pending upload looked for; the first
// persist replaces it by the slots.
func TestChainStateFromRenamedFile(t *testing.T) {
	dir := t.TempDir()
	path := chainPath(dir, "s3")
	legacy := `{"chain":"master-1/s3","epoch":"20261130T030000Z-0a0b0c0d","seq":41,` +
		`"sha256":"9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08","key":"k41",` +
		`"pending":{"key":"k42","seq":42,"sha256":"60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752"}}`
	if err := os.WriteFile(filepath.Join(dir, "s3-chain-s3.json"), []byte(legacy), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadChain(path, "master-1/s3", time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if c.start != "" || c.st.Epoch != "20261130T030000Z-0a0b0c0d" || c.st.Seq != 41 || c.st.Key != "k41" ||
		c.pending() == nil || c.pending().Seq != 42 {
		t.Fatalf("legacy chain state read as %+v (start %q)", c.st, c.start)
	}
	if err := c.resolve(nil); err != nil { // not found at its key
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s3-chain-s3.json")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("legacy chain state still there after a persist: %v", err)
	}
	again, err := loadChain(path, "master-1/s3", time.Now())
	if err != nil || again.start != "" || again.st.Seq != 41 || again.st.Epoch != c.st.Epoch || again.pending() != nil {
		t.Fatalf("after the first persist: %+v (start %q), %v", again.st, again.start, err)
	}
	meta := map[string]string{}
	again.next(meta)
	if meta[MetaSeq] != "42" || meta[MetaPrev] != c.st.SHA256 {
		t.Errorf("next object %v, want seq 42 after the legacy head", meta)
	}
}

// Both slots damaged: the state is unreadable, and says so in a new
// epoch, as a file that did not decode did.
func TestChainStateBothSlotsDamaged(t *testing.T) {
	dir := t.TempDir()
	path := chainPath(dir, "s3")
	c, _ := loadChain(path, "n/s3", time.Now())
	for i := range 2 {
		if err := c.advance("k", map[string]string{MetaEpoch: c.st.Epoch, MetaSeq: "1", MetaSHA256: string(rune('a' + i))}); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range []string{path + ".0", path + ".1"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		b[30] ^= 1
		os.WriteFile(p, b, 0o600)
	}
	again, err := loadChain(path, "n/s3", time.Now())
	if err != nil || again.start != StartUnreadable || again.st.Epoch == c.st.Epoch {
		t.Fatalf("damaged state read as %+v (start %q), %v", again.st, again.start, err)
	}
}
