package main

import (
	"bufio"
	"io"
	"os"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/auditrail/auditrail/e2e"
	"github.com/auditrail/auditrail/e2e/internal/corpus"
)

// replay appends a corpus's lines, one write per event as kube-apiserver
// makes them, through lumberjack (rename to a timestamped backup and
// create, at maxSize), and remembers when each auditID/stage was written.
type replay struct {
	files   []string
	in      *os.File
	br      *bufio.Reader
	lj      *lumberjack.Logger
	bytes   int64
	written map[string]time.Time
}

func newReplay(dir, live string, maxSizeMB int) (*replay, error) {
	files, err := corpus.Files(dir)
	if err != nil {
		return nil, err
	}
	return &replay{files: files, lj: &lumberjack.Logger{Filename: live, MaxSize: maxSizeMB, MaxBackups: 1000},
		written: map[string]time.Time{}}, nil
}

// WriteRequest writes the corpus's next line; past its end it starts over
// (the keys repeat then: keep runs shorter than the corpus).
func (r *replay) WriteRequest() {
	for {
		if r.br == nil {
			if r.in != nil {
				r.in.Close()
			}
			f, err := os.Open(r.files[0])
			if err != nil {
				panic(err)
			}
			r.files = append(r.files[1:], r.files[0])
			r.in, r.br = f, bufio.NewReaderSize(f, 1<<20)
		}
		line, err := r.br.ReadBytes('\n')
		if err == io.EOF {
			r.br = nil
			if len(line) == 0 {
				continue
			}
		} else if err != nil {
			panic(err)
		}
		if _, err := r.lj.Write(line); err != nil {
			panic(err)
		}
		r.bytes += int64(len(line))
		if k := e2e.LineKey(line); k != "" {
			r.written[k] = time.Now()
		}
		return
	}
}

func (r *replay) Bytes() int64                  { return r.bytes }
func (r *replay) Written() map[string]time.Time { return r.written }
func (r *replay) Close() error {
	if r.in != nil {
		r.in.Close()
	}
	return r.lj.Close()
}
