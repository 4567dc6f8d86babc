// Package verify checks an archive the s3 sink wrote (its on-bucket format
// is stated in package sinks/s3): every version of every key, each
// object's SHA-256 against its metadata, its manifest line and S3's
// checksum, the hash chain links of every epoch and how each chain ends,
// the agent's own records (gaps, tampering, downtime), Object Lock
// retention, and, given the chain heads the agent published to its other
// sinks (Options.Anchors, read back by those sinks' ReadAnchors), that
// each anchored object is in the archive as anchored. Archive returns a Report; a Report without
// findings is OK.
package verify

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
)

// Options select what Archive checks.
type Options struct {
	// Node restricts the walk to one node's objects (the node= key part).
	Node string
	// From and To restrict it to objects whose first event falls in
	// [From, To), by the hour in the key; zero means unbounded.
	From, To time.Time
	// MinRetention is the Object Lock retention every object must have
	// from its upload; zero skips the retention check.
	MinRetention time.Duration
	// RequireLock reports objects without an Object Lock mode.
	RequireLock bool
	// MaxGap is the longest time allowed between two consecutive uploads
	// of a chain, the longest downtime a start record may report, and
	// the longest time since the last upload of a chain its sink did not
	// close (before To when set, else before now), before they are
	// findings; zero skips these checks. An agent sends a heartbeat when
	// idle, so it should be well above the agent's heartbeatInterval.
	MaxGap time.Duration
	// MaxObjectBytes bounds the bytes read from one object, compressed
	// and decompressed; an object past it is an oversized-object finding.
	// Zero means s3sink.DefaultMaxObjectBytes.
	MaxObjectBytes int64
	// Now is the time the last uploads are compared with; zero is the
	// clock's.
	Now time.Time
	// Anchors are chain heads the agent published to its other sinks
	// (sinks.AnchorRecord), read back from them: each anchored object must
	// be in the archive as anchored. Nil skips the check.
	Anchors []sinks.AnchorRecord
}

// Finding is one problem Archive found.
type Finding struct {
	// Kind is checksum-mismatch, misplaced, no-chain, no-manifest,
	// manifest-mismatch, missing, broken-link, duplicate-seq,
	// chain-restart, time-gap, agent-stopped, source-gap, tamper,
	// unlocked, short-retention, overwritten, deleted, key-collision,
	// chain-ended, oversized-object, anchor-missing, anchor-mismatch or
	// anchor-conflict.
	Kind   string `json:"kind"`
	Key    string `json:"key,omitempty"`
	Chain  string `json:"chain,omitempty"`
	Epoch  string `json:"epoch,omitempty"`
	Seq    int64  `json:"seq,omitempty"`
	Detail string `json:"detail"`
}

// EpochReport summarizes one epoch of one chain.
type EpochReport struct {
	Chain      string `json:"chain"`
	Epoch      string `json:"epoch"`
	Start      string `json:"start,omitempty"`
	FirstSeq   int64  `json:"firstSeq"`
	LastSeq    int64  `json:"lastSeq"`
	Objects    int    `json:"objects"`
	FirstEvent string `json:"firstEvent,omitempty"`
	LastEvent  string `json:"lastEvent,omitempty"`
	// Closed is set when the epoch's last object says its sink closed
	// the chain (a clean shutdown).
	Closed bool `json:"closed,omitempty"`
	// AnchoredSeq is the last object of the epoch that an anchor read
	// back from another destination confirms (Options.Anchors): it
	// and every object before it are as uploaded. 0 when none is.
	AnchoredSeq int64 `json:"anchoredSeq,omitempty"`
}

// Report is Archive's result.
type Report struct {
	Bucket   string        `json:"bucket"`
	Prefix   string        `json:"prefix"`
	Objects  int           `json:"objects"`
	Bytes    int64         `json:"bytes"`
	Epochs   []EpochReport `json:"epochs"`
	Findings []Finding     `json:"findings"`
	// Marked counts the records the agent made, by kind: AuditrailGap,
	// AuditrailTamper, AuditrailHeartbeat, AuditrailAgentStarted, …
	Marked map[string]int `json:"marked"`
	// Anchors counts the distinct anchored objects checked.
	Anchors int  `json:"anchors,omitempty"`
	OK      bool `json:"ok"`
}

