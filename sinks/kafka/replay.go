package kafka

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	kafka "github.com/segmentio/kafka-go"

	"github.com/auditrail/auditrail/sinks"
)

// readBackMax is the most records a read-back takes from the topic, over
// all partitions (Sink.readBackMax, for tests). A window holding more is
// read from its newest records only, and what lies below may be delivered
// twice (see doc.go).
const readBackMax = 300_000

// seenTTL is how long the records found by a read-back are kept to match
// the batches written again after it, at most.
const seenTTL = 10 * time.Minute

// recordKey identifies one record: its auditrail-id and its
// auditrail-source, hashed. Two identical lines at different places in the
// log have different keys; the same line at the same place has one.
type recordKey [sha256.Size]byte

func keyOf(id, source []byte) recordKey {
	h := sha256.New()
	h.Write(id)
	h.Write([]byte{0})
	h.Write(source)
	var k recordKey
	h.Sum(k[:0])
	return k
}

// seenSet holds the records a read-back found in the topic, to be skipped
// when the agent writes them again.
type seenSet struct {
	keys map[recordKey]struct{}
	// files maps the source files of the records found to the highest
	// offset among them. A file's records cannot come again once a batch
	// went past that offset, until the next read-back.
	files map[string]int64
	at    time.Time
}

func newSeenSet(now time.Time) *seenSet {
	return &seenSet{keys: map[recordKey]struct{}{}, files: map[string]int64{}, at: now}
}

// merge adds o's records to s.
func (s *seenSet) merge(o *seenSet) {
	for k := range o.keys {
		s.keys[k] = struct{}{}
	}
	for f, off := range o.files {
		if cur, ok := s.files[f]; !ok || off > cur {
			s.files[f] = off
		}
	}
}

func (s *seenSet) add(id, source []byte) {
	s.keys[keyOf(id, source)] = struct{}{}
	at := bytes.LastIndexByte(source, '@')
	if at < 0 {
		return
	}
	off, err := strconv.ParseInt(string(source[at+1:]), 10, 64)
	if err != nil {
		return
	}
	f := string(source[:at])
	if cur, ok := s.files[f]; !ok || off > cur {
		s.files[f] = off
	}
}

// pass forgets the files that b went past; it reports whether the set is
// still of use.
func (s *seenSet) pass(b *sinks.Batch, now time.Time) bool {
	for _, seg := range b.Segments {
		if max, ok := s.files[seg.File.ID]; ok && seg.End > max {
			delete(s.files, seg.File.ID)
		}
	}
	return len(s.files) > 0 && now.Sub(s.at) < seenTTL
}

// prepare makes sure the intent on disk covers the produce about to
// happen: it writes the first intent, takes a snapshot of the end offsets
// every keep/2, and moves the intent's start forward to the newest
// snapshot older than keep once the start is older than 2*keep. It never
// moves the start while the outcome of a produce is in doubt.
func (s *Sink) prepare(ctx context.Context) error {
	now := s.now()
	if s.start == nil {
		snap, err := s.snapshot(ctx, now)
		if err != nil {
			return err
		}
		if err := s.commit(snap); err != nil {
			return err
		}
		return nil
	}
	last := s.start.At
	if n := len(s.snaps); n > 0 {
		last = s.snaps[n-1].At
	}
	if now.Sub(last) >= s.keep/2 {
		snap, err := s.snapshot(ctx, now)
		if err != nil {
			// The intent on disk still covers this produce.
			s.log.Debug("end offsets not read; the read-back window stays as it is", "sink", s.name, "err", err)
		} else {
			s.snaps = append(s.snaps, snap)
		}
	}
	if s.doubt || now.Sub(s.start.At) < 2*s.keep {
		return nil
	}
	i := len(s.snaps) - 1
	for i >= 0 && now.Sub(s.snaps[i].At) < s.keep {
		i--
	}
	if i < 0 {
		return nil
	}
	if err := s.commit(s.snaps[i]); err != nil {
		// The old intent still covers every produce since: keep it.
		s.log.Warn("intent not moved forward; a read-back after a crash covers more", "sink", s.name, "err", err)
		return nil
	}
	return nil
}

// commit makes snap the intent's start, on disk first.
func (s *Sink) commit(snap snapshot) error {
	if err := saveIntent(s.intentPath, &intent{Version: intentVersion, Topic: s.cfg.Topic, Start: snap}); err != nil {
		return fmt.Errorf("kafka sink %s: %w", s.name, err)
	}
	s.intents.Inc()
	kept := s.snaps[:0]
	for _, o := range s.snaps {
		if o.At.After(snap.At) {
			kept = append(kept, o)
		}
	}
	s.snaps, s.start = kept, &snap
	return nil
}

// snapshot reads the end offset of every partition of the topic.
func (s *Sink) snapshot(ctx context.Context, now time.Time) (snapshot, error) {
	_, last, err := s.offsets(ctx)
	if err != nil {
		return snapshot{}, err
	}
	s.listOffsets.Inc()
	return snapshot{At: now, Offsets: last}, nil
}

