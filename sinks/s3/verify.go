package s3

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/auditrail/auditrail/sinks"
)

// VerifyOptions select what Verify checks.
type VerifyOptions struct {
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
	// of a chain, and the longest downtime a start record may report,
	// before they are findings; zero skips both checks. An agent sends a
	// heartbeat when idle, so it should be well above the agent's
	// heartbeatInterval.
	MaxGap time.Duration
	// MaxObjectBytes bounds the bytes read from one object, compressed
	// and decompressed.
	MaxObjectBytes int64
}

// Finding is one problem Verify found.
type Finding struct {
	// Kind is checksum-mismatch, misplaced, no-chain, no-manifest,
	// manifest-mismatch, missing, broken-link, duplicate-seq,
	// chain-restart, time-gap, agent-stopped, source-gap, tamper,
	// unlocked or short-retention.
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
}

// Report is Verify's result.
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
	OK     bool           `json:"ok"`
}

type verified struct {
	key        string
	sha        string // computed from the content
	meta       map[string]string
	seq        int64
	lastMod    time.Time
	firstEvent string
	// marked are the agent's own records in the object.
	marked []markedRecord
}

// markedRecord is a record the agent made, found in an object.
type markedRecord struct {
	kind string // the record's "kind": sinks.GapRecordKind, …
	line []byte
}

// Verify walks the archive under cfg's bucket and prefix: it downloads
// every object and checks its SHA-256 against its metadata and S3's
// checksum, follows every hash chain link, reports missing sequence
// numbers and chain restarts, and checks each object's Object Lock.
func Verify(ctx context.Context, cfg Config, opts VerifyOptions) (*Report, error) {
	client, err := newClient(ctx, cfg)
	if err != nil {
		return nil, err
	}
	prefix := strings.Trim(cfg.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	rep := &Report{Bucket: cfg.Bucket, Prefix: prefix, Epochs: []EpochReport{}, Findings: []Finding{}, Marked: map[string]int{}}
	add := func(f Finding) { rep.Findings = append(rep.Findings, f) }
	chains := map[string]map[string][]*verified{} // chain → epoch → objects
	pages := s3.NewListObjectsV2Paginator(client, &s3.ListObjectsV2Input{Bucket: aws.String(cfg.Bucket), Prefix: aws.String(prefix)})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("list s3://%s/%s: %w", cfg.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if !selected(key, opts) {
				continue
			}
			v, err := verifyObject(ctx, client, cfg.Bucket, key, opts, add)
			if err != nil {
				return nil, err
			}
			rep.Objects++
			rep.Bytes += aws.ToInt64(o.Size)
			if v == nil {
				continue
			}
			for _, m := range v.marked {
				rep.Marked[m.kind]++
			}
			id := v.meta[MetaChain]
			if chains[id] == nil {
				chains[id] = map[string][]*verified{}
			}
			chains[id][v.meta[MetaEpoch]] = append(chains[id][v.meta[MetaEpoch]], v)
		}
	}
	for _, id := range slices.Sorted(maps.Keys(chains)) {
		for i, epoch := range slices.Sorted(maps.Keys(chains[id])) {
			rep.Epochs = append(rep.Epochs, checkEpoch(id, epoch, i == 0, chains[id][epoch], opts, add))
		}
	}
	rep.OK = len(rep.Findings) == 0
	return rep, nil
}

