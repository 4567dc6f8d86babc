package agent

import (
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// lumberjackTime is the timestamp lumberjack (and so kube-apiserver) puts
// in the names of rotated files: audit-2006-01-02T15-04-05.000.log.
const lumberjackTime = "2006-01-02T15-04-05.000"

// naming recognises the live audit file and its rotated siblings.
type naming struct {
	dir, base, stem, ext string
}

func newNaming(livePath string) naming {
	base := filepath.Base(livePath)
	ext := filepath.Ext(base)
	return naming{dir: filepath.Dir(livePath), base: base, stem: strings.TrimSuffix(base, ext), ext: ext}
}

// match reports whether name is the live file or one of its rotated
// siblings, and whether it is gzip-compressed. It recognises lumberjack's
// audit-<time>.log[.gz] and logrotate's audit.log.1[.gz] and
// audit.log-20060102[.gz].
func (n naming) match(name string) (ok, gz bool) {
	if name == n.base {
		return true, false
	}
	gz = strings.HasSuffix(name, ".gz")
	plain := strings.TrimSuffix(name, ".gz")
	switch {
	case n.ext != "" && strings.HasPrefix(plain, n.stem+"-") && strings.HasSuffix(plain, n.ext):
		return true, gz
	case strings.HasPrefix(plain, n.base+".") || strings.HasPrefix(plain, n.base+"-"):
		return true, gz
	}
	return false, false
}

// orderKey sorts files that are new to the agent from oldest to newest:
// logrotate's numbered backups (higher number is older), then other backups
// by the time in their name or else their modification time, then the
// live file.
type orderKey struct {
	class int
	value int64
}

func (k orderKey) less(o orderKey) bool {
	if k.class != o.class {
		return k.class < o.class
	}
	return k.value < o.value
}

func (n naming) orderKey(name string, mtime time.Time) orderKey {
	if name == n.base {
		return orderKey{class: 2}
	}
	plain := strings.TrimSuffix(name, ".gz")
	if num, ok := strings.CutPrefix(plain, n.base+"."); ok {
		if v, err := strconv.Atoi(num); err == nil {
			return orderKey{class: 0, value: -int64(v)}
		}
	}
	if t, ok := n.rotatedAt(name); ok {
		return orderKey{class: 1, value: t.UnixNano()}
	}
	return orderKey{class: 1, value: mtime.UnixNano()}
}

// rotatedAt returns the rotation time lumberjack put in a backup's name.
func (n naming) rotatedAt(name string) (time.Time, bool) {
	plain := strings.TrimSuffix(name, ".gz")
	ts, ok := strings.CutPrefix(plain, n.stem+"-")
	if !ok || n.ext == "" || !strings.HasSuffix(ts, n.ext) {
		return time.Time{}, false
	}
	t, err := time.Parse(lumberjackTime, strings.TrimSuffix(ts, n.ext))
	return t, err == nil
}
