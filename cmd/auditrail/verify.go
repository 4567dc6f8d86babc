package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/auditrail/auditrail/internal/config"
	"github.com/auditrail/auditrail/internal/units"
	"github.com/auditrail/auditrail/sinks"
	"github.com/auditrail/auditrail/sinks/file"
	"github.com/auditrail/auditrail/sinks/registry"
	"github.com/auditrail/auditrail/sinks/s3"
	verifier "github.com/auditrail/auditrail/verify"
)

// verify checks the S3 archive's versions, hash chains, checksums and
// retention. It
// exits 0 when nothing is wrong, 1 on any finding and 2 when it cannot
// run.
func verify(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		cfgFile, sink, bucket, prefix, endpoint, region, node, from, to, maxObject, anchorSources string
		pathStyle, asJSON                                                                         bool
		minRetention, maxGap                                                                      time.Duration
	)
	fs.StringVar(&cfgFile, "config", "", "agent configuration to take the S3 sink's bucket, endpoint and credentials from")
	fs.StringVar(&sink, "sink", "", "name of the S3 sink in --config (default: the only one)")
	fs.StringVar(&bucket, "bucket", "", "bucket (overrides --config)")
	fs.StringVar(&prefix, "prefix", "", "key prefix (overrides --config)")
	fs.StringVar(&endpoint, "endpoint", "", "S3-compatible endpoint (overrides --config)")
	fs.StringVar(&region, "region", "", "region (overrides --config)")
	fs.BoolVar(&pathStyle, "path-style", false, "address the bucket in the path")
	fs.StringVar(&node, "node", "", "check only this node's objects")
	fs.StringVar(&from, "from", "", "check objects from this time (RFC 3339), by the hour in their key")
	fs.StringVar(&to, "to", "", "check objects before this time (RFC 3339)")
	fs.DurationVar(&minRetention, "min-retention", -1, "Object Lock retention every object must have (default: the sink's objectLock.retention)")
	fs.DurationVar(&maxGap, "max-gap", -1, "longest time without an upload (events or heartbeats) and longest agent downtime that are not findings; 0 skips (default: 5m, or 5 heartbeat intervals of --config if longer)")
	fs.StringVar(&maxObject, "max-object-bytes", "1GiB", "most bytes read from one object, compressed or decompressed; a larger one is an oversized-object finding")
	fs.StringVar(&anchorSources, "anchors", "", "compare the archive with the chain heads the agent published to these destinations, comma-separated: the name of a kafka, elasticsearch or file sink in --config, or file:DIR for a file sink's directory")
	fs.BoolVar(&asJSON, "json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var cfg s3.Config
	requireLock := false
	if cfgFile != "" {
		c, err := loadConfig(&flags{config: cfgFile})
		if err != nil {
			fmt.Fprintf(stderr, "invalid configuration:\n%v\n", err)
			return 2
		}
		sc, err := s3Sink(c, sink)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		cfg = *sc
		requireLock = cfg.ObjectLock.Mode != ""
		if minRetention < 0 {
			minRetention = time.Duration(cfg.ObjectLock.Retention)
		}
		if maxGap < 0 {
			maxGap = max(5*time.Minute, 5*time.Duration(c.HeartbeatInterval))
		}
	}
	if maxGap < 0 {
		maxGap = 5 * time.Minute
	}
	for _, o := range []struct {
		dst *string
		v   string
	}{{&cfg.Bucket, bucket}, {&cfg.Prefix, prefix}, {&cfg.Endpoint, endpoint}, {&cfg.Region, region}} {
		if o.v != "" {
			*o.dst = o.v
		}
	}
	cfg.ForcePathStyle = cfg.ForcePathStyle || pathStyle
	if cfg.Bucket == "" {
		fmt.Fprintln(stderr, "verify: --bucket or --config is required")
		return 2
	}
	maxObjectBytes, err := units.ParseByteSize(maxObject)
	if err != nil || maxObjectBytes <= 0 {
		fmt.Fprintf(stderr, "verify: --max-object-bytes: must be a positive size, got %q\n", maxObject)
		return 2
	}
	opts := verifier.Options{Node: node, MinRetention: max(minRetention, 0), RequireLock: requireLock || minRetention > 0, MaxGap: maxGap,
		MaxObjectBytes: maxObjectBytes}
	for _, t := range []struct {
		dst  *time.Time
		v, n string
	}{{&opts.From, from, "--from"}, {&opts.To, to, "--to"}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339, t.v)
		if err != nil {
			fmt.Fprintf(stderr, "verify: %s: %v\n", t.n, err)
			return 2
		}
		*t.dst = v
	}
	cfg.ApplyDefaults()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if anchorSources != "" {
		if opts.Anchors, err = readAnchors(ctx, cfgFile, anchorSources); err != nil {
			fmt.Fprintf(stderr, "verify: --anchors: %v\n", err)
			return 2
		}
	}
	rep, err := verifier.Archive(ctx, cfg, opts)
	if err != nil {
		fmt.Fprintf(stderr, "verify: %v\n", err)
		return 2
	}
	if asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(rep)
	} else {
		printReport(stdout, rep)
	}
	if !rep.OK {
		return 1
	}
	return 0
}

