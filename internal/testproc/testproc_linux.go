package testproc

import "syscall"

// sysProcAttr asks the kernel to SIGKILL the child when the thread that
// started it exits. Go keeps its threads for the life of the process (it
// ends one only when a goroutine locked to it exits), so that happens when
// the test process ends, however it ends.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
}
