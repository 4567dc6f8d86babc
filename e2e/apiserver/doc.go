// Package apiserver runs the real kube-apiserver in process, with an
// embedded etcd and the audit flags of a real control plane, and the
// auditrail binary against the audit log it writes.
package apiserver