// selected reports whether key is in the node and time window.
func selected(key string, opts VerifyOptions) bool {
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

// verifyObject downloads one object and checks it alone; it returns nil
// for an object outside any chain.
func verifyObject(ctx context.Context, client *s3.Client, bucket, key string, opts VerifyOptions, add func(Finding)) (*verified, error) {
	out, err := client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	body, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	sum32 := sha256.Sum256(body)
	sum := sum32[:]
	v := &verified{key: key, sha: hex.EncodeToString(sum), meta: out.Metadata, lastMod: aws.ToTime(out.LastModified),
		firstEvent: out.Metadata["first-event"]}
	manifest, recs, err := ReadObject(key, body)
	switch {
	case errors.Is(err, ErrRecordsMismatch):
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: err.Error()})
	case err != nil:
		add(Finding{Kind: "no-manifest", Key: key, Detail: err.Error()})
	default:
		if f := manifest.mismatch(out.Metadata); f != "" {
			add(Finding{Kind: "manifest-mismatch", Key: key, Detail: fmt.Sprintf("the manifest line's %s differs from the object's metadata", f)})
		}
	}
	v.marked = markedRecords(recs)
	if want := out.Metadata[MetaSHA256]; want != v.sha {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: fmt.Sprintf("content SHA-256 %s, metadata says %q", v.sha, want)})
	}
	if c := aws.ToString(out.ChecksumSHA256); c != "" && !strings.Contains(c, "-") && c != base64.StdEncoding.EncodeToString(sum) {
		add(Finding{Kind: "checksum-mismatch", Key: key, Detail: "content does not match S3's stored SHA-256 checksum " + c})
	}
	switch {
	case out.ObjectLockMode == "":
		if opts.RequireLock {
			add(Finding{Kind: "unlocked", Key: key, Detail: "no Object Lock retention"})
		}
	case opts.MinRetention > 0:
		until := aws.ToTime(out.ObjectLockRetainUntilDate)
		if until.Sub(v.lastMod) < opts.MinRetention-time.Minute {
			add(Finding{Kind: "short-retention", Key: key, Detail: fmt.Sprintf("%s retention until %s, %s after upload; policy is %s",
				out.ObjectLockMode, until.UTC().Format(time.RFC3339), until.Sub(v.lastMod).Round(time.Second), opts.MinRetention)})
		}
	}
	if !placed(key, out.Metadata) {
		add(Finding{Kind: "misplaced", Key: key, Detail: fmt.Sprintf("the object's metadata describes source %s bytes %s, not what its key names",
			out.Metadata["source-file"], out.Metadata["source-range"])})
	}
	seq, err := strconv.ParseInt(out.Metadata[MetaSeq], 10, 64)
	if err != nil || out.Metadata[MetaEpoch] == "" {
		add(Finding{Kind: "no-chain", Key: key, Detail: "object carries no hash chain metadata"})
		return nil, nil
	}
	v.seq = seq
	return v, nil
}

