package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/auditrail/auditrail/e2e"
)

// sinkNames are the sinks in the order the tool reports them.
var sinkNames = []string{"s3", "es", "kafka"}

// missingKeys returns, per sink, the written keys its tracker has not
// seen, sorted by write time.
func missingKeys(written map[string]time.Time, trackers map[string]*e2e.Tracker) map[string][]string {
	all := slices.Collect(maps.Keys(written))
	out := map[string][]string{}
	for _, name := range sinkNames {
		keys := unseen(trackers[name], all)
		sort.Slice(keys, func(i, j int) bool { return written[keys[i]].Before(written[keys[j]]) })
		out[name] = keys
	}
	return out
}

// report describes the events missing from each sink: how many, and the
// first few with when (after start) and where they were written.
func report(out io.Writer, missing map[string][]string, written map[string]time.Time, w writer, start, stopped time.Time) {
	for _, name := range sinkNames {
		keys := missing[name]
		if len(keys) == 0 {
			fmt.Fprintf(out, "%s: none missing\n", name)
			continue
		}
		fmt.Fprintf(out, "%s: %d of %d events missing; the first:\n", name, len(keys), len(written))
		for _, k := range keys[:min(5, len(keys))] {
			fmt.Fprintf(out, "  %s written %.3fs after start (%.3fs before the writer stopped) at %s\n",
				k, written[k].Sub(start).Seconds(), stopped.Sub(written[k]).Seconds(), where(w, k))
		}
	}
}

// where names the file and offset key was written at, if w knows.
func where(w writer, key string) string {
	if p, ok := w.(interface{ Position(string) (position, bool) }); ok {
		if pos, ok := p.Position(key); ok {
			return fmt.Sprintf("offset %d of the live file after %d rotations", pos.off, pos.file)
		}
	}
	return "an unknown offset"
}

// waitLate keeps waiting up to limit for the missing events and reports,
// per sink, when the last of them arrived (as the tracker dates it: the
// server's time for S3 and Elasticsearch, the consumer's for Kafka), or
// how many never did.
func waitLate(out io.Writer, missing map[string][]string, trackers map[string]*e2e.Tracker, stopped time.Time, limit time.Duration) map[string][]string {
	still := waitSeen(missing, trackers, limit)
	for _, name := range sinkNames {
		keys := missing[name]
		if len(keys) == 0 {
			continue
		}
		var last time.Time
		for _, k := range keys {
			if t, ok := trackers[name].FirstSeen(k); ok && t.After(last) {
				last = t
			}
		}
		arrived := len(keys) - len(still[name])
		switch {
		case arrived == 0:
			fmt.Fprintf(out, "%s: none of the %d missing events arrived within a further %v\n", name, len(keys), limit)
		default:
			fmt.Fprintf(out, "%s: %d of the %d missing events arrived later, the last %.1fs after the writer stopped; %d had not within a further %v\n",
				name, arrived, len(keys), last.Sub(stopped).Seconds(), len(still[name]), limit)
		}
	}
	return still
}

// waitSeen waits until the trackers have seen every key of missing, or
// limit passed, and returns per sink the keys they have not seen.
func waitSeen(missing map[string][]string, trackers map[string]*e2e.Tracker, limit time.Duration) map[string][]string {
	deadline := time.Now().Add(limit)
	for {
		still, left := map[string][]string{}, 0
		for name, keys := range missing {
			still[name] = unseen(trackers[name], keys)
			left += len(still[name])
		}
		if left == 0 || time.Now().After(deadline) {
			return still
		}
		missing = still
		time.Sleep(100 * time.Millisecond)
	}
}

// unseen returns the keys tr has not seen.
func unseen(tr *e2e.Tracker, keys []string) []string {
	var out []string
	for _, k := range keys {
		if _, ok := tr.FirstSeen(k); !ok {
			out = append(out, k)
		}
	}
	return out
}

// kafkaHas reads the topic again from the start with a new consumer, until
// no record arrives for idle or limit passes, and returns which of keys
// the brokers hold and the producer's timestamp of each: it tells a
// consumer that fell behind from records that were never produced.
func kafkaHas(brokers []string, topic string, keys []string, idle, limit time.Duration) (map[string]time.Time, error) {
	want := map[string]bool{}
	for _, k := range keys {
		want[k] = true
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	found := map[string]time.Time{}
	end := time.Now().Add(limit)
	for time.Now().Before(end) && len(found) < len(want) {
		ctx, cancel := context.WithTimeout(context.Background(), idle)
		fs := cl.PollFetches(ctx)
		cancel()
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if k := e2e.LineKey(r.Value); want[k] {
				found[k] = r.Timestamp
			}
		})
		if n == 0 {
			break
		}
	}
	return found, nil
}

// freePort returns a loopback address nothing listens on now.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// saveURL writes what url serves to path, for the run's directory.
func saveURL(url, path string) error {
	c := &http.Client{Timeout: 30 * time.Second}
	res, err := c.Get(url)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// snapshot saves the agent's metrics and goroutines in dir, named with
// suffix.
func snapshot(out io.Writer, dir, metricsAddr, pprofAddr, suffix string) {
	for _, s := range []struct{ url, name string }{
		{"http://" + metricsAddr + "/metrics", "metrics-" + suffix + ".txt"},
		{"http://" + pprofAddr + "/debug/pprof/goroutine?debug=2", "goroutines-" + suffix + ".txt"},
	} {
		if err := saveURL(s.url, filepath.Join(dir, s.name)); err != nil {
			fmt.Fprintf(out, "save %s: %v\n", s.name, err)
		}
	}
	printMetrics(out, filepath.Join(dir, "metrics-"+suffix+".txt"), suffix)
}

// lagMetrics are the agent's metrics that tell a sink behind or stuck
// from one that acknowledged everything.
var lagMetrics = []string{"auditrail_sink_lag_bytes{", "auditrail_sink_lag_seconds{", "auditrail_sink_retries_total{",
	"auditrail_sink_records_total{", "auditrail_sink_permanent_failures_total{", "auditrail_events_dropped_total{"}

// printMetrics prints the lines of lagMetrics in the metrics file at path.
func printMetrics(out io.Writer, path, suffix string) {
	b, err := os.ReadFile(path)
	if err != nil {
		return
	}
	for _, l := range strings.Split(string(b), "\n") {
		for _, m := range lagMetrics {
			if strings.HasPrefix(l, m) {
				fmt.Fprintf(out, "agent at %s: %s\n", suffix, l)
			}
		}
	}
}

// keysLine lists up to n keys.
func keysLine(keys []string, n int) string {
	if len(keys) > n {
		return strings.Join(keys[:n], " ") + " …"
	}
	return strings.Join(keys, " ")
}
