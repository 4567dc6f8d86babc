package policy

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apiserver/pkg/apis/audit"
	"k8s.io/apiserver/pkg/authentication/user"
	"k8s.io/apiserver/pkg/authorization/authorizer"
)

// probe is a representative request: a resource request when resource is
// set, a non-resource one (path) otherwise.
type probe struct {
	id                               identity
	verb, namespace, group, resource string
	subresource, name, path          string
}

type identity struct {
	user   string
	groups []string
}

func (p probe) attributes() authorizer.Attributes {
	return authorizer.AttributesRecord{
		User: &user.DefaultInfo{Name: p.id.user, Groups: p.id.groups},
		Verb: p.verb, Namespace: p.namespace, APIGroup: p.group,
		Resource: p.resource, Subresource: p.subresource, Name: p.name,
		ResourceRequest: p.resource != "", Path: p.path,
	}
}

func (p probe) String() string {
	var b strings.Builder
	b.WriteString(p.verb)
	b.WriteByte(' ')
	if p.resource == "" {
		b.WriteString(p.path)
	} else {
		b.WriteString(p.resource)
		if p.subresource != "" {
			b.WriteString("/" + p.subresource)
		}
		if p.group != "" {
			b.WriteString("." + p.group)
		}
		if p.name != "" {
			b.WriteString(" " + p.name)
		}
		if p.namespace != "" {
			fmt.Fprintf(&b, " in namespace %s", p.namespace)
		}
	}
	fmt.Fprintf(&b, " by %s", p.id.user)
	return b.String()
}

// kind is a resource a probe names.
type kind struct {
	group, resource, subresource string
	clusterScoped                bool
}

// probeSet holds what probes vary over: fixed identities and namespaces
// plus every user, group, namespace and resource name the policy names,
// so that a rule scoped to any of them is probed.
type probeSet struct {
	everyone, outsiders, controlPlane []identity
	namespaces, names                 []string
}

func serviceAccount(ns, name string) identity {
	return identity{"system:serviceaccount:" + ns + ":" + name,
		[]string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}}
}

// isControlPlane tells the control plane's own identities, whose reads,
// watches and writes are the cluster's background chatter, from those the
// built-in detection rules watch.
func isControlPlane(id identity) bool {
	return id.user == "system:apiserver" || strings.HasPrefix(id.user, "system:kube-") ||
		strings.HasPrefix(id.user, "system:node:") ||
		strings.HasPrefix(id.user, "system:serviceaccount:kube-system:") ||
		slices.Contains(id.groups, "system:nodes")
}

func newProbeSet(p *audit.Policy) *probeSet {
	ids := []identity{
		{"alice", []string{"system:authenticated"}},
		serviceAccount("default", "app"),
		{"system:admin", []string{"system:masters", "system:authenticated"}},
		{"system:anonymous", []string{"system:unauthenticated"}},
		{"system:kube-controller-manager", []string{"system:authenticated"}},
		{"system:kube-scheduler", []string{"system:authenticated"}},
		{"system:kube-proxy", []string{"system:authenticated"}},
		{"system:node:node-1", []string{"system:nodes", "system:authenticated"}},
		serviceAccount("kube-system", "replicaset-controller"),
		{"system:apiserver", []string{"system:authenticated", "system:masters"}},
	}
	s := &probeSet{namespaces: []string{"default", "kube-system", "kube-node-lease", ""}, names: []string{"", "probe"}}
	for _, r := range p.Rules {
		for _, u := range r.Users {
			id := identity{u, []string{"system:authenticated"}}
			if ns, name, ok := strings.Cut(strings.TrimPrefix(u, "system:serviceaccount:"), ":"); ok && strings.HasPrefix(u, "system:serviceaccount:") {
				id = serviceAccount(ns, name)
			}
			ids = append(ids, id)
		}
		for _, g := range r.UserGroups {
			ids = append(ids, identity{"member-of-" + g, []string{g, "system:authenticated"}})
		}
		s.namespaces = append(s.namespaces, r.Namespaces...)
		for _, gr := range r.Resources {
			s.names = append(s.names, gr.ResourceNames...)
		}
	}
	// "" (cluster-wide) last: messages quote the first probe found, and
	// one in a namespace reads better.
	slices.SortFunc(s.namespaces, func(a, b string) int {
		return cmp.Or(cmp.Compare(b2i(a == ""), b2i(b == "")), cmp.Compare(a, b))
	})
	s.namespaces = slices.Compact(s.namespaces)
	slices.Sort(s.names)
	s.names = slices.Compact(s.names)
	for _, id := range ids {
		s.everyone = append(s.everyone, id)
		if isControlPlane(id) {
			s.controlPlane = append(s.controlPlane, id)
		} else {
			s.outsiders = append(s.outsiders, id)
		}
	}
	return s
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// resources returns the probes of every identity in ids doing each verb
// to each kind, in every namespace (none for cluster-scoped kinds) and
// with every name.
func (s *probeSet) resources(ids []identity, verbs []string, kinds ...kind) []probe {
	var out []probe
	for _, k := range kinds {
		nss := s.namespaces
		if k.clusterScoped {
			nss = []string{""}
		}
		for _, id := range ids {
			for _, v := range verbs {
				for _, ns := range nss {
					for _, n := range s.names {
						out = append(out, probe{id: id, verb: v, namespace: ns, group: k.group,
							resource: k.resource, subresource: k.subresource, name: n})
					}
				}
			}
		}
	}
	return out
}

// paths returns the probes of every identity in ids getting each path.
func (s *probeSet) paths(ids []identity, paths ...string) []probe {
	var out []probe
	for _, id := range ids {
		for _, p := range paths {
			out = append(out, probe{id: id, verb: "get", path: p})
		}
	}
	return out
}
