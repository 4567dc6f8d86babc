// Package s3 implements a sink that writes each batch as one object to an S3
// bucket, with Object Lock retention set on every object, and reads that
// format back (ReadObject, Scanner) for package verify. This comment states
// the format on the bucket and in the state directory; the code in
// sink.go, upload.go, chain.go and manifest.go writes it.
//
// # Objects
//
// A batch becomes one object: a manifest line, then the batch's records, one
// per line, each followed by "\n", compressed as a whole (Config.Compression):
//
//	zstd  .ndjson.zst  Content-Type application/zstd (default)
//	gzip  .ndjson.gz   Content-Type application/gzip
//	none  .ndjson      Content-Type application/x-ndjson
//
// The records are the batch's lines as the agent hands them over: the
// lines kube-apiserver wrote, with secrets redacted unless the sink's
// redactSecrets is false (Config.Format "audit"), or with format "ocsf" each
// event mapped to an OCSF API Activity event and every other line as it
// was. The records of an object, the uncompressed content after its
// manifest line, are what the hashes below call the records.
//
// # Keys
//
// A key is derived from the batch alone, so that the same batch delivered
// again (after a crash, or an attempt whose answer was lost) lands on the
// same key:
//
//	[<prefix>/][cluster=<cluster>/][node=<node>/]dt=<YYYY-MM-DD>/hour=<HH>/<time>_<file id>_<start>-[<file id>_]<end>[_n<tag>][_x<random>]<ext>
//
// where:
//   - <prefix> is Config.Prefix without leading and trailing slashes;
//     prefix, cluster= and node= are left out when empty.
//   - <time> is the batch's first event (its stageTimestamp, else its
//     requestReceivedTimestamp) in UTC, as 20060102T150405.000000Z; dt= and
//     hour= are its date and hour. A batch without events uses the time it
//     was cut (sinks.Batch.Cut, the same when it is cut again after a
//     crash), else the upload time.
//   - <file id> is the source file's identity (sinks.FileRef.ID, device and
//     inode where it was first seen and 16 hex digits of its fingerprint);
//     <start> and <end> are the byte offsets of the batch's range, 20
//     decimal digits so that keys sort. A batch spanning files names the
//     first file and its start offset, then the last file and its end
//     offset: "_<first id>_<start>-<last id>_<end>".
//   - A batch of only agent records that cover no range (tamper, heartbeat,
//     start) is named after its first record's id, e.g.
//     "heartbeat-20261130T030000.000000000Z-0a0b0c0d0e0f", with the range
//     0-0 and no tag.
//   - "_n<tag>" (12 hex digits) is added when a batch with a range also
//     carries tamper, heartbeat, start, anchor or gap records: the first 6
//     bytes of the SHA-256 of their ids (their lines for gap records), so
//     that the same range with other agent records is another key.
//   - "_x<random>" (16 hex digits) is added only when the batch's key already
//     held an object with other records (see Collisions).
//
// The object that closes a chain (see Chain) has no records and is named
// like an agent-record batch after "closed-<epoch>-<seq>", its own epoch
// and sequence number, with the range 0-0.
//
// # Manifest line
//
// The first line of every object, before compression, is a JSON object
// (Manifest) that repeats the chain metadata, so that objects copied out of
// S3 without their metadata can still be checked:
//
//	{"kind":"AuditrailManifest","apiVersion":"auditrail.io/v1","chain":"master-1/archive",
//	 "epoch":"20261121T100000Z-1a2b3c4d","seq":42,"prev":"<hex>","records":5000,
//	 "recordsSHA256":"<hex>","sourceFile":"2049-1234-9f86d081884c7d65","sourceRange":"0-9437184",
//	 "firstEvent":"2026-11-21T10:00:00.000001Z","lastEvent":"2026-11-21T10:00:59.99Z","marked":"heartbeat"}
//
// (on one line). The fields, in this order:
//
//	kind           "AuditrailManifest" (KindManifest)
//	apiVersion     "auditrail.io/v1" (sinks.RecordAPIVersion)
//	chain          metadata chain
//	epoch          metadata chain-epoch
//	seq            metadata chain-seq, as a number
//	prev           metadata chain-prev; left out on the first object of an epoch
//	chainStart     metadata chain-start; only on the first object of an epoch
//	records        metadata records, as a number
//	recordsSHA256  metadata records-sha256
//	sourceFile     metadata source-file
//	sourceRange    metadata source-range
//	firstEvent     metadata first-event; left out when empty
//	lastEvent      metadata last-event; left out when empty
//	marked         metadata marked; left out when empty
//	closed         true on the object that closes a chain; left out otherwise
//	collision      metadata collision; left out when empty
//	format         "ocsf" with format ocsf; left out otherwise
//
// The object's own SHA-256 cannot be in its manifest: recordsSHA256 covers
// the records, and the next object's prev covers the whole object.
//
// # Metadata
//
// Every object carries this user metadata (x-amz-meta-<name>), locked with
// the object:
//
//	chain           "<node>/<sink>": whose chain (Config.Node and the sink's name)
//	chain-epoch     the epoch: "<UTC start, 20060102T150405Z>-<8 hex digits>", sorts by start
//	chain-seq       1, 2, 3, … within the epoch
//	chain-prev      hex SHA-256 of the previous object's stored bytes; absent at seq 1
//	chain-start     at seq 1 only: why the epoch started (no-state, unreadable-state, renamed)
//	sha256          hex SHA-256 of this object's stored (compressed) bytes
//	records-sha256  hex SHA-256 of the records: the uncompressed content after the manifest line
//	records         number of records
//	source-file     the first source file's id (or the first record's id, without a range)
//	source-range    "<start>-<end>": first offset in the first file, end offset in the last
//	source-files    number of byte ranges (sinks.Segment) the batch covers; 0 for agent records only
//	first-event     the time in the key, RFC 3339 with nanoseconds, UTC
//	last-event      stageTimestamp of the last event of the last range; empty without one
//	marked          kinds of agent records in the object, sorted, comma-separated:
//	                anchor, gap, heartbeat, oversized, start, tamper, unparsed; empty for events only
//	closed          "true" on the object that closes a chain
//	collision       the key this batch belonged at, which held another object
//	format          "ocsf" with format ocsf
//
// The Meta* constants name the chain fields.
//
// # Chain
//
// The objects of one sink on one node form a hash chain, in epochs. An epoch
// starts at sequence number 1, with no chain-prev and with chain-start
// saying why; each following object has the next sequence number and the
// previous object's sha256 as chain-prev. An epoch starts when the sink has
// no usable state (see Chain state):
//
//	no-state          no state file: the first start, or the state directory was lost (StartNoState)
//	unreadable-state  no slot verifies, or the state does not decode or holds no epoch (StartUnreadable)
//	renamed           the file holds the chain of another node or sink name (StartRenamed)
//
// Every upload, the closing object and a batch under a collision key
// included, takes the chain's next sequence number. A batch delivered again
// takes no number: it is found at its key (see Uploads). Close uploads, when
// the chain has any object, one object with no records whose manifest says
// "closed":true and whose metadata has closed "true": the chain may end
// there. The next start continues the same epoch after it.
//
// # Chain state
//
// The chain's head is kept in the state file <stateDir>/s3-chain-<sink>
// (the agent's stateDir), in two slot files s3-chain-<sink>.0 and
// s3-chain-<sink>.1 (format in internal/slotfile: a header with a
// generation, the payload's length and a CRC-32C; the newest slot that
// verifies holds the state). The payload is a JSON object:
//
//	chain    "<node>/<sink>"; a file of another chain starts a new chain (renamed)
//	epoch    the current epoch
//	seq      the last object's sequence number; 0 before the epoch's first upload
//	sha256   the last object's sha256
//	key      the last object's key
//	pending  {"key","seq","sha256"}: the upload in flight, recorded before it is sent; absent otherwise
//	start    why the epoch started, kept until its first object carries it; absent after
//
// It is written before every upload (with pending) and after it (the object
// as the chain's last, pending cleared), and when a pending upload is
// settled or given up because its key holds another object. Each write
// replaces the state whole: the slot that does not hold the newest state
// is overwritten in place and fdatasynced (mode 0600, the directory 0700;
// no rename). After a crash the state is the old one or the new one: the
// other slot still holds the old one. Slots that exist and none verifies
// are an unreadable state. Releases before the slot files kept the same
// JSON object in s3-chain-<sink>.json, replaced by renaming: it is read
// when there are no slots, and the first write removes it. At the next start a pending
// upload is looked for at its key before anything else is uploaded: an
// object there with the recorded sha256 becomes the chain's last, otherwise
// its sequence number is used again, so the chain does not fork. A state of
// seq 0 with a start reason continues its epoch. Without a state directory
// (Config.StateDir empty) nothing is kept and every start is a new epoch.
//
// # Uploads
//
// Every upload is conditional (If-None-Match: *, on a multipart upload on
// its completion): the sink never makes a second version of a key. A body
// above Config.MultipartThreshold is sent as a multipart upload of
// Config.PartSize parts. Each carries its SHA-256 as x-amz-checksum-sha256
// (base64), which S3 verifies: the whole body on a single upload, each part
// on a multipart one (S3 then stores a checksum of the parts' checksums,
// "<base64>-<parts>").
//
// When S3 answers 412 (the key exists), the sink reads that object, bounded
// and streamed, and hashes its records; it never trusts the metadata. The
// same records are the batch delivered before: it is not uploaded again, and
// when the object is later in the current epoch than the state says, the
// chain continues after it.
//
// # Collisions
//
// Other records at the key mean someone else placed an object there. It
// stays; the batch is uploaded at the key with "_x<random>" inserted before
// the extension, with collision naming the key taken, in its metadata and
// its manifest.
//
// # Object Lock
//
// With Config.ObjectLock.Mode set (GOVERNANCE or COMPLIANCE) every upload
// sets that mode and a retain-until date of the upload time plus
// ObjectLock.Retention, in UTC, cut to the second, plus one second; with
// ObjectLock.LegalHold a legal hold. ServerSideEncryption, KMSKeyID and
// StorageClass are set when configured. At start the sink checks that the
// bucket has versioning and Object Lock enabled, unless
// objectLock.required is false; when S3 does not answer, the check runs
// again before the first upload, so that an unreachable bucket never stops
// the other sinks.
//
// # Agent records
//
// The agent's own records travel in objects as records, one line of JSON
// each with "apiVersion":"auditrail.io/v1" and a kind (see package sinks):
// AuditrailAgentStarted (start, at every start, with the downtime before
// it), AuditrailHeartbeat (a sink had nothing to ship for heartbeatInterval),
// AuditrailGap (bytes of a source file the agent could not read, with the
// byte and time ranges), AuditrailTamper (a change on the node outside
// normal operation) and the stubs AuditrailOversizedLine and
// AuditrailUnparsedLine standing in for lines. Records not tied to a byte
// range (start, heartbeat, tamper) may come first in a batch; the others
// are in the source file's order. An S3 sink gets no AuditrailAnchor
// records: a sink that keeps a chain of its own is not sent the heads of
// others (anchor is listed in marked for completeness). Each kind present is
// listed in the object's marked metadata.
//
// # Verification
//
// Package verify (auditrail verify) lists every version and delete marker
// under the prefix, reads the oldest version of each key (the one the sink
// wrote), at most a bound of bytes compressed and decompressed, and checks:
// the body's SHA-256 against sha256 and S3's checksum; the records against
// the manifest's recordsSHA256; the manifest's chain, epoch, seq, prev and
// recordsSHA256 against the metadata; that the key names source-file and
// the start of source-range; every epoch's sequence numbers and chain-prev
// links; a later epoch of a chain (chain-restart); how each chain ends
// (closed, or a recent upload); the time between uploads; the agent records
// (gap, tamper, start); Object Lock mode and retention; extra versions and
// delete markers; and, given the chain heads the agent published to its
// other sinks, that each anchored object is in the archive with the
// anchored SHA-256.
package s3