type verified struct {
	key        string
	sha        string // computed from the content; "" when too large to read
	meta       map[string]string
	seq        int64
	lastMod    time.Time
	firstEvent string
	closed     bool // the manifest says the sink closed the chain here
	// marked are the agent's own records in the object.
	marked []s3sink.MarkedRecord
}

// Archive walks the archive under cfg's bucket and prefix: it lists every
// version of every key, reports keys written over or deleted, downloads
// the oldest version of each and checks its SHA-256 against its metadata,
// its manifest and S3's checksum, follows every hash chain link, reports
// missing sequence numbers, chain restarts and chains that stopped, and
// checks each object's Object Lock.
func Archive(ctx context.Context, cfg s3sink.Config, opts Options) (*Report, error) {
	client, err := s3sink.NewClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	rep := &Report{Bucket: cfg.Bucket, Prefix: prefix, Epochs: []EpochReport{}, Findings: []Finding{}, Marked: map[string]int{}}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	keys, err := listVersions(ctx, client, cfg.Bucket, prefix, opts)
	if err != nil {
		return nil, err
	}
	chains, err := verifyObjects(ctx, client, cfg.Bucket, keys, opts, rep, add)
	if err != nil {
		return nil, err
	}
	for _, id := range slices.Sorted(maps.Keys(chains)) {
		epochs := slices.Sorted(maps.Keys(chains[id]))
		for i, epoch := range epochs {
			er := checkEpoch(id, epoch, i == 0, chains[id][epoch], opts, add)
			if i == len(epochs)-1 {
				checkEnd(id, epoch, chains[id][epoch], opts, add)
			}
			rep.Epochs = append(rep.Epochs, er)
		}
	}
	if opts.Anchors != nil {
		checkAnchors(chains, opts.Anchors, opts, rep, add)
	}
	rep.OK = len(rep.Findings) == 0
	return rep, nil
}

// verifyObjects checks the oldest version of every key and returns the
// objects of every chain, by chain and epoch.
func verifyObjects(ctx context.Context, client *s3.Client, bucket string, keys []*keyVersions, opts Options,
	rep *Report, add func(Finding)) (map[string]map[string][]*verified, error) {
	sc := &s3sink.Scanner{Limit: opts.MaxObjectBytes}
	if sc.Limit <= 0 {
		sc.Limit = s3sink.DefaultMaxObjectBytes
	}
	defer sc.Close()
	chains := map[string]map[string][]*verified{} // chain → epoch → objects
	for _, k := range keys {
		k.check(add)
		if len(k.versions) == 0 {
			continue
		}
		v, err := verifyObject(ctx, client, sc, bucket, k, opts, add)
		if err != nil {
			return nil, err
		}
		rep.Objects++
		rep.Bytes += k.size()
		if v == nil {
			continue
		}
		for _, m := range v.marked {
			rep.Marked[m.Kind]++
		}
		id := v.meta[s3sink.MetaChain]
		if chains[id] == nil {
			chains[id] = map[string][]*verified{}
		}
		chains[id][v.meta[s3sink.MetaEpoch]] = append(chains[id][v.meta[s3sink.MetaEpoch]], v)
	}
	return chains, nil
}

// selected reports whether key is in the node and time window.
func selected(key string, opts Options) bool {
	if opts.Node != "" && !strings.Contains(key, "/node="+opts.Node+"/") && !strings.HasPrefix(key, "node="+opts.Node+"/") {
		return false
	}
	if opts.From.IsZero() && opts.To.IsZero() {
		return true
	}
	i := strings.Index(key, "dt=")
	j := strings.Index(key, "/hour=")
	if i < 0 || j < 0 || j+8 > len(key) {
		return false
	}
	hour, err := time.Parse("2006-01-02T15", key[i+3:j]+"T"+key[j+6:j+8])
	if err != nil {
		return false
	}
	return (opts.From.IsZero() || !hour.Add(time.Hour).Before(opts.From.Add(time.Nanosecond))) &&
		(opts.To.IsZero() || hour.Before(opts.To))
}

// placed reports whether the key names the source file and start offset
// the metadata describes: content moved to another key is not.
func placed(key string, meta map[string]string) bool {
	start, _, ok := strings.Cut(meta["source-range"], "-")
	n, err := strconv.ParseInt(start, 10, 64)
	if !ok || err != nil || meta["source-file"] == "" {
		return false
	}
	return strings.Contains(key, fmt.Sprintf("_%s_%020d-", meta["source-file"], n))
}
