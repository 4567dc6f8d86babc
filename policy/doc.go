// Package policy lints kube-apiserver audit policies (the file given to
// --audit-policy-file) for the mistakes that cost an audit trail most:
// credentials copied into every sink, requests nobody records, rules that
// can never match, and bodies of the control plane's chatter.
//
// The policy is decoded and validated with kube-apiserver's own types and
// validation (k8s.io/apiserver/pkg/apis/audit), and the level a request
// gets is decided by kube-apiserver's own rule evaluator
// (k8s.io/apiserver/pkg/audit/policy): the first rule that matches wins.
// The linter asks that evaluator about a table of representative requests
// (probes), built from fixed identities plus every user, group, namespace
// and resource name the policy itself names, so that a rule scoped to one
// of them is probed too. Each finding names the linter rule, its severity
// and the line of the policy rule that decided the level.
package policy
