// Command gencorpus writes a realistic kube-apiserver audit log with the
// same writer the end-to-end tests use: kube-apiserver's audit log backend
// over lumberjack.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/auditrail/auditrail/e2e"
)

func main() {
	dir := flag.String("dir", "corpus", "directory to write audit.log and its rotated siblings into")
	mb := flag.Int("mb", 100, "stop after about this many megabytes")
	requests := flag.Int("requests", 0, "stop after this many requests instead (0: use -mb)")
	maxSize := flag.Int("maxsize-mb", 100, "rotate at this size, as --audit-log-maxsize")
	compress := flag.Bool("compress", false, "gzip rotated files, as --audit-log-compress")
	seed := flag.Uint64("seed", 1, "random seed")
	random := flag.Bool("random-bodies", false, "fill bodies with random characters (a worst case for compression) instead of Kubernetes objects")
	words := flag.Bool("word-bodies", false, "fill bodies with words and hex strings (they compress about 4.7 times) instead of Kubernetes objects")
	secretWrites := flag.Int("secret-writes-permille", 0, "make this many requests in 1000 Secret writes with bodies (kubectl apply: create, strategic-merge patch)")
	bigEvery := flag.Int("big-every", 10000, "make one request in this many a very large event (a long list)")
	flag.Parse()
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	path := filepath.Join(*dir, "audit.log")
	w := e2e.NewWriter(e2e.WriterConfig{Path: path, MaxSizeMB: *maxSize, MaxBackups: 100000, Compress: *compress, Seed: *seed, BigEvery: *bigEvery, RandomBodies: *random, WordBodies: *words, SecretWritesPermille: *secretWrites})
	for i := 0; ; i++ {
		if *requests > 0 && i >= *requests {
			break
		}
		if *requests == 0 && i%1000 == 0 && dirSize(*dir) >= int64(*mb)<<20 {
			break
		}
		w.WriteRequest()
	}
	w.Close()
	fmt.Printf("wrote %d events (%d MiB) to %s\n", len(w.Written()), dirSize(*dir)>>20, *dir)
}

func dirSize(dir string) int64 {
	var n int64
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil {
			n += fi.Size()
		}
	}
	return n
}