// readAnchors reads the anchor records of each source: a sink of the
// configuration in cfgFile, by name, whose type reads anchors back
// (registry.Type.ReadAnchors), or file:DIR.
func readAnchors(ctx context.Context, cfgFile, sources string) ([]sinks.AnchorRecord, error) {
	out := []sinks.AnchorRecord{}
	var c *config.Config
	for src := range strings.SplitSeq(sources, ",") {
		if dir, ok := strings.CutPrefix(src, "file:"); ok {
			as, err := file.ReadAnchors(dir)
			if err != nil {
				return nil, err
			}
			out = append(out, as...)
			continue
		}
		if c == nil {
			if cfgFile == "" {
				return nil, fmt.Errorf("%q names a sink: --config is required", src)
			}
			var err error
			if c, err = loadConfig(&flags{config: cfgFile}); err != nil {
				return nil, err
			}
		}
		i := slices.IndexFunc(c.Sinks, func(sc config.Sink) bool { return sc.Name == src })
		if i < 0 {
			return nil, fmt.Errorf("no sink %q in %s", src, cfgFile)
		}
		sc := c.Sinks[i]
		t, _ := registry.Lookup(sc.Type)
		if t.ReadAnchors == nil {
			return nil, fmt.Errorf("sink %q is of type %s; anchors are read back from sinks of type %s", src, sc.Type, anchorTypes())
		}
		as, err := t.ReadAnchors(ctx, sc.Section)
		if err != nil {
			return nil, fmt.Errorf("sink %s: %w", src, err)
		}
		out = append(out, as...)
	}
	return out, nil
}

// anchorTypes lists the sink types that anchors are read back from.
func anchorTypes() string {
	var names []string
	for _, t := range registry.Types {
		if t.ReadAnchors != nil {
			names = append(names, t.Name)
		}
	}
	return strings.Join(names, ", ")
}

func s3Sink(c *config.Config, name string) (*s3.Config, error) {
	var found *s3.Config
	for _, sc := range c.Sinks {
		if sc.Type != "s3" || (name != "" && sc.Name != name) {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("verify: the configuration has several S3 sinks; name one with --sink")
		}
		found = sc.Section.(*s3.Config)
	}
	if found == nil {
		return nil, fmt.Errorf("verify: no S3 sink %q in the configuration", name)
	}
	return found, nil
}

func printReport(w io.Writer, rep *verifier.Report) {
	fmt.Fprintf(w, "s3://%s/%s: %d objects, %d bytes\n", rep.Bucket, rep.Prefix, rep.Objects, rep.Bytes)
	for _, e := range rep.Epochs {
		fmt.Fprintf(w, "chain %s epoch %s: objects %d..%d (%d), events %s .. %s", e.Chain, e.Epoch, e.FirstSeq, e.LastSeq,
			e.Objects, e.FirstEvent, e.LastEvent)
		if e.Start != "" {
			fmt.Fprintf(w, ", started: %s", e.Start)
		}
		if e.Closed {
			fmt.Fprint(w, ", closed")
		}
		if e.AnchoredSeq > 0 {
			fmt.Fprintf(w, ", anchored up to %d", e.AnchoredSeq)
		}
		fmt.Fprintln(w)
	}
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "FINDING %s: %s", f.Kind, f.Detail)
		if f.Key != "" {
			fmt.Fprintf(w, " (%s)", f.Key)
		}
		fmt.Fprintln(w)
	}
	for _, k := range slices.Sorted(maps.Keys(rep.Marked)) {
		fmt.Fprintf(w, "agent records %s: %d\n", k, rep.Marked[k])
	}
	if rep.OK {
		fmt.Fprintln(w, "OK: every version, checksum, manifest, chain link and end, time gap and retention verified")
	} else {
		fmt.Fprintf(w, "%d findings\n", len(rep.Findings))
	}
}
