// Package journal keeps, for one sink, a durable record of the batch it is
// about to deliver and of the positions it delivered since the checkpoint
// last covered them.
//
// # Format
//
// Each sink's journal is one small state file, journal-<sink>, kept in two
// slot files, journal-<sink>.0 and journal-<sink>.1, in the state
// directory (format in internal/slotfile: a header with a generation,
// the payload's length and a CRC-32C, then the payload). The payload is
// the JSON document
//
//	{"version":1,"checksum":"sha256:<hex>","journal":{...}}
//
// The checksum covers the exact bytes of the "journal" value. A journal
// whose slots exist and none verifies, or whose payload does not decode,
// has an unknown version or a checksum that does not match is reported as
// ErrCorrupt; its files are moved aside and the agent then resumes from
// the checkpoint alone (duplicates, never loss).
//
// Releases before the slot files kept the same JSON document in
// journal-<sink>.json, replaced by renaming. Open reads that file when
// there are no slots, and the first write removes it once the slot holds
// the journal: an upgrade keeps the batch in doubt and the positions.
// A release that predates the slot files reads neither the journals'
// nor the checkpoint's slots: after a downgrade it finds no state and
// reads every file again (duplicates, never loss).
//
// # Durability
//
// Every change replaces the journal's content whole: the slot that does
// not hold the newest content is overwritten in place and fdatasynced
// (no rename, no directory fsync after the slots' creation). A crash
// leaves the previous journal or the new one, never a mix: the other slot
// still holds the previous one. The writer writes the intent of each
// batch that holds records before the sink's first Write attempt; the
// delivered positions, once the sink accepted it, are written with the
// next batch's intent, or on their own when no batch is waiting (Record,
// Flush). A crash before they are written leaves the batch in doubt,
// which is cut again and recognised by the sink.
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
