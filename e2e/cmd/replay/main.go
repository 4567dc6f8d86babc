// Command replay appends an existing audit log corpus (the files of -from,
// oldest first) to a live audit log at a fixed rate, rotating it as
// kube-apiserver's lumberjack does (rename to a timestamped backup, create
// a new file) every -maxsize-mb. It writes whole lines every 10 ms and
// costs little CPU, so the agent following the log can be measured at
// rates kube-apiserver's own writer cannot reach on the same machine.
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/auditrail/auditrail/e2e/internal/corpus"
)

func main() {
	from := flag.String("from", "", "directory holding the corpus (audit.log and its backups)")
	live := flag.String("live", "", "the live audit log to append to")
	mbps := flag.Float64("mbps", 100, "megabytes (1e6 bytes) per second")
	maxSize := flag.Int64("maxsize-mb", 100, "rotate the live log at this size, as --audit-log-maxsize")
	limit := flag.Int64("mb", 0, "stop after this many megabytes (0: the whole corpus)")
	flag.Parse()
	if *from == "" || *live == "" {
		log.Fatal("-from and -live are required")
	}
	files, err := corpus.Files(*from)
	if err != nil {
		log.Fatal(err)
	}
	w := &rotator{path: *live, max: *maxSize << 20}
	if err := w.open(); err != nil {
		log.Fatal(err)
	}
	start := time.Now()
	var sent int64
	budget := func() int64 { return int64(time.Since(start).Seconds() * *mbps * 1e6) }
	for _, f := range files {
		in, err := os.Open(f)
		if err != nil {
			log.Fatal(err)
		}
		br := bufio.NewReaderSize(in, 4<<20)
		for {
			if *limit > 0 && sent >= *limit*1e6 {
				break
			}
			due := budget() - sent
			if due <= 0 {
				time.Sleep(10 * time.Millisecond)
				continue
			}
			chunk, err := readLines(br, int(min(due, 8<<20)))
			if len(chunk) > 0 {
				if err := w.write(chunk); err != nil {
					log.Fatal(err)
				}
				sent += int64(len(chunk))
			}
			if err == io.EOF {
				break
			}
			if err != nil {
				log.Fatal(err)
			}
		}
		in.Close()
	}
	if err := w.f.Close(); err != nil {
		log.Fatal(err)
	}
	el := time.Since(start)
	fmt.Printf("replayed %d bytes in %.1f s (%.1f MB/s), %d rotations\n", sent, el.Seconds(), float64(sent)/1e6/el.Seconds(), w.rotations)
}

// readLines returns about n bytes of whole lines (at least one line).
func readLines(br *bufio.Reader, n int) ([]byte, error) {
	var out []byte
	for len(out) < n {
		line, err := br.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			rest, err2 := br.ReadBytes('\n')
			line, err = append(bytes.Clone(line), rest...), err2
		}
		out = append(out, line...)
		if err != nil {
			return out, err
		}
	}
	return out, nil
}

// rotator appends to the live log and rotates it like lumberjack.
type rotator struct {
	path      string
	max       int64
	f         *os.File
	size      int64
	rotations int
}

func (r *rotator) open() error {
	f, err := os.OpenFile(r.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	r.f, r.size = f, 0
	return nil
}

func (r *rotator) write(b []byte) error {
	if r.size > 0 && r.size+int64(len(b)) > r.max {
		if err := r.f.Close(); err != nil {
			return err
		}
		name := strings.TrimSuffix(r.path, ".log") + "-" + time.Now().UTC().Format("2006-01-02T15-04-05.000") + ".log"
		if err := os.Rename(r.path, name); err != nil {
			return err
		}
		r.rotations++
		if err := r.open(); err != nil {
			return err
		}
	}
	n, err := r.f.Write(b)
	r.size += int64(n)
	return err
}
