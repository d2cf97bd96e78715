package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestSIGTERMStopsABlockedCommand: a command blocked where no context
// reaches it (here validate opening a pinned "binary" that is a FIFO nobody
// writes, which blocks in open(2)) still ends promptly on SIGTERM, with
// 128+15, as a pipeline's timeout expects.
func TestSIGTERMStopsABlockedCommand(t *testing.T) {
	dir := t.TempDir()
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.Replace(string(data), "    dir: artifacts\n",
		"    dir: artifacts\n    sha256:\n      etcd: \""+strings.Repeat("0", 64)+"\"\n", 1)
	if pinned == string(data) {
		t.Fatal("the seed example has no binaries.dir line to pin under")
	}
	spec := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(spec, []byte(pinned), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "artifacts", "etcd"), 0o644); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(binary, "validate", "-f", spec)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		// A validate that refuses the FIFO up front is fine too: it did
		// not block. Then there is nothing to interrupt.
		t.Logf("validate ended before the signal (%v): %s", err, out.String())
		return
	case <-time.After(500 * time.Millisecond):
	}
	sent := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		took := time.Since(sent)
		var ee *exec.ExitError
		if err == nil || !asExit(err, &ee) || ee.ExitCode() != 143 {
			t.Fatalf("after SIGTERM: %v, want exit status 143; output:\n%s", err, out.String())
		}
		if took > quickGrace+time.Second {
			t.Errorf("stopped %s after SIGTERM, want within %s", took, quickGrace+time.Second)
		}
		t.Logf("stopped %s after SIGTERM: %s", took.Round(time.Millisecond), strings.TrimSpace(out.String()))
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		<-done
		t.Fatalf("still running 10s after SIGTERM; output:\n%s", out.String())
	}
}

func asExit(err error, ee **exec.ExitError) bool {
	e, ok := err.(*exec.ExitError)
	*ee = e
	return ok
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
