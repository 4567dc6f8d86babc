// Package fsutil holds small file-system helpers shared by packages that
// promise durability.
package fsutil

import (
	"fmt"
	"os"
)

// SyncDir fsyncs a directory, making the creation, rename or removal of its
// entries durable.
func SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("open directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}
