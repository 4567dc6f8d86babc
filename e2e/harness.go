package e2e

import (
	"os"
	"os/exec"
	"sort"
	"syscall"
	"time"

	"github.com/auditrail/auditrail/internal/testproc"
)

// Agent runs the auditrail binary as a separate process.
type Agent struct {
	Bin, Config string
	// Env is added to the agent's environment.
	Env []string
	// Args are added to the run command's flags (e.g. --cpuprofile).
	Args []string
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
	a.cmd = testproc.Command(a.Bin, append([]string{"run", "--config", a.Config}, a.Args...)...)
	a.cmd.Env = append(os.Environ(), a.Env...)
	a.cmd.Stdout, a.cmd.Stderr = f, f
	return a.cmd.Start()
}

// Pid returns the agent's process id; call it after Start.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

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

// Received is what a sink holds.
type Received struct {
	// Count is how many times each auditID/stage arrived.
	Count map[string]int
	// Other counts records that are not audit events, by kind.
	Other map[string]int
	// Samples holds the first few records that are not audit events.
	Samples []string
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

// Usage returns the CPU time and peak RSS of the agent's last run; call it
// after Stop or Kill.
func (a *Agent) Usage() (cpu time.Duration, maxRSSKiB int64) {
	st := a.cmd.ProcessState
	if st == nil {
		return 0, 0
	}
	ru, _ := st.SysUsage().(*syscall.Rusage)
	if ru == nil {
		return st.UserTime() + st.SystemTime(), 0
	}
	return st.UserTime() + st.SystemTime(), ru.Maxrss
}
