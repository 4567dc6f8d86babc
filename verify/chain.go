package verify

import (
	"encoding/json"
	"fmt"
	"sort"
	"strconv"
	"time"

	"github.com/auditrail/auditrail/sinks"
	s3sink "github.com/auditrail/auditrail/sinks/s3"
)

// checkEpoch follows one epoch's links in sequence order.
func checkEpoch(id, epoch string, first bool, objs []*verified, opts Options, add func(Finding)) EpochReport {
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
		er.Start = objs[0].meta[s3sink.MetaChainStart]
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
		if t, err := s3sink.EpochStart(epoch); err == nil {
			born = t
		}
	}
	for _, o := range objs {
		checkMarked(o, id, epoch, born, opts, add)
	}
	checkLinks(id, epoch, objs, opts, add)
	er.Closed = objs[len(objs)-1].closed
	return er
}

// checkLinks follows the links between consecutive objects of an epoch,
// sorted, and the time between their uploads. An object too large to
// hash links to nothing checkable.
func checkLinks(id, epoch string, objs []*verified, opts Options, add func(Finding)) {
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
		case prev.sha != "" && cur.meta[s3sink.MetaPrev] != prev.sha:
			add(Finding{Kind: "broken-link", Key: cur.key, Chain: id, Epoch: epoch, Seq: cur.seq,
				Detail: fmt.Sprintf("previous object %s has SHA-256 %s, this object links to %q", prev.key, prev.sha, cur.meta[s3sink.MetaPrev])})
		}
	}
}

// checkEnd reports the last epoch of a chain, sorted, that stops: its last
// object does not say the sink closed the chain, and it was uploaded more
// than opts.MaxGap before now (or opts.To): the agent was stopped without
// a clean shutdown and not started again, or its node or sink renamed.
// A live chain uploads at least a heartbeat every heartbeatInterval.
func checkEnd(id, epoch string, objs []*verified, opts Options, add func(Finding)) {
	last := objs[len(objs)-1]
	if last.closed || opts.MaxGap <= 0 {
		return
	}
	ref, what := opts.Now, "now"
	if ref.IsZero() {
		ref = time.Now()
	}
	if !opts.To.IsZero() && opts.To.Before(ref) {
		ref, what = opts.To, "the end of the window"
	}
	// S3 keeps times to the second.
	if d := ref.Sub(last.lastMod); d > opts.MaxGap+time.Second {
		add(Finding{Kind: "chain-ended", Key: last.key, Chain: id, Epoch: epoch, Seq: last.seq, Detail: fmt.Sprintf(
			"the chain stops at %s, %s before %s, and its last object does not say the sink closed it: "+
				"the agent was stopped and not started again, its node or sink was renamed, or later objects were removed",
			last.lastMod.UTC().Format(time.RFC3339), d.Round(time.Second), what)})
	}
}

// checkMarked reports what the agent's own records in o say: data lost on
// the node, tampering, and downtime. A no-state tamper record made when the
// chain was born (the start of its first epoch, zero if this is not it) is
// the node's first start, wherever a crash may have put it.
func checkMarked(o *verified, chain, epoch string, born time.Time, opts Options, add func(Finding)) {
	for _, m := range o.marked {
		f := Finding{Key: o.key, Chain: chain, Epoch: epoch, Seq: o.seq}
		switch m.Kind {
		case sinks.GapRecordKind:
			var g sinks.GapRecord
			json.Unmarshal(m.Line, &g)
			to := strconv.FormatInt(g.Bytes.To, 10)
			if !g.Bytes.ToKnown {
				to = "at least " + to
			}
			f.Kind = "source-gap"
			f.Detail = fmt.Sprintf("the agent could not read bytes %d to %s of %s (%s, detected %s); events between %s and %s may be missing",
				g.Bytes.From, to, g.File.Path, g.Reason, g.DetectedAt, orUnknown(g.Time.After), orUnknown(g.Time.Before))
		case sinks.TamperRecordKind:
			var tr sinks.TamperRecord
			json.Unmarshal(m.Line, &tr)
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
			json.Unmarshal(m.Line, &st)
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
