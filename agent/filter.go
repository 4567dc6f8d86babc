package agent

import (
	"path"

	"github.com/auditrail/auditrail/internal/auditjson"
)

// DropRule drops the events it matches from one sink. An empty list
// matches anything; each non-empty list must have a pattern that matches
// (path.Match globs, e.g. "system:serviceaccount:kube-system:*"). Only
// audit events are ever dropped: unparsed lines, stubs and gap records
// always reach every sink.
type DropRule struct {
	Name       string
	Verbs      []string
	Resources  []string // resource, or resource/subresource
	Namespaces []string
	Users      []string
}

func (r *DropRule) matches(ev *auditjson.Event) bool {
	res := string(ev.Resource)
	if len(ev.Subresource) > 0 {
		res += "/" + string(ev.Subresource)
	}
	return anyMatch(r.Verbs, string(ev.Verb)) && anyMatch(r.Resources, res) &&
		anyMatch(r.Namespaces, string(ev.Namespace)) && anyMatch(r.Users, string(ev.Username))
}

func anyMatch(patterns []string, s string) bool {
	if len(patterns) == 0 {
		return true
	}
	for _, p := range patterns {
		if ok, _ := path.Match(p, s); ok {
			return true
		}
	}
	return false
}
