// Package checkpoint stores the agent's durable read positions.
//
// # Format
//
// The whole state is one small state file, checkpoint, kept in two slot
// files, checkpoint.0 and checkpoint.1, in the state directory (format in
// internal/slotfile: a header with a generation, the payload's length and
// a CRC-32C, then the payload). The payload is the JSON document
//
//	{"version":1,"checksum":"sha256:<hex>","state":{...}}
//
// The checksum covers the exact bytes of the "state" value. A state whose
// slots exist and none verifies, or whose payload has an unknown version,
// a checksum that does not match or does not decode, is reported as
// ErrCorrupt; it is never silently replaced by an empty state.
//
// Releases before the slot files kept the same JSON document in
// checkpoint.json, replaced by renaming. Load reads that file when there
// are no slots, and the first Save removes it once a slot holds the state:
// an upgrade resumes where the previous release stopped. A release that
// predates the slot files does not read them: after a downgrade it finds
// no checkpoint (a tamper record, every file read again).
//
// # Durability
//
// Save overwrites, in place, the slot that does not hold the newest state
// and fdatasyncs it: no temporary file, no rename, no directory fsync
// after the slots' creation. A crash at any point leaves either the
// previous state or the new one, never a mix: the other slot still holds
// the previous one.
//
// # Guarantee
//
// The state records, per source file and per sink, the offset below which
// that sink has acknowledged every line. Positions only move forward on
// acknowledgement, so resuming from a loaded state re-delivers at most what
// was acknowledged or in flight since the last commit: duplicates are
// possible, loss is not. The agent closes that window with each sink's
// delivery journal (package journal), which it merges into the state at
// start.
//
// This package imports neither the agent nor the sinks.
package checkpoint
