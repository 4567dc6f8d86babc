// Package testproc starts the processes that tests depend on (the agent
// under test, MinIO) so that they die with the test that started them.
//
// A test binary that go test kills at its -timeout, or that is killed
// from outside, runs no cleanup: without help, its children would keep
// running, holding ports and temporary directories, long after the test
// reported nothing. On Linux a child started by Command gets SIGKILL from
// the kernel as soon as the test process is gone (PR_SET_PDEATHSIG), and
// it runs in its own process group, so that a terminal's Ctrl-C reaches
// the test alone, which then stops its children in order.
package testproc

import "os/exec"

// Command is exec.Command for a child that dies with the test process.
func Command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.SysProcAttr = sysProcAttr()
	return cmd
}