// markedRecords returns the records the agent made among recs.
func markedRecords(recs []byte) []markedRecord {
	var out []markedRecord
	for len(recs) > 0 {
		line := recs
		if i := bytes.IndexByte(recs, '\n'); i >= 0 {
			line, recs = recs[:i], recs[i+1:]
		} else {
			recs = nil
		}
		if !bytes.Contains(line, []byte(`"kind":"Auditrail`)) || !bytes.Contains(line, []byte(`"apiVersion":"`+sinks.RecordAPIVersion+`"`)) {
			continue
		}
		var head struct{ Kind string }
		if json.Unmarshal(line, &head) == nil && strings.HasPrefix(head.Kind, "Auditrail") {
			// A copy: the line is inside the whole decompressed object.
			out = append(out, markedRecord{kind: head.Kind, line: bytes.Clone(line)})
		}
	}
	return out
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

// checkEpoch follows one epoch's links in sequence order.
func checkEpoch(id, epoch string, first bool, objs []*verified, opts VerifyOptions, add func(Finding)) EpochReport {
	sort.Slice(objs, func(i, j int) bool {
		if objs[i].seq != objs[j].seq {
			return objs[i].seq < objs[j].seq
		}
		return objs[i].lastMod.Before(objs[j].lastMod)
	})
	er := EpochReport{Chain: id, Epoch: epoch, FirstSeq: objs[0].seq, LastSeq: objs[len(objs)-1].seq, Objects: len(objs),
		FirstEvent: objs[0].firstEvent, LastEvent: objs[len(objs)-1].meta["last-event"]}
	windowed := !opts.From.IsZero() || !opts.To.IsZero()
	if objs[0].seq == 1 {
		er.Start = objs[0].meta[MetaChainStart]
		if !first {
			add(Finding{Kind: "chain-restart", Key: objs[0].key, Chain: id, Epoch: epoch, Seq: 1,
				Detail: fmt.Sprintf("the chain starts again (%s): the agent's state was lost or replaced; compare the events around %s with the previous epoch", er.Start, objs[0].firstEvent)})
		}
	} else if !windowed {
		add(Finding{Kind: "missing", Key: objs[0].key, Chain: id, Epoch: epoch, Seq: objs[0].seq,
			Detail: fmt.Sprintf("objects 1 to %d of the epoch are missing", objs[0].seq-1)})
	}
	var born time.Time // the chain's first start, when this is its first epoch
	if first {
		if t, err := time.Parse(epochLayout, strings.SplitN(epoch, "-", 2)[0]); err == nil {
			born = t
		}
	}
	for _, o := range objs {
		checkMarked(o, id, epoch, born, opts, add)
	}
	for i := 1; i < len(objs); i++ {
		prev, cur := objs[i-1], objs[i]
		if d := cur.lastMod.Sub(prev.lastMod); opts.MaxGap > 0 && d > opts.MaxGap {
			add(Finding{Kind: "time-gap", Key: cur.key, Chain: id, Epoch: epoch, Seq: cur.seq,
				Detail: fmt.Sprintf("nothing uploaded for %s, from %s to %s, not even a heartbeat: the agent was stopped or could not reach S3",
					d.Round(time.Second), prev.lastMod.UTC().Format(time.RFC3339), cur.lastMod.UTC().Format(time.RFC3339))})
		}
		switch {
		case cur.seq == prev.seq:
			add(Finding{Kind: "duplicate-seq", Key: cur.key, Chain: id, Epoch: epoch, Seq: cur.seq,
				Detail: "two objects claim sequence number " + strconv.FormatInt(cur.seq, 10) + ": " + prev.key})
		case cur.seq > prev.seq+1:
			add(Finding{Kind: "missing", Key: cur.key, Chain: id, Epoch: epoch, Seq: prev.seq + 1,
				Detail: fmt.Sprintf("objects %d to %d are missing, between %s and %s", prev.seq+1, cur.seq-1, prev.key, cur.key)})
		case cur.meta[MetaPrev] != prev.sha:
			add(Finding{Kind: "broken-link", Key: cur.key, Chain: id, Epoch: epoch, Seq: cur.seq,
				Detail: fmt.Sprintf("previous object %s has SHA-256 %s, this object links to %q", prev.key, prev.sha, cur.meta[MetaPrev])})
		}
	}
	return er
}

// checkMarked reports what the agent's own records in o say: data lost on
// the node, tampering, and downtime. A no-state tamper record made when the
// chain was born (the start of its first epoch, zero if this is not it) is
// the node's first start, wherever a crash may have put it.
func checkMarked(o *verified, chain, epoch string, born time.Time, opts VerifyOptions, add func(Finding)) {
	for _, m := range o.marked {
		f := Finding{Key: o.key, Chain: chain, Epoch: epoch, Seq: o.seq}
		switch m.kind {
		case sinks.GapRecordKind:
			var g sinks.GapRecord
			json.Unmarshal(m.line, &g)
			to := strconv.FormatInt(g.Bytes.To, 10)
			if !g.Bytes.ToKnown {
				to = "at least " + to
			}
			f.Kind = "source-gap"
			f.Detail = fmt.Sprintf("the agent could not read bytes %d to %s of %s (%s, detected %s); events between %s and %s may be missing",
				g.Bytes.From, to, g.File.Path, g.Reason, g.DetectedAt, orUnknown(g.Time.After), orUnknown(g.Time.Before))
		case sinks.TamperRecordKind:
			var tr sinks.TamperRecord
			json.Unmarshal(m.line, &tr)
			if t, err := time.Parse(time.RFC3339Nano, tr.DetectedAt); err == nil && tr.Reason == sinks.TamperNoState &&
				!born.IsZero() && t.Sub(born).Abs() < time.Minute {
				continue
			}
			f.Kind = "tamper"
			f.Detail = fmt.Sprintf("%s, detected %s: %s", tr.Reason, tr.DetectedAt, tr.Detail)
			if tr.File != nil && tr.File.Path != "" {
				f.Detail += " (" + tr.File.Path + ")"
			}
		case sinks.StartRecordKind:
			var st sinks.StartRecord
			json.Unmarshal(m.line, &st)
			down := time.Duration(st.DowntimeSeconds * float64(time.Second))
			if opts.MaxGap <= 0 || down <= opts.MaxGap {
				continue
			}
			f.Kind = "agent-stopped"
			f.Detail = fmt.Sprintf("the agent was not running for %s, from %s to %s", down.Round(time.Second), st.PreviousRunUntil, st.StartedAt)
		default:
			continue
		}
		add(f)
	}
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
