package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"

	"gopkg.in/natefinch/lumberjack.v2"

	"github.com/auditrail/auditrail/e2e"
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
	files, err := filepath.Glob(filepath.Join(dir, "audit-*.log"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	if _, err := os.Stat(filepath.Join(dir, "audit.log")); err == nil {
		files = append(files, filepath.Join(dir, "audit.log"))
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no audit files in %s", dir)
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
		if k := key(line); k != "" {
			r.written[k] = time.Now()
		}
		return
	}
}

// key returns the line's auditID/stage as kube-apiserver writes them.
func key(line []byte) string {
	id, stage := field(line, `"auditID":"`), field(line, `"stage":"`)
	if id == nil || stage == nil {
		return ""
	}
	return e2e.Key(string(id), string(stage))
}

// field returns the string value after the first occurrence of prefix.
func field(line []byte, prefix string) []byte {
	i := bytes.Index(line, []byte(prefix))
	if i < 0 {
		return nil
	}
	v := line[i+len(prefix):]
	j := bytes.IndexByte(v, '"')
	if j < 0 {
		return nil
	}
	return v[:j]
}

func (r *replay) Bytes() int64                  { return r.bytes }
func (r *replay) Written() map[string]time.Time { return r.written }
func (r *replay) Close() error {
	if r.in != nil {
		r.in.Close()
	}
	return r.lj.Close()
}
