package verify

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stage orders the processes of a run: they start stage by stage and
// stop in reverse.
type Stage int

// The stages of a verify run.
const (
	StageEtcd        Stage = iota // the etcd members
	StageAPIServer                // the kube-apiservers
	StageControllers              // controller-manager, scheduler, HAProxy
	StageBootstrap                // the bootstrap job's commands
	StageGuests                   // containers and VMs booted from baked artifacts
)

// Proc is one started process.
type Proc struct {
	Name  string // <node>/<unit>
	Stage Stage  // start order; stopped in reverse
	PID   int
	Log   string // file holding its stdout and stderr
	cmd   *exec.Cmd
	done  chan struct{}
	err   error // Wait's result, once done is closed
}

// Exited reports whether the process has ended, and how.
func (p *Proc) Exited() (bool, error) {
	select {
	case <-p.done:
		return true, p.err
	default:
		return false, nil
	}
}

// Procs starts processes and stops every one of them by PID.
type Procs struct {
	Grace time.Duration // between SIGTERM and SIGKILL
	// Serial stages stop one process at a time, last started first.
	Serial map[Stage]bool
	log    *slog.Logger
	mu     sync.Mutex
	list   []*Proc
}

// NewProcs returns an empty process set.
func NewProcs(log *slog.Logger, grace time.Duration) *Procs {
	return &Procs{Grace: grace, log: log}
}

// Start starts cmd with its output going to logPath. The process gets its
// own process group (a terminal's Ctrl-C reaches verify, which stops it in
// order) and SIGKILL should verify itself die without cleaning up.
func (ps *Procs) Start(name string, stage Stage, cmd *exec.Cmd, logPath string) (*Proc, error) {
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Proc{Name: name, Stage: stage, PID: cmd.Process.Pid, Log: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ps.mu.Lock()
	ps.list = append(ps.list, p)
	ps.mu.Unlock()
	ps.log.Debug("started", "proc", name, "pid", p.PID, "argv", strings.Join(cmd.Args, " "))
	return p, nil
}

// List returns the processes started so far, in start order.
func (ps *Procs) List() []*Proc {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return append([]*Proc(nil), ps.list...)
}

// StopAll stops every process, the last stage first; the processes of one
// stage are stopped together. It reports processes that needed SIGKILL.
func (ps *Procs) StopAll() error {
	list := ps.List()
	maxStage := StageEtcd
	for _, p := range list {
		maxStage = max(maxStage, p.Stage)
	}
	var errs []error
	for stage := maxStage; stage >= 0; stage-- {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for i := len(list) - 1; i >= 0; i-- {
			p := list[i]
			if p.Stage != stage {
				continue
			}
			if ps.Serial[stage] {
				wg.Wait()
			}
			wg.Go(func() {
				if err := ps.stop(p); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// stop sends SIGTERM to the process's PID, then SIGKILL after the grace
// period, and waits until it has been reaped.
func (ps *Procs) stop(p *Proc) error {
	if done, _ := p.Exited(); done {
		return nil
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		return nil
	case <-time.After(ps.Grace):
	}
	ps.log.Warn("did not stop on SIGTERM; killing", "proc", p.Name, "pid", p.PID, "grace", ps.Grace)
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", p.Name, p.PID)
	}
}

// Tail returns the last n lines of a file.
func Tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// Alive reports whether a process with this PID exists (and is not a zombie).
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name.
	s := string(data)
	if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) {
		return s[i+2] != 'Z'
	}
	return true
}
