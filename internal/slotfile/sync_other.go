//go:build !linux

package slotfile

import "os"

// datasync flushes fd: a full fsync where fdatasync is not at hand.
func datasync(fd *os.File) error { return fd.Sync() }
