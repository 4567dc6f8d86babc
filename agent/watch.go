package agent

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// writeQuiet is how long the watcher leaves notifications unread after a
// write to the live file. kube-apiserver writes each event as it happens;
// in the meantime the kernel folds the writes into one notification
// instead of a read and a wake-up for each, and the readers that are
// caught up read appends at most every readInterval anyway. A rotation's
// notifications wait as long at most.
const writeQuiet = 50 * time.Millisecond

// watch rescans the audit directory on file-system notifications and on a
// timer, until ctx ends. Notifications give low latency; the timer covers
// file systems that do not deliver them and a directory that was replaced
// (which silently ends a watch). Writes to the live file are announced to
// the readers at most every writeQuiet.
func (a *Agent) watch(ctx context.Context, reg *registry) {
	dir := filepath.Dir(a.opts.AuditLogPath)
	live := filepath.Clean(a.opts.AuditLogPath)
	w, err := fsnotify.NewWatcher()
	if err != nil {
		a.log.Warn("file-system notifications unavailable; polling only", "err", err)
	} else {
		defer w.Close()
	}
	var watched [2]uint64
	rewatch := func() {
		if w == nil {
			return
		}
		fi, err := os.Stat(dir)
		if err != nil {
			return
		}
		dev, ino := devIno(fi)
		if id := [2]uint64{dev, ino}; id != watched {
			w.Remove(dir)
			if err := w.Add(dir); err == nil {
				watched = id
			}
		}
	}
	rewatch()
	var events <-chan fsnotify.Event
	var errs <-chan error
	if w != nil {
		events, errs = w.Events, w.Errors
	}
	t := time.NewTicker(a.opts.PollInterval)
	defer t.Stop()
	resume := time.NewTimer(writeQuiet)
	resume.Stop()
	defer resume.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			switch {
			case ev.Op.Has(fsnotify.Write):
				if filepath.Clean(ev.Name) == live {
					reg.grew()
					events = nil
					resume.Reset(writeQuiet)
				}
			case ev.Op.Has(fsnotify.Create) || ev.Op.Has(fsnotify.Remove) || ev.Op.Has(fsnotify.Rename):
				reg.scan()
			}
		case <-resume.C:
			events = w.Events
		case err := <-errs:
			a.log.Debug("file-system notification error", "err", err)
		case <-t.C:
			rewatch()
			reg.scan()
		}
	}
}
