// Package corpus reads the audit log corpora that cmd/gencorpus writes
// (audit.log and its lumberjack backups) for the tools that replay them.
package corpus

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
)

// Files returns the corpus files in dir oldest first: the timestamped
// backups by name, then the live file.
func Files(dir string) ([]string, error) {
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err == nil {
		files = append(files, filepath.Join(dir, "audit.log"))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no audit files in %s", dir)
	}
	return files, nil
}
