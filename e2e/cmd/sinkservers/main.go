// Command sinkservers runs the servers the benchmark ships to, on
// 127.0.0.1: MinIO with an Object Lock bucket, the Elasticsearch API test
// server and a three-broker Kafka cluster. It writes their addresses as
// shell variable assignments to -env and runs until SIGTERM.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/auditrail/auditrail/e2e"
	"github.com/auditrail/auditrail/internal/miniotest"
	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
)

func main() {
	envPath := flag.String("env", "", "file to write the servers' addresses to")
	dir := flag.String("dir", os.TempDir(), "directory for MinIO's data")
	flag.Parse()
	r := &e2e.Runner{Dir: *dir}
	defer r.Close()
	m := miniotest.Start(r)
	m.Bucket("bench", true)
	es := estest.New()
	defer es.Close()
	k, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(3, "k8s-audit"))
	if err != nil {
		r.Fatal(err)
	}
	defer k.Close()
	env := fmt.Sprintf("S3_ENDPOINT=%s\nS3_ACCESS_KEY=%s\nS3_SECRET_KEY=%s\nES_URL=%s\nKAFKA_BROKERS=%s\n",
		m.Endpoint(), miniotest.AccessKey, miniotest.SecretKey, es.URL, strings.Join(k.ListenAddrs(), ","))
	if err := os.WriteFile(*envPath, []byte(env), 0o600); err != nil {
		log.Print(err)
		return
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
}
