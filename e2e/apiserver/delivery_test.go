package apiserver

import (
	"sort"
	"time"

	"github.com/auditrail/auditrail/e2e"
)

// expected is what kube-apiserver wrote: how many lines of each
// auditID/stage, and for the key that two requests share, of each
// requestURI.
type expected struct {
	written map[string]time.Time
	count   map[string]int
	shared  string
	uris    map[string]int
	lines   int
}

func newExpected(evs []diskEvent, shared string) *expected {
	x := &expected{written: map[string]time.Time{}, count: map[string]int{}, shared: shared, uris: map[string]int{}, lines: len(evs)}
	for _, ev := range evs {
		k := ev.Key()
		x.written[k] = ev.Time
		x.count[k]++
		if k == shared {
			x.uris[ev.RequestURI]++
		}
	}
	return x
}

// sinkResult is one sink's line of the delivery table.
type sinkResult struct {
	Sink                     string
	Written, Delivered, Lost int
	Duplicates               int
	// Unexpected counts events a sink holds that kube-apiserver did not
	// write.
	Unexpected int
	LostKeys   []string
}

// measure compares what a sink holds with what kube-apiserver wrote; uris
// are the sink's counts by requestURI of the shared key.
func (x *expected) measure(sink string, rcv *e2e.Received, uris map[string]int) sinkResult {
	res := sinkResult{Sink: sink, Written: x.lines}
	for k, n := range x.count {
		got := rcv.Count[k]
		if k == x.shared {
			continue
		}
		res.Delivered += min(n, got)
		res.Duplicates += max(0, got-n)
		if got < n {
			res.LostKeys = append(res.LostKeys, k)
		}
	}
	for u, n := range x.uris {
		res.Delivered += min(n, uris[u])
		res.Duplicates += max(0, uris[u]-n)
		if uris[u] < n {
			res.LostKeys = append(res.LostKeys, x.shared+" "+u)
		}
	}
	for k, got := range rcv.Count {
		if x.count[k] == 0 {
			res.Unexpected += got
		}
	}
	res.Lost = res.Written - res.Delivered
	sort.Strings(res.LostKeys)
	return res
}

// received returns what each sink holds now: the three network sinks'
// trackers and the file sink's files.
func (r *run) received(x *expected) map[string]func() (*e2e.Received, map[string]int) {
	out := map[string]func() (*e2e.Received, map[string]int){}
	for name, tr := range r.sinks {
		out[name] = func() (*e2e.Received, map[string]int) { return tr.Received(), tr.URIs(x.shared) }
	}
	out["file"] = func() (*e2e.Received, map[string]int) {
		uris := map[string]map[string]int{x.shared: {}}
		return fileSink(r.t, r.fileDir, uris), uris[x.shared]
	}
	return out
}

// waitDelivered waits until every sink holds every line written, or
// timeout.
func (r *run) waitDelivered(timeout time.Duration, x *expected) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		done := true
		for name, get := range r.received(x) {
			rcv, uris := get()
			if res := x.measure(name, rcv, uris); res.Delivered < res.Written {
				done = false
			}
		}
		if done {
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
}

func (r *run) results(x *expected) []sinkResult {
	var out []sinkResult
	for _, name := range []string{"s3", "es", "kafka", "file"} {
		rcv, uris := r.received(x)[name]()
		res := x.measure(name, rcv, uris)
		if res.Lost > 0 {
			r.t.Errorf("%s: %d of %d lines lost, first: %v", name, res.Lost, res.Written, res.LostKeys[:min(5, len(res.LostKeys))])
		}
		if res.Unexpected > 0 {
			r.t.Errorf("%s: %d events kube-apiserver did not write", name, res.Unexpected)
		}
		if res.Duplicates > 0 {
			r.t.Errorf("%s: %d lines delivered more than once across the SIGKILLs", name, res.Duplicates)
		}
		for kind, n := range rcv.Other {
			switch kind {
			case "AuditrailGap", "Event without auditID", "":
				r.t.Errorf("%s: %d records of kind %q", name, n, kind)
			}
		}
		out = append(out, res)
	}
	return out
}
