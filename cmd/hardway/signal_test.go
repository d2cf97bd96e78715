package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/output"
)

// TestSIGTERMStopsABlockedCommand: a command blocked where no context
// reaches it still ends promptly on SIGTERM, with 128+15, as a pipeline's
// timeout expects. Here generate waits in flock(2) for the lock of an
// output directory that this test holds, as it would behind another run.
func TestSIGTERMStopsABlockedCommand(t *testing.T) {
	out := t.TempDir()
	unlock, err := output.Lock(filepath.Join(out, "kublxc"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()

	cmd := exec.Command(binary, "generate", "-f", seed, "--dir", out)
	var log syncBuffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	// Until it says it waits for the lock (or a deadline: then the test fails below).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if strings.Contains(log.String(), "waiting for it to finish") {
			break
		}
	}
	select {
	case err := <-done:
		t.Fatalf("generate ended while another run held the lock (%v):\n%s", err, log.String())
	default:
	}
	if !strings.Contains(log.String(), "waiting for it to finish") {
		t.Fatalf("generate does not say it waits for the lock:\n%s", log.String())
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		took := time.Since(sent)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 143 {
			t.Fatalf("after SIGTERM: %v, want exit status 143; output:\n%s", err, log.String())
		}
		if took > quickGrace+time.Second {
			t.Errorf("stopped %s after SIGTERM, want within %s", took, quickGrace+time.Second)
		}
		t.Logf("stopped %s after SIGTERM", took.Round(time.Millisecond))
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running 10s after SIGTERM; output:\n%s", log.String())
	}
}

// syncBuffer is a bytes.Buffer that a command writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStopOnSignal drives the handler with a fake exit: the first signal
// cancels, a command that returns in time is left to return, one that does
// not is ended after the grace period, and a second signal ends it at once.
func TestStopOnSignal(t *testing.T) {
	for _, tc := range []struct {
		name      string
		second    bool
		returns   bool
		wantExit  int
		wantAfter time.Duration
	}{
		{name: "blocked command, grace runs out", wantExit: 143, wantAfter: 200 * time.Millisecond},
		{name: "second signal", second: true, wantExit: 143},
		{name: "command returns in time", returns: true, wantExit: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sigs := make(chan os.Signal, 2)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			var stopping atomic.Int32
			exited := make(chan int, 1)
			var stderr bytes.Buffer
			finished := make(chan struct{})
			go func() {
				stopOnSignal(sigs, cancel, &stopping, 200*time.Millisecond, &stderr, func(c int) { exited <- c })
				close(finished)
			}()
			start := time.Now()
			sigs <- syscall.SIGTERM
			<-ctx.Done()
			if got := stopping.Load(); got != int32(syscall.SIGTERM) {
				t.Fatalf("stopping = %d, want SIGTERM", got)
			}
			if tc.second {
				sigs <- syscall.SIGTERM
			}
			if tc.returns {
				// The process returns from run and exits by itself; the
				// handler's exit must not have fired by then.
				select {
				case c := <-exited:
					t.Fatalf("exit(%d) before the grace period ended", c)
				case <-time.After(50 * time.Millisecond):
				}
				return
			}
			select {
			case c := <-exited:
				if c != tc.wantExit {
					t.Errorf("exit(%d), want %d", c, tc.wantExit)
				}
				if took := time.Since(start); took < tc.wantAfter {
					t.Errorf("exited after %s, before the grace period %s", took, tc.wantAfter)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no exit")
			}
			<-finished
		})
	}
}
