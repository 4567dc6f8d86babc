//go:build !linux

package testproc

import "syscall"

// sysProcAttr has nothing to add where the kernel cannot signal a child
// on its parent's death: children there outlive a killed test.
func sysProcAttr() *syscall.SysProcAttr { return nil }
