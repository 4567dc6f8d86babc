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
	// maxSize is lumberjack's MaxSize in bytes; file counts the
	// rotations and off is the bytes in the live file, as lumberjack
	// counts them, so that pos can say where each key was written.
	maxSize int64
	file    int
	off     int64
	pos     map[string]position
}

// position is where a line was written: in the live file after file
// rotations, at byte off.
type position struct {
	file int
	off  int64
}

func newReplay(dir, live string, maxSizeMB int) (*replay, error) {
	files, err := corpus.Files(dir)
	if err != nil {
		return nil, err
	}
	return &replay{files: files, lj: &lumberjack.Logger{Filename: live, MaxSize: maxSizeMB, MaxBackups: 1000},
		written: map[string]time.Time{}, maxSize: int64(maxSizeMB) * 1024 * 1024, pos: map[string]position{}}, nil
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
		n := int64(len(line))
		if r.off+n > r.maxSize { // lumberjack rotates before this write
			r.file, r.off = r.file+1, 0
		}
		if _, err := r.lj.Write(line); err != nil {
			panic(err)
		}
		if k := e2e.LineKey(line); k != "" {
			r.written[k] = time.Now()
			r.pos[k] = position{r.file, r.off}
		}
		r.bytes += n
		r.off += n
		return
	}
}

func (r *replay) Bytes() int64                  { return r.bytes }
func (r *replay) Written() map[string]time.Time { return r.written }

// Position returns where key was last written.
func (r *replay) Position(key string) (position, bool) {
	p, ok := r.pos[key]
	return p, ok
}
func (r *replay) Close() error {
	if r.in != nil {
		r.in.Close()
	}
	return r.lj.Close()
}
