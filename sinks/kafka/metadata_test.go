package kafka

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol/metadata"
	"github.com/segmentio/kafka-go/protocol/produce"
)

// countingTransport answers metadata requests with its topic's current
// partition count, and counts the requests that reach it.
type countingTransport struct {
	partitions int
	err        error
	calls      int
}

func (t *countingTransport) RoundTrip(_ context.Context, _ net.Addr, req kafka.Request) (kafka.Response, error) {
	t.calls++
	if t.err != nil {
		return nil, t.err
	}
	switch req.(type) {
	case *metadata.Request:
		res := &metadata.Response{Topics: []metadata.ResponseTopic{{Name: topic}}}
		if t.partitions == 0 {
			res.Topics[0].ErrorCode = int16(kafka.UnknownTopicOrPartition)
		}
		for i := range t.partitions {
			res.Topics[0].Partitions = append(res.Topics[0].Partitions, metadata.ResponsePartition{PartitionIndex: int32(i)})
		}
		return res, nil
	}
	return &produce.Response{}, nil
}

func TestMetadataCache(t *testing.T) {
	now := time.Unix(0, 0)
	inner := &countingTransport{partitions: 3}
	c := &metadataCache{RoundTripper: inner, topic: topic, now: func() time.Time { return now }}
	ctx := context.Background()
	ask := func(topics ...string) int {
		t.Helper()
		res, err := c.RoundTrip(ctx, kafka.TCP("127.0.0.1:9092"), &metadata.Request{TopicNames: topics})
		if err != nil {
			t.Fatal(err)
		}
		for _, tp := range res.(*metadata.Response).Topics {
			if tp.Name == topic {
				return len(tp.Partitions)
			}
		}
		return -1
	}

	for range 1000 {
		if n := ask(topic); n != 3 {
			t.Fatalf("partitions = %d, want 3", n)
		}
	}
	if inner.calls != 1 {
		t.Errorf("%d metadata requests reached the transport within the TTL, want 1", inner.calls)
	}

	// Other requests and other topics are passed on every time.
	c.RoundTrip(ctx, kafka.TCP("127.0.0.1:9092"), &produce.Request{})
	ask("other")
	ask(topic, "other")
	if inner.calls != 4 {
		t.Errorf("transport saw %d requests, want 4", inner.calls)
	}

	// A new partition count is seen once the TTL is over.
	inner.partitions = 6
	now = now.Add(metadataTTL)
	if n := ask(topic); n != 6 {
		t.Errorf("after the TTL: partitions = %d, want 6", n)
	}

	// Errors and answers without the topic are not kept.
	now = now.Add(metadataTTL)
	inner.err = errors.New("broker down")
	if _, err := c.RoundTrip(ctx, kafka.TCP("127.0.0.1:9092"), &metadata.Request{TopicNames: []string{topic}}); err == nil {
		t.Error("transport error not returned")
	}
	inner.err, inner.partitions = nil, 0
	calls := inner.calls
	ask(topic)
	ask(topic)
	if inner.calls != calls+2 {
		t.Errorf("an answer without the topic's partitions was kept")
	}
}
