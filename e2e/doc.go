// Package e2e holds the end-to-end tests: audit logs written by
// kube-apiserver's own audit log backend over lumberjack, the real
// auditrail binary as a separate process, and checks that every event
// written reached the sink.
//
// It is a separate module so that the Kubernetes dependencies it needs to
// write realistic logs stay out of the agent's module.
package e2e
