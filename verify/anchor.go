package verify

import (
	"fmt"
	"slices"
	"strings"

	"github.com/auditrail/auditrail/sinks"
)

// anchorAt names the object an anchor record speaks of.
type anchorAt struct {
	chain, epoch string
	seq          int64
}

// checkAnchors compares the archive with the chain heads the agent
// published to other destinations (sinks.AnchorRecord). Root on the node
// can rewrite an archive it can delete from (Governance mode with the
// permission to bypass it, retention run out), re-link the chain and
// update the chain state, and the chain alone then verifies; it cannot
// take back the anchors already delivered elsewhere. Each anchored object
// must be in the archive with the anchored SHA-256, and anchors must not
// disagree with each other: the node's credentials can add an anchor, not
// remove one.
func checkAnchors(chains map[string]map[string][]*verified, anchors []sinks.AnchorRecord, opts Options, rep *Report, add func(Finding)) {
	objs := map[anchorAt][]*verified{}
	for id, epochs := range chains {
		for epoch, os := range epochs {
			for _, o := range os {
				at := anchorAt{id, epoch, o.seq}
				objs[at] = append(objs[at], o)
			}
		}
	}
	shas := map[anchorAt][]sinks.AnchorRecord{}
	var order []anchorAt
	for _, a := range anchors {
		if a.Kind != sinks.AnchorRecordKind || a.Chain == "" || a.Epoch == "" || a.Seq <= 0 {
			continue
		}
		if opts.Node != "" && !strings.HasPrefix(a.Chain, opts.Node+"/") || a.Key != "" && !selected(a.Key, opts) {
			continue
		}
		at := anchorAt{a.Chain, a.Epoch, a.Seq}
		if len(shas[at]) == 0 {
			order = append(order, at)
		}
		if !slices.ContainsFunc(shas[at], func(b sinks.AnchorRecord) bool { return b.SHA256 == a.SHA256 }) {
			shas[at] = append(shas[at], a)
		}
	}
	anchored := map[[2]string]int64{} // chain, epoch → highest seq anchored and matching
	for _, at := range order {
		as := shas[at]
		rep.Anchors++
		if len(as) > 1 {
			var list []string
			for _, a := range as {
				list = append(list, fmt.Sprintf("%s (published %s)", a.SHA256, a.AnchoredAt))
			}
			add(Finding{Kind: "anchor-conflict", Key: as[0].Key, Chain: at.chain, Epoch: at.epoch, Seq: at.seq,
				Detail: fmt.Sprintf("anchors disagree on object %d: %s; one of them was forged with the node's credentials", at.seq, strings.Join(list, ", "))})
		}
		os := objs[at]
		if len(os) == 0 {
			add(Finding{Kind: "anchor-missing", Key: as[0].Key, Chain: at.chain, Epoch: at.epoch, Seq: at.seq,
				Detail: fmt.Sprintf("an anchor published at %s names object %d of this epoch at %s, and the archive holds no such object: it was deleted", as[0].AnchoredAt, at.seq, as[0].Key)})
			continue
		}
		match := true
		for _, o := range os {
			if o.sha == "" {
				continue // too large to hash: reported as oversized-object
			}
			if !slices.ContainsFunc(as, func(a sinks.AnchorRecord) bool { return a.SHA256 == o.sha }) {
				match = false
				add(Finding{Kind: "anchor-mismatch", Key: o.key, Chain: at.chain, Epoch: at.epoch, Seq: at.seq,
					Detail: fmt.Sprintf("the object's SHA-256 is %s; the anchor published at %s off the node says %s: the object, and the chain up to it, was rewritten after it was uploaded", o.sha, as[0].AnchoredAt, as[0].SHA256)})
			}
		}
		if k := [2]string{at.chain, at.epoch}; match && at.seq > anchored[k] {
			anchored[k] = at.seq
		}
	}
	for i := range rep.Epochs {
		rep.Epochs[i].AnchoredSeq = anchored[[2]string{rep.Epochs[i].Chain, rep.Epochs[i].Epoch}]
	}
}
