package kafka

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/auditrail/auditrail/internal/fsutil"
)

// intentVersion is the version of the intent file's format.
const intentVersion = 1

// snapshot is the topic's partitions' end offsets (ListOffsets, latest) at
// a moment before a produce: every record produced after At lies at or
// above them.
type snapshot struct {
	At      time.Time       `json:"at"`
	Offsets map[int32]int64 `json:"offsets"`
}

// intent is the content of the intent file (see doc.go).
type intent struct {
	Version int      `json:"version"`
	Topic   string   `json:"topic"`
	Start   snapshot `json:"start"`
}

// intentPath returns where the sink called name keeps its intent; empty
// when there is no state directory.
func intentPath(stateDir, name string) string {
	if stateDir == "" {
		return ""
	}
	return filepath.Join(stateDir, "kafka-"+name+".intent")
}

// errNoIntent says that no intent was ever written.
var errNoIntent = errors.New("kafka: no intent")

// loadIntent reads the intent at path. It returns errNoIntent when there
// is none, and an error naming the file when it cannot be used.
func loadIntent(path string) (*intent, error) {
	if path == "" {
		return nil, errNoIntent
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, errNoIntent
	}
	if err != nil {
		return nil, fmt.Errorf("read intent: %w", err)
	}
	var in intent
	if err := json.Unmarshal(b, &in); err != nil {
		return nil, fmt.Errorf("intent %s: %w", path, err)
	}
	if in.Version != intentVersion || in.Start.Offsets == nil {
		return nil, fmt.Errorf("intent %s: version %d without offsets, want version %d", path, in.Version, intentVersion)
	}
	return &in, nil
}

// saveIntent replaces the intent at path, atomically and durably (temp
// file, fsync, rename, fsync of the directory). Nothing is written when
// path is empty.
func saveIntent(path string, in *intent) error {
	if path == "" {
		return nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return fmt.Errorf("encode intent: %w", err)
	}
	if err := fsutil.WriteFileAtomic(path, b, nil); err != nil {
		return fmt.Errorf("save intent: %w", err)
	}
	return nil
}
