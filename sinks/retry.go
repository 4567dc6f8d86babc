package sinks

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends, returning ctx's error then. Sinks
// that retry part of a batch within one Write wait with it between
// attempts.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
