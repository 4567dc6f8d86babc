// Package checkpoint stores the agent's durable read positions.
//
// # Format
//
// The whole state lives in one file, checkpoint.json, in the state
// directory:
//
//	{"version":1,"checksum":"sha256:<hex>","state":{...}}
//
// The checksum covers the exact bytes of the "state" value. A file whose
// version is unknown, whose checksum does not match or that does not decode
// is reported as ErrCorrupt; it is never silently replaced by an empty state.
//
// # Durability
//
// Save writes the state to a temporary file in the same directory, fsyncs
// it, closes it, renames it over checkpoint.json and fsyncs the directory.
// A crash at any point leaves either the previous state or the new one,
// never a mix. Leftover temporary files are ignored by Load and removed by
// the next Save.
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