// offsets returns the first and the end offset of every partition.
func (s *Sink) offsets(ctx context.Context) (first, last map[int32]int64, err error) {
	md, err := s.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{s.cfg.Topic}})
	if err != nil {
		return nil, nil, fmt.Errorf("metadata: %w", codeOnly(err))
	}
	var reqs []kafka.OffsetRequest
	for _, t := range md.Topics {
		if t.Name != s.cfg.Topic {
			continue
		}
		if errors.Is(t.Error, kafka.UnknownTopicOrPartition) {
			break // not created yet (autoCreateTopic): it holds nothing
		}
		if t.Error != nil {
			return nil, nil, fmt.Errorf("metadata of %s: %w", s.cfg.Topic, codeOnly(t.Error))
		}
		for _, p := range t.Partitions {
			reqs = append(reqs, kafka.FirstOffsetOf(p.ID), kafka.LastOffsetOf(p.ID))
		}
	}
	first, last = map[int32]int64{}, map[int32]int64{}
	if len(reqs) == 0 {
		return first, last, nil
	}
	res, err := s.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{s.cfg.Topic: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets: %w", codeOnly(err))
	}
	for _, p := range res.Topics[s.cfg.Topic] {
		if p.Error != nil {
			return nil, nil, fmt.Errorf("list offsets of partition %d: %w", p.Partition, codeOnly(p.Error))
		}
		first[int32(p.Partition)], last[int32(p.Partition)] = p.FirstOffset, p.LastOffset
	}
	if len(last) != len(reqs)/2 {
		return nil, nil, fmt.Errorf("list offsets: %d partitions answered of %d", len(last), len(reqs)/2)
	}
	return first, last, nil
}

// readBack reads every partition from the intent's start to its current
// end and keeps the auditrail records found there in s.seen. A partition
// that the intent does not name (added since) is read from its first
// offset. When the window holds more than readBackMax records, only the
// newest are read; that is logged and counted.
func (s *Sink) readBack(ctx context.Context) error {
	first, last, err := s.offsets(ctx)
	if err != nil {
		return err
	}
	from := make(map[int32]int64, len(last))
	total := int64(0)
	for p, end := range last {
		start, ok := s.start.Offsets[p]
		if !ok || start < first[p] {
			start = first[p]
		}
		from[p] = min(start, end)
		total += end - from[p]
	}
	cut := int64(0)
	if total > int64(s.readBackMax) {
		per := int64(s.readBackMax) / int64(len(last))
		for p, end := range last {
			if end-from[p] > per {
				cut += end - per - from[p]
				from[p] = end - per
			}
		}
		s.overflows.Inc()
		s.log.Warn("read-back window larger than its cap: its oldest records are not checked, and may be delivered twice",
			"sink", s.name, "records", total, "cap", s.readBackMax, "unchecked", cut)
	}
	seen, err := s.readPartitions(ctx, from, last)
	if err != nil {
		return err
	}
	s.readBacks.Inc()
	s.readRecords.Add(float64(total - cut))
	s.seen = seen
	return nil
}

// readPartitions reads the partitions [from[p], last[p]) in parallel.
func (s *Sink) readPartitions(ctx context.Context, from, last map[int32]int64) (*seenSet, error) {
	var (
		wg   sync.WaitGroup
		sets = make([]*seenSet, 0, len(last))
		errs = make([]error, len(last))
	)
	for p, end := range last {
		i, set := len(sets), newSeenSet(s.now())
		sets = append(sets, set)
		wg.Go(func() { errs[i] = s.readPartition(ctx, p, from[p], end, set) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	seen := newSeenSet(s.now())
	for _, set := range sets {
		seen.merge(set)
	}
	return seen, nil
}

// readPartition adds the records of partition p in [from, end) to seen.
func (s *Sink) readPartition(ctx context.Context, p int32, from, end int64, seen *seenSet) error {
	return s.scanPartition(ctx, p, from, end, func(r kafka.Record) error {
		var id, source []byte
		for _, h := range r.Headers {
			switch h.Key {
			case IDHeader:
				id = h.Value
			case SourceHeader:
				source = h.Value
			}
		}
		if id != nil && source != nil {
			seen.add(id, source)
		}
		return nil
	})
}

// scanPartition calls fn with each record of partition p in [from, end),
// in offset order. The record's key and value are valid until fn returns.
func (s *Sink) scanPartition(ctx context.Context, p int32, from, end int64, fn func(kafka.Record) error) error {
	for from < end {
		res, err := s.client.Fetch(ctx, &kafka.FetchRequest{Topic: s.cfg.Topic, Partition: int(p), Offset: from,
			MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 100 * time.Millisecond})
		if err == nil {
			err = res.Error
		}
		if err != nil {
			return fmt.Errorf("read partition %d at offset %d: %w", p, from, codeOnly(err))
		}
		next, err := scanRecords(res.Records, from, end, fn)
		if err != nil {
			return fmt.Errorf("read partition %d at offset %d: %w", p, from, err)
		}
		if next == from {
			// Nothing returned below the end: the records there are gone
			// (retention) or are not data (transaction markers).
			if res.HighWatermark <= from || res.LogStartOffset > from {
				return nil
			}
			return fmt.Errorf("read partition %d: no records at offset %d, below the end %d", p, from, end)
		}
		from = next
	}
	return nil
}

// scanRecords calls fn with the records of rr in [from, end) and returns
// the offset after the last one read.
func scanRecords(rr kafka.RecordReader, from, end int64, fn func(kafka.Record) error) (int64, error) {
	for {
		r, err := rr.ReadRecord()
		if errors.Is(err, io.EOF) {
			return from, nil
		}
		if err != nil {
			return from, err
		}
		if r.Offset >= from && r.Offset < end {
			err = fn(*r)
		}
		closeBytes(r.Key)
		closeBytes(r.Value)
		if err != nil {
			return from, err
		}
		if r.Offset < from {
			continue
		}
		if r.Offset >= end {
			return end, nil
		}
		from = r.Offset + 1
	}
}

func closeBytes(b kafka.Bytes) {
	if b != nil {
		b.Close()
	}
}
