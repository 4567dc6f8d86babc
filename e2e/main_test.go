package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin is the auditrail binary under test, built once.
var bin string

func TestMain(m *testing.M) {
	if b := os.Getenv("AUDITRAIL_E2E_BIN"); b != "" {
		// A binary built elsewhere, e.g. of an older commit to compare.
		bin = b
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "auditrail-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = filepath.Join(dir, "auditrail")
	build := exec.Command("./scripts/build.sh", bin, "e2e")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build auditrail: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
