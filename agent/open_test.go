package agent

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// Whoever can write beside the audit log may swap a file the agent listed
// for a FIFO before the agent opens it: the open must neither block (a
// FIFO without a writer blocks open for good) nor hand back anything but a
// regular file.
func TestOpenAuditRefusesFIFOs(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit-2026-01-01T00-00-00.000.log")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		f, err := openAudit(path)
		if err == nil {
			f.Close()
		}
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO was opened as an audit file")
		}
	case <-time.After(2 * time.Second):
		// Unblock the open so the test process can end.
		if w, err := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			w.Close()
		}
		t.Fatal("opening a FIFO blocked the agent")
	}
}

// A symbolic link put in place of a listed file is not followed.
func TestOpenAuditRefusesSymlinks(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "secret")
	os.WriteFile(target, []byte("x\n"), 0o600)
	link := filepath.Join(dir, "audit.log")
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if f, err := openAudit(link); err == nil {
		f.Close()
		t.Fatal("a symbolic link was followed")
	}
	if f, err := openAudit(target); err != nil {
		t.Fatalf("a regular file: %v", err)
	} else {
		f.Close()
	}
}
