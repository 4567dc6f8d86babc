// Package journal keeps, for one sink, a durable record of the batch it is
// about to deliver and of the positions it delivered since the checkpoint
// last covered them.
//
// # Format
//
// Each sink has one file, journal-<sink>.json, in the state directory:
//
//	{"version":1,"checksum":"sha256:<hex>","journal":{...}}
//
// The checksum covers the exact bytes of the "journal" value. A file that
// does not decode, whose version is unknown or whose checksum does not
// match is reported as ErrCorrupt; the agent then resumes from the
// checkpoint alone (duplicates, never loss).
//
// # Durability
//
// Every change rewrites the whole file: a temporary file in the same
// directory, fsync, rename over the old one, fsync of the directory (see
// internal/fsutil). A crash leaves the previous journal or the new one,
// never a mix. The writer writes the intent of each batch that holds
// records before the sink's first Write attempt; the delivered positions,
// once the sink accepted it, are written with the next batch's intent, or
// on their own when no batch is waiting (Record, Flush). A crash before
// they are written leaves the batch in doubt, which is cut again and
// recognised by the sink.
//
// # Guarantee
//
// The intent holds everything needed to cut the same batch again: the
// source ranges (file identity, start, end, done, last event time), the
// records the agent made rather than read (tamper, start, heartbeat and gap
// records, stubs) with their bytes and their place among the records, and
// the time the batch was cut. The delivered part holds, per source file,
// the position the sink acknowledged, and the ids of the notices it
// acknowledged, until a committed checkpoint covers them. On start the
// agent resumes every sink from the later of the checkpoint and the
// journal (Apply), and cuts an intent without an outcome again exactly, so
// that a sink that recognises a batch it already holds (S3's conditional
// write and content comparison, the file sink's tail check, document ids)
// stores it once.
//
// This package imports neither the agent nor the sinks.
package journal
