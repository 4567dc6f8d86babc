// Package agent follows the kube-apiserver audit log and ships it to every
// configured sink.
//
// # Data flow
//
// The file tracker watches the audit directory (fsnotify plus a periodic
// scan) and tracks the live file and its rotated siblings: tracker.go (the
// type and the scan), listing.go (the directory listing and what is read
// of each file found), identify.go (matching what is found to the files
// known), descriptors.go (the descriptors held open). The position table
// (positions.go, notices.go) holds every sink's acknowledged cursor in
// every file and the notices waiting for sinks; only an acknowledgement
// advances a cursor. The registry (registry.go) joins the two for the
// operations that need both, reading positions before files. Each has its
// own lock, which guards memory only: files are opened, read and closed
// without a lock held. Each sink has its own reader and writer: the
// reader reads the files at that sink's cursor, frames complete lines and
// builds batches; the writer delivers them in order, retrying with
// exponential backoff and jitter. The files on disk are the buffer, so a
// slow or dead sink never delays another one; the only memory a sink holds
// is its bounded set of batches.
//
// One batch, from read to ack:
//   - reader.go: run takes the sink's next file from the registry and
//     readFile reads it from the sink's cursor; step takes the lines there
//     from a block shared with the other sinks' readers (blocks.go), or has
//     the framer (package agent/internal/framer) read and frame them. At
//     the end of the live file, wait has the reader read appends at once
//     into an empty batch, and while the batch fills at most every
//     readInterval, all readers at the same ticks, and once more when the
//     batch is due; a rotation, a truncation or a file gone is read at
//     once.
//   - build.go: the builder makes each frame or block line a record (parse,
//     drop, tag, redact, stub, gap; a block line's SHA-256, hashed once for
//     the sinks that key events by it) in the batch (batch.go) and extends
//     the batch's segment over its bytes; the reader's flush hands the
//     batch on.
//   - writer.go: run journals the batch's intent, deliver writes it until
//     the sink accepts it, then registry.ack has the position table
//     (positions.ack) advance the sink's cursors.
//
// # Files, in reading order
//
//   - agent.go: Options, Run (wires the registry, one reader and writer a
//     sink, the checkpoint timer); watch.go: fsnotify and the scan timer.
//   - registry.go joins tracker.go, names.go (live and rotated names),
//     listing.go, identify.go (with identity_linux.go, open.go, hole.go,
//     bound.go) and descriptors.go to positions.go and notices.go.
//   - reader.go, source.go, blocks.go, build.go (with filter.go, records.go),
//     batch.go: files to batches; package agent/internal/framer frames.
//   - writer.go, journal.go, recut.go: batches to sinks, in doubt after a
//     crash cut again; metrics.go: what all of them count.
//
// # Identity
//
// A file is identified by (device, inode) and by the SHA-256 of its first
// 1 KiB. The inode follows renames; the fingerprint recognises a file
// compressed into a .gz, copied by logrotate's copytruncate, or an inode
// reused by new content. The tracker holds descriptors open for files a
// sink has not finished, so a rotated file that kube-apiserver prunes stays
// readable until every sink is done with it.
//
// # Guarantee
//
// Every complete line reaches every sink, in file order. A sink's position
// advances only when the sink acknowledged the batch (Write returned nil),
// and positions are committed atomically by the checkpoint package on a
// timer and at shutdown. Between commits each sink's writer keeps a
// delivery journal (package journal): the intent of a batch before its
// first write, the positions delivered once the sink accepted it. A start
// resumes every sink from the later of the checkpoint and its journal, and
// cuts the batch that was in doubt again exactly (recut.go): same ranges,
// records, order and bytes, so that a sink that recognises a batch it holds
// (S3, the file sink, Elasticsearch, Kafka by reading back) stores each
// once across crashes. When the batch cannot be cut again (its file gone
// or changed), reading goes on from the acknowledged positions:
// duplicates, never loss. Data that could not be read before it
// disappeared (pruned, truncated or overwritten before a
// sink reached it) is reported, never skipped silently: a gap record is
// delivered to the sink in its place, logged and counted. Lines longer than
// the limit are replaced by a stub record with their size, auditID and
// SHA-256; lines that are not well-formed events are shipped raw and marked.
//
// # Shutdown
//
// On cancellation the readers stop and hand their partial batches to the
// writers, which finish within the drain timeout; then the final positions
// are committed and the sinks are closed.
package agent
