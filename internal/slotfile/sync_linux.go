package slotfile

import (
	"os"
	"syscall"
)

// datasync flushes fd's data and the metadata needed to read it back (its
// size), not its timestamps.
func datasync(fd *os.File) error {
	for {
		err := syscall.Fdatasync(int(fd.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}
