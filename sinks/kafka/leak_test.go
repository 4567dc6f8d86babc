package kafka

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/auditrail/auditrail/sinks/sinktest"
)

// A broker may add free text to an error code (a broker-side policy, a
// proxy), and that text may quote the records sent: the sink's errors and
// logs give the code only.
func TestBrokerTextNeverInErrorsOrLogs(t *testing.T) {
	const value = "hunter2-do-not-log"
	c := cluster(t)
	c.ControlKey(int16(kmsg.Produce), func(kreq kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		req := kreq.(*kmsg.ProduceRequest)
		resp := req.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range req.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic = rt.Topic
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition, sp.ErrorCode = rp.Partition, 44 // POLICY_VIOLATION
				msg := "record rejected by policy: annotations.pad=" + value
				sp.ErrorMessage = &msg
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})
	var logs bytes.Buffer
	s, err := New(context.Background(), "kafka", config(c), slog.New(slog.NewJSONHandler(&logs, nil)), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close(context.Background())
	lines := sinktest.Events(0, 3, 1)
	lines[1] = strings.Replace(lines[1], `"pad":"`, `"pad":"`+value, 1)
	err = s.Write(context.Background(), sinktest.Batch(sinktest.File(1), 0, lines...))
	if err == nil {
		t.Fatal("write accepted by a broker that refuses every record")
	}
	out := logs.String() + "\n" + err.Error()
	if strings.Contains(out, value) || !strings.Contains(out, "[44] Policy Violation") {
		t.Fatalf("want the code, not the broker's text:\n%s", out)
	}
}

// The SCRAM library quotes a username or password it cannot prepare: the
// sink's error names the mechanism only.
func TestSASLErrorsShowNoCredentials(t *testing.T) {
	for _, c := range []SASLConfig{
		{Mechanism: "SCRAM-SHA-256", Username: "auditrail", Password: "s3cr3t\x07"},
		{Mechanism: "SCRAM-SHA-512", Username: "s3cr3t-user\x07", Password: "pw"},
	} {
		_, err := mechanism(context.Background(), c)
		if err == nil || strings.Contains(err.Error(), "s3cr3t") || !strings.Contains(err.Error(), c.Mechanism) {
			t.Errorf("%s: err = %v, want one that names the mechanism and shows no credential", c.Mechanism, err)
		}
	}
}
