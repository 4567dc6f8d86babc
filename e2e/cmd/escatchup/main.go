// Command escatchup measures how fast the agent catches up a backlog into
// Elasticsearch alone, with every item accepted and with half the items
// answered 429 on every attempt (every other item the server receives),
// as a busy cluster does.
//
// It copies the oldest -mb megabytes of a corpus (see gencorpus) into a
// directory of its own, then, -runs times, runs the agent binary with
// --once over it once against a fault-free server and once against a
// half-rejecting one, alternately, fresh state and a fresh server each
// time. The server is the Elasticsearch API test server, in this process;
// the agent is the real binary in its own. Each run prints one
// tab-separated row: the case, the events, the agent's wall time from
// start to exit, events/s, the agent's CPU seconds, this process's (the
// server's) CPU seconds, and the items the server answered. The end
// prints the median events/s of each case and their ratio.
package main

import (
	"bufio"
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/auditrail/auditrail/e2e/internal/corpus"
	"github.com/auditrail/auditrail/internal/testproc"
	"github.com/auditrail/auditrail/sinks/elasticsearch/estest"
)

func main() {
	bin := flag.String("bin", "", "the auditrail binary")
	from := flag.String("corpus", "", "the corpus directory (audit.log and its backups)")
	mb := flag.Int64("mb", 200, "megabytes of the corpus to catch up, its oldest files first, whole files")
	runs := flag.Int("runs", 3, "runs of each case")
	profiles := flag.String("profile-dir", "", "write CPU profiles of the agent and of the server here")
	extra := flag.String("es-config", "", "more keys for the sink's elasticsearch section, as YAML flow mapping entries")
	batch := flag.String("batch", "", "the sink's batch section, as YAML flow mapping entries")
	flag.Parse()
	if *bin == "" || *from == "" {
		log.Fatal("-bin and -corpus are required")
	}
	work, err := os.MkdirTemp("", "auditrail-escatchup")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	logDir := filepath.Join(work, "audit")
	events, err := copyCorpus(*from, logDir, *mb<<20)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("case\tevents\twall_s\tevents/s\tagent_cpu_s\tserver_cpu_s\titems_served")
	rates := map[bool][]float64{}
	for i := range *runs {
		for _, half := range []bool{false, true} {
			r := run{bin: *bin, work: work, logDir: logDir, half: half, esConfig: *extra, batch: *batch}
			if *profiles != "" {
				r.profile = filepath.Join(*profiles, fmt.Sprintf("%s-%d", r.name(), i+1))
			}
			res, err := r.do()
			if err != nil {
				log.Fatal(err)
			}
			// The agent adds records of its own (its start).
			if res.stored < events {
				log.Fatalf("%s: %d documents stored for %d events", r.name(), res.stored, events)
			}
			rate := float64(events) / res.wall.Seconds()
			rates[half] = append(rates[half], rate)
			fmt.Printf("%s\t%d\t%.2f\t%.0f\t%.2f\t%.2f\t%d\n", r.name(), events, res.wall.Seconds(), rate,
				res.agentCPU.Seconds(), res.serverCPU.Seconds(), res.served)
		}
	}
	free, half := median(rates[false]), median(rates[true])
	fmt.Printf("median\tfault-free %.0f events/s\thalf 429 %.0f events/s\tratio %.3f\n", free, half, half/free)
}

// run is one catch-up of the agent into a fresh server.
type run struct {
	bin, work, logDir string
	half              bool
	esConfig, batch   string
	profile           string
}

type result struct {
	wall, agentCPU, serverCPU time.Duration
	stored                    int
	served                    int64
}

func (r *run) name() string {
	if r.half {
		return "half429"
	}
	return "free"
}

const index = "catchup"

// do starts a server, runs the agent with --once until it exits, and
// reports what it took.
func (r *run) do() (result, error) {
	srv := estest.New()
	defer srv.Close()
	var served atomic.Int64
	srv.FailItems(func(_, _ string) int {
		if served.Add(1)%2 == 0 && r.half {
			return 429
		}
		return 0
	})
	state := filepath.Join(r.work, "state")
	if err := os.RemoveAll(state); err != nil {
		return result{}, err
	}
	cfg := filepath.Join(r.work, "auditrail.yaml")
	es := fmt.Sprintf("addresses: [%q], index: %s", srv.URL, index)
	if r.esConfig != "" {
		es += ", " + r.esConfig
	}
	sink := "  - {name: es, type: elasticsearch, elasticsearch: {" + es + "}"
	if r.batch != "" {
		sink += ", batch: {" + r.batch + "}"
	}
	yaml := strings.Join([]string{
		"auditLogPath: " + filepath.Join(r.logDir, "audit.log"),
		"stateDir: " + state,
		"log: {level: warn}",
		"sinks:",
		sink + "}",
	}, "\n") + "\n"
	if err := os.WriteFile(cfg, []byte(yaml), 0o600); err != nil {
		return result{}, err
	}
	args := []string{"run", "--once", "--config", cfg}
	if r.profile != "" {
		if err := os.MkdirAll(filepath.Dir(r.profile), 0o755); err != nil {
			return result{}, err
		}
		args = append(args, "--cpuprofile", r.profile+"-agent.pprof")
		f, err := os.Create(r.profile + "-server.pprof")
		if err != nil {
			return result{}, err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return result{}, err
		}
		defer pprof.StopCPUProfile()
	}
	cmd := testproc.Command(r.bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cpu0 := selfCPU()
	start := time.Now()
	err := cmd.Run()
	wall := time.Since(start)
	cpu1 := selfCPU()
	if err != nil {
		return result{}, fmt.Errorf("agent: %w\n%s", err, out.Bytes())
	}
	st := cmd.ProcessState
	return result{wall: wall, agentCPU: st.UserTime() + st.SystemTime(), serverCPU: cpu1 - cpu0,
		stored: len(srv.Docs(index)), served: served.Load()}, nil
}

// selfCPU returns the CPU time this process has used.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// copyCorpus copies the oldest files of the corpus in from, whole, until
// at least limit bytes, into dir, the newest as audit.log, and returns
// the events (non-empty lines) they hold.
func copyCorpus(from, dir string, limit int64) (int, error) {
	files, err := corpus.Files(from)
	if err != nil {
		return 0, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return 0, err
	}
	var size int64
	n := 0
	for i := 0; i < len(files) && size < limit; i++ {
		name := filepath.Base(files[i])
		if i+1 == len(files) || size+fileSize(files[i]) >= limit {
			name = "audit.log"
		}
		lines, bytes, err := copyFile(files[i], filepath.Join(dir, name))
		if err != nil {
			return 0, err
		}
		n += lines
		size += bytes
	}
	return n, nil
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// copyFile copies src to dst and returns its non-empty lines and size.
func copyFile(src, dst string) (lines int, size int64, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return 0, 0, err
	}
	br := bufio.NewReaderSize(in, 1<<20)
	for {
		line, rerr := br.ReadSlice('\n')
		if errors.Is(rerr, bufio.ErrBufferFull) {
			return 0, 0, fmt.Errorf("%s: a line longer than 1 MiB", src)
		}
		if len(bytes.TrimSpace(line)) > 0 {
			lines++
		}
		if _, err := out.Write(line); err != nil {
			out.Close()
			return 0, 0, err
		}
		size += int64(len(line))
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return 0, 0, rerr
		}
	}
	return lines, size, out.Close()
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	return s[len(s)/2]
}
