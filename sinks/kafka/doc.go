// Package kafka implements a sink that produces every record as one Kafka
// message, with acks from all in-sync replicas, exactly once across
// retries and crashes without transactions.
//
// # Messages
//
// The key is the auditID, so every stage of one request lands on one
// partition, in order (the partitioner is murmur2, as in the Java client).
// It is not an identity: a client chooses it with the Audit-ID header. The
// auditrail-id header is one: the SHA-256 of the line as read from the
// file, what consumers deduplicate on. The auditrail-source header says
// where the line was read ("<file id>@<offset>"). The value is the
// original line. Headers also carry stage, verb, resource, namespace,
// user, cluster and node so that consumers can route without parsing. A
// line longer than maxMessageBytes is replaced by a stub that names it,
// counted, and flagged with an auditrail-stub header.
//
// # Exactly once
//
// kafka-go has no idempotent producer: a produce that timed out may have
// been stored, and a batch acknowledged by the brokers is written again
// when the agent dies before recording the acknowledgement. The sink makes
// both harmless with an intent and a read-back.
//
// The intent, <stateDir>/kafka-<sink name>.intent, is a JSON object:
//
//	{"version":1,"topic":"k8s-audit",
//	 "start":{"at":"2026-11-30T03:00:00Z","offsets":{"0":1200,"1":980,"2":1114}}}
//
// start holds the end offset of every partition (ListOffsets, latest) read
// before a produce: every record produced since lies at or above it. It
// is written whole, atomically (temporary file, fsync, rename, fsync of
// the directory), before the first produce when there is none (a run
// after a restart goes on from the one it found) and whenever it moves
// forward, never per batch. The sink reads the end offsets again every
// keep/2 (keep is 2*AckLag+5s, AckLag the agent's checkpoint interval) and
// moves start forward, once it is older than 2*keep, to the newest
// offsets older than keep: the intent always covers every produce of the
// last keep, so every batch the agent may write again after a crash
// (acknowledged but not yet in its checkpoint). It does not move while a
// produce's outcome is in doubt.
//
// After a restart that found an intent, and after a produce that failed
// (in the same Write, for the messages that failed, or in the agent's next
// attempt), the next attempt first reads every partition from start to its
// current end and collects the (auditrail-id, auditrail-source) pairs found
// there. Messages whose pair is found are not sent again. The pair
// identifies one line at one place in the log: two identical lines are two
// records, and a line is matched only by itself, never by the client's
// auditID. A partition added since the intent was written is read from its
// first offset, so a record the new partition count sent there is found.
// What a read-back found is kept, and matched against the batches that
// follow, until they go past it in every source file (or ten minutes).
//
// # Limits
//
// A read-back reads at most readBackMax records; a larger window (a long
// outage of the checkpoint, many other producers on the topic) is read
// from its newest records only, logged and counted in
// auditrail_kafka_readback_overflows_total: what lies below may be
// delivered twice, never lost. So may a batch written again after a
// restart that lost the intent (no state directory, a deleted or
// unreadable file, also counted there), or one the agent recorded later
// than keep after its acknowledgement. A read-back that fails fails the
// Write, which the agent retries. Without a producer id the brokers cannot
// fence an old attempt: a produce still queued in the network or at the
// broker, or stored by the leader but not yet by the in-sync replicas (a
// read-back sees only what is below the high watermark), when the
// read-back that follows its failure reads the partition (more than the
// backoff, 100 ms or more, or a restart, after it) is duplicated. The read-back trusts the topic: a client
// allowed to produce to it that knows a line's exact bytes and position
// could make the sink leave that line out, as it could write anything
// there. Records are never hidden from consumers at any isolation level:
// there are no transactions to abort.
package kafka
