// Package sinks defines the contract between the agent and the places it
// ships audit events to, and the batch type that crosses it.
//
// A sink is small and synchronous: Write returns nil only once every record
// of the batch is durably accepted, and the agent advances the sink's file
// positions only then. Batches can be written again after a crash or a
// failed attempt, so implementations must be idempotent or document that
// they are not. After a crash the batch that was in doubt is written again
// exactly as it was first cut (the same records in the same order, the same
// segments and Cut), so a sink that recognises a batch it holds, by name or
// by content, stores it once. Concurrency comes from the agent (one writer per sink), not
// from callbacks.
package sinks

import (
	"context"
	"errors"
)

// Sink ships batches of records to one destination.
type Sink interface {
	// Name is the configured name, unique among the agent's sinks.
	Name() string
	// Write returns nil only once every record in b is durably accepted.
	// It may be called again with the same batch, so it must be
	// idempotent. It must not keep b or its records after returning. An
	// error is retried with backoff unless it is marked with Permanent.
	Write(ctx context.Context, b *Batch) error
	// Close releases the sink's resources. Write is not called after it.
	Close(ctx context.Context) error
}

// Checker is implemented by a sink that can tell, before its first write,
// whether its destination is set up as the configuration says (a bucket
// with Object Lock, an existing topic). The agent calls Check once, in the
// sink's own goroutine and after every sink has started, so that an
// endpoint that does not answer delays that sink alone. An error marked
// with Misconfigured stops the agent: the destination answered, and writes
// to it would never succeed. Any other error is logged, and the sink's
// writes go on and retry.
type Checker interface {
	Check(ctx context.Context) error
}

// Anchorer is implemented by a sink that links what it stores in a hash
// chain (S3). After each batch it accepted, the agent asks it for the
// chain's head and, when the head moved, delivers it as an anchor record
// (KindAnchor) to every sink that is not an Anchorer itself (so that two
// archives do not feed each other anchors forever). Head reports false
// while the chain has no object. It is called from the goroutine that
// calls Write.
type Anchorer interface {
	Head() (AnchorRecord, bool)
}

type misconfiguredError struct{ err error }

func (e misconfiguredError) Error() string { return e.err.Error() }
func (e misconfiguredError) Unwrap() error { return e.err }

// Misconfigured marks err as a definite answer from the destination that
// it is not set up for this sink (see Checker).
func Misconfigured(err error) error {
	if err == nil {
		return nil
	}
	return misconfiguredError{err: err}
}

// IsMisconfigured reports whether err, or any error it wraps, was marked
// with Misconfigured.
func IsMisconfigured(err error) bool {
	var m misconfiguredError
	return errors.As(err, &m)
}

type permanentError struct{ err error }

func (e permanentError) Error() string { return "permanent: " + e.err.Error() }
func (e permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying: the same batch would fail the
// same way. The agent routes such a batch to the dead-letter directory and
// counts it; it is never dropped silently.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err: err}
}

// IsPermanent reports whether err, or any error it wraps, was marked with
// Permanent.
func IsPermanent(err error) bool {
	var p permanentError
	return errors.As(err, &p)
}
