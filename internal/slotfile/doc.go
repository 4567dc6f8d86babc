// Package slotfile keeps a small state file durable without renaming it:
// the content lives in two slot files, written in turn, so that the one not
// being written always holds the last content committed.
//
// # Format
//
// A state file named base is kept in base.0 and base.1. Each slot holds a
// 24-byte header and the payload, followed by zero padding up to a multiple
// of 4 KiB (or, after a shorter write, by the rest of an older one):
//
//	offset  size  field
//	0       8     magic "AUDSLOT1"
//	8       8     generation, little-endian: 1 for the first content written
//	16      4     payload length, little-endian
//	20      4     CRC-32C (Castagnoli) of bytes 0-19 and of the payload
//	24      n     payload
//
// A slot verifies when its magic, length (within the file) and CRC are
// right. The content of the file is the payload of the slot that verifies
// with the highest generation.
//
// # Durability
//
// Replace overwrites the slot that does not hold the newest generation, in
// place (one pwrite from offset 0), then fdatasyncs it. Within the slot's
// allocated size that is a data write and one cache flush: no rename, no
// new directory entry, and on ext4 or XFS no journal commit. A slot grows
// in steps of 4 KiB, and is cut back only when it is more than four times
// (and 64 KiB) larger than needed, so the file's size rarely changes. The
// directory is fsynced only after a slot file is created, twice in a
// file's life. When a write fails, the next one goes to the same slot: the
// other one keeps the last content committed.
//
// # Guarantee
//
// Once Replace returns, the content is the new one. A crash during Replace
// (a process kill or a power loss, with the slot written in part, in any
// order of its sectors) leaves the slot being written torn, so that it
// does not verify, or whole; the other slot still verifies with the
// previous generation. The file therefore reads as the previous content or
// the new one, never a mix, never empty.
//
// Slot files are created 0600 and made 0600 when opened with wider
// permissions; a slot that is a symbolic link or not a regular file is
// refused. Open, not each write, checks them: only root can change them
// while the file is open.
//
// Reading: when neither slot exists, or only base.0 does and it does not
// verify (the very first write was cut), there is no content, and Open
// returns the legacy file's (the whole file a previous release replaced by
// renaming) if there is one; the first Replace removes it. When base.1
// exists and no slot verifies, Open reports ErrCorrupt (after reading
// twice more: a reader in another process racing the writer may find each
// slot torn in turn).
package slotfile
