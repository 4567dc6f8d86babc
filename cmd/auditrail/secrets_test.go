package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A sink that cannot be created logs why; where the reason quotes a value
// taken from the environment, the log shows the variable instead.
func TestStartupErrorsShowVariablesNotValues(t *testing.T) {
	dir := t.TempDir()
	blocker := filepath.Join(dir, "tenant-s3cr3t") // a file where the directory should be
	if err := os.WriteFile(blocker, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("ARCHIVE_DIR", blocker)
	conf := filepath.Join(dir, "auditrail.yaml")
	yaml := "auditLogPath: " + filepath.Join(dir, "audit.log") + "\nstateDir: " + filepath.Join(dir, "state") +
		"\nsinks:\n  - type: file\n    file: {directory: \"${ARCHIVE_DIR}\"}\n"
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	if code := run([]string{"run", "--config", conf}, &stderr, &stderr); code != 1 {
		t.Fatalf("exit code %d, want 1:\n%s", code, stderr.String())
	}
	out := stderr.String()
	if strings.Contains(out, "s3cr3t") || !strings.Contains(out, "create sinks") || !strings.Contains(out, "${ARCHIVE_DIR}") {
		t.Fatalf("log shows the value, or not the variable:\n%s", out)
	}
}
