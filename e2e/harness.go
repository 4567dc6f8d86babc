package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Agent runs the auditrail binary as a separate process.
type Agent struct {
	Bin, Config string
	// Env is added to the agent's environment.
	Env  []string
	cmd  *exec.Cmd
	logf *os.File
}

// Start starts the agent.
func (a *Agent) Start(logPath string) error {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	a.logf = f
	a.cmd = exec.Command(a.Bin, "run", "--config", a.Config)
	a.cmd.Env = append(os.Environ(), a.Env...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	return a.cmd.Start()
}

// Kill sends SIGKILL and reaps the process.
func (a *Agent) Kill() {
	a.cmd.Process.Signal(syscall.SIGKILL)
	a.cmd.Wait()
	a.logf.Close()
}

// Stop sends SIGTERM and waits; it returns the exit error, if any.
func (a *Agent) Stop() error {
	a.cmd.Process.Signal(syscall.SIGTERM)
	err := a.cmd.Wait()
	a.logf.Close()
	return err
}

// Received is what the file sink holds.
type Received struct {
	// Count is how many times each auditID/stage arrived.
	Count map[string]int
	// Other counts records that are not audit events, by kind.
	Other map[string]int
	// Samples holds the first few records that are not audit events.
	Samples []string
}

// ReadFileSink reads every NDJSON file of a file sink directory.
func ReadFileSink(dir string) (*Received, error) {
	rcv := &Received{Count: map[string]int{}, Other: map[string]int{}}
	files, _ := filepath.Glob(filepath.Join(dir, "auditrail-*.ndjson"))
	sort.Strings(files)
	for _, p := range files {
		f, err := os.Open(p)
		if err != nil {
			return nil, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			var ev struct{ Kind, AuditID, Stage string }
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil || ev.Kind != "Event" {
				rcv.Other[ev.Kind]++
				if len(rcv.Samples) < 5 {
					rcv.Samples = append(rcv.Samples, sc.Text())
				}
				continue
			}
			rcv.Count[Key(ev.AuditID, ev.Stage)]++
		}
		f.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return rcv, nil
}

// Compare returns how many written keys are missing and how many arrived
// more than once.
func Compare(written map[string]time.Time, rcv *Received) (lost []string, dups int) {
	for k := range written {
		if rcv.Count[k] == 0 {
			lost = append(lost, k)
		}
	}
	for _, n := range rcv.Count {
		if n > 1 {
			dups += n - 1
		}
	}
	sort.Strings(lost)
	return lost, dups
}

// WriteConfig writes an agent config for a file sink.
func WriteConfig(path, auditLog, stateDir, outDir string) error {
	cfg := strings.Join([]string{
		"auditLogPath: " + auditLog,
		"stateDir: " + stateDir,
		"pollInterval: 200ms",
		"checkpointInterval: 100ms",
		"drainTimeout: 5s",
		"log: {level: info, format: json}",
		"sinks:",
		"  - name: archive",
		"    type: file",
		"    batch: {maxEvents: 500, maxBytes: 1MiB, flushInterval: 200ms}",
		"    file: {directory: " + outDir + ", maxFileBytes: 8MiB}",
	}, "\n") + "\n"
	return os.WriteFile(path, []byte(cfg), 0o644)
}
