package agent

import (
	"context"
	"os"
	"path/filepath"
	"time"

	"github.com/fsnotify/fsnotify"
)

// watch rescans the audit directory on file-system notifications and on a
// timer, until ctx ends. Notifications give low latency; the timer covers
// file systems that do not deliver them and a directory that was replaced
// (which silently ends a watch).
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
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-events:
			switch {
			case ev.Op.Has(fsnotify.Write):
				if filepath.Clean(ev.Name) == live {
					reg.grew()
				}
			case ev.Op.Has(fsnotify.Create) || ev.Op.Has(fsnotify.Remove) || ev.Op.Has(fsnotify.Rename):
				reg.scan()
			}
		case err := <-errs:
			a.log.Debug("file-system notification error", "err", err)
		case <-t.C:
			rewatch()
			reg.scan()
		}
	}
}
