package agent

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

// errNotRegular is returned for an audit file that is a FIFO, a device or
// a socket.
var errNotRegular = errors.New("agent: not a regular file")

// openAudit opens an audit file to read. Whoever can write beside the log
// may put something else in place of a file the agent listed, between the
// listing and the open: O_NONBLOCK keeps a FIFO from blocking the open (and
// the agent), O_NOFOLLOW refuses a symbolic link, and anything but a
// regular file is closed and refused. O_NONBLOCK has no effect on reads of
// a regular file.
func openAudit(path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("open %s: %w (%v)", path, errNotRegular, fi.Mode().Type())
	}
	return f, nil
}
