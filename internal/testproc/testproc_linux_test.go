package testproc

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The test binary plays three parts, chosen by this variable: the test,
// a "parent" standing in for a test binary that starts a child with
// Command, and that "child", which sleeps.
const roleEnv = "TESTPROC_ROLE"

func TestMain(m *testing.M) {
	switch os.Getenv(roleEnv) {
	case "parent":
		runParent()
	case "child":
		time.Sleep(5 * time.Minute)
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// runParent starts a child with Command, prints its pid and waits to be
// killed.
func runParent() {
	cmd := Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=child")
	if err := cmd.Start(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println(cmd.Process.Pid)
	select {}
}

// A test binary killed with SIGKILL (as go test does at its -timeout, or
// a CI runner) runs no cleanup; its children must die anyway.
func TestChildDiesWithKilledParent(t *testing.T) {
	parent := exec.Command(os.Args[0])
	parent.Env = append(os.Environ(), roleEnv+"=parent")
	parent.Stderr = os.Stderr
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		parent.Process.Kill()
		t.Fatalf("read the child's pid: %v", err)
	}
	child, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Kill(child, syscall.SIGKILL) })
	if !alive(child) {
		t.Fatalf("child %d is not running while its parent is", child)
	}
	parent.Process.Kill()
	parent.Wait()
	for deadline := time.Now().Add(30 * time.Second); alive(child); {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still runs 30 s after its parent was killed", child)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Command puts the child in a process group of its own.
func TestChildHasOwnProcessGroup(t *testing.T) {
	cmd := Command(os.Args[0])
	cmd.Env = append(os.Environ(), roleEnv+"=child")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	defer cmd.Process.Kill()
	pgid, err := syscall.Getpgid(cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	if pgid != cmd.Process.Pid {
		t.Errorf("child's process group is %d, want its own (%d)", pgid, cmd.Process.Pid)
	}
}

// alive reports whether pid runs: it exists and is not a zombie waiting
// for a reaper that a container may not have.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || s[i+2] != 'Z'
}
