package e2e

import (
	"net"
	"strconv"
	"testing"
	"time"
)

// A Kafka outage delays Kafka alone: while the partition leaders are
// away, S3 and the file sink keep receiving every event within seconds,
// as before it (each sink reads the audit files at its own cursor).
// Elasticsearch is judged by its lag, like in TestSinkOutages.
func TestKafkaOutageDelaysKafkaAlone(t *testing.T) {
	s := NewScenario(t, WriterConfig{MaxSizeMB: 2, MaxBackups: 1000, Compress: true, Seed: 29})
	s.StartAgent()
	s.StartWriting(10)
	time.Sleep(5 * time.Second)
	s.WaitCaughtUp("s3", time.Minute)

	type addr struct {
		node int32
		port int
	}
	var removed []addr
	addrs := s.Srv.Kafka.ListenAddrs() // by node, of the nodes still there
	for _, node := range []int32{1, 2} {
		_, portStr, _ := net.SplitHostPort(addrs[node])
		port, _ := strconv.Atoi(portStr)
		removed = append(removed, addr{node, port})
	}
	down := time.Now()
	for _, a := range removed {
		if err := s.Srv.Kafka.RemoveNode(a.node); err != nil {
			t.Fatal(err)
		}
	}
	for end := down.Add(outage(t)); time.Now().Before(end); {
		time.Sleep(2 * time.Second)
		if s.DumpIfBehind("s3", down, time.Now().Add(-5*time.Second)) {
			break
		}
	}
	time.Sleep(time.Until(down.Add(outage(t))))
	up := time.Now()
	for _, a := range removed {
		if _, _, err := s.Srv.Kafka.AddNode(a.node, a.port); err != nil {
			t.Fatal(err)
		}
	}
	s.AssertKeptUp("kafka", down, up, "es")
	s.WaitCaughtUp("kafka", 2*time.Minute)

	time.Sleep(3 * time.Second)
	s.StopWriting()
	written := s.W.Written()
	s.WaitDelivered(2*time.Minute, written)
	s.StopAgent()
	rs := s.Results("kafka outage", written)
	s.AssertNoDuplicates(rs)
	s.Report(rs)
}
