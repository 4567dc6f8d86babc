package file

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/auditrail/auditrail/sinks"
)

// maxAnchorLine bounds the lines ReadAnchors decodes; anchor records are
// far smaller, and longer lines are skipped unread.
const maxAnchorLine = 64 << 10

// ReadAnchors returns the anchor records (sinks.AnchorRecord) in the
// sink's files in dir, oldest first: the chain heads of the agent's S3
// sinks, for `auditrail verify --anchors`.
func ReadAnchors(dir string) ([]sinks.AnchorRecord, error) {
	paths, err := Files(dir)
	if err != nil {
		return nil, err
	}
	var out []sinks.AnchorRecord
	for _, p := range paths {
		if out, err = readAnchors(p, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func readAnchors(path string, out []sinks.AnchorRecord) ([]sinks.AnchorRecord, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("read anchors: %w", err)
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, maxAnchorLine)
	skip := false // in the rest of a line longer than the buffer
	for {
		line, err := r.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skip = true
			continue
		case err != nil && !errors.Is(err, io.EOF):
			return nil, fmt.Errorf("read anchors from %s: %w", path, err)
		}
		if !skip {
			if a, ok := sinks.ParseAnchor(line); ok {
				out = append(out, a)
			}
		}
		skip = false
		if err != nil {
			return out, nil
		}
	}
}
