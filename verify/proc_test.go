package verify

import (
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestProcsStopAll: a process that exits on SIGTERM and one that ignores it
// are both gone after StopAll, the second by SIGKILL after the grace period;
// a later stage stops first.
func TestProcsStopAll(t *testing.T) {
	dir := t.TempDir()
	ps := NewProcs(slog.New(slog.DiscardHandler), 300*time.Millisecond)
	order := filepath.Join(dir, "order")
	// Each records its stop in order, then exits (the first stage) or keeps running (the later one ignores TERM).
	polite, err := ps.Start("polite", StageEtcd, exec.Command("sh", "-c", `trap 'echo polite >> `+order+`; exit 0' TERM; while :; do sleep 0.05; done`), filepath.Join(dir, "polite.log"))
	if err != nil {
		t.Fatal(err)
	}
	stubborn, err := ps.Start("stubborn", StageAPIServer, exec.Command("sh", "-c", `trap 'echo stubborn >> `+order+`' TERM; while :; do sleep 0.05; done`), filepath.Join(dir, "stubborn.log"))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // let the shells install their traps
	start := time.Now()
	if err := ps.StopAll(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took < 300*time.Millisecond {
		t.Errorf("StopAll took %s: the stubborn process was not given its grace period", took)
	}
	for _, p := range []*Proc{polite, stubborn} {
		if done, _ := p.Exited(); !done || Alive(p.PID) {
			t.Errorf("%s (pid %d) still running", p.Name, p.PID)
		}
	}
	if got := strings.Fields(Tail(order, 10)); strings.Join(got, " ") != "stubborn polite" {
		t.Errorf("stop order %q, want the later stage first", got)
	}
}

func TestTail(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	ps := NewProcs(slog.New(slog.DiscardHandler), time.Second)
	pr, err := ps.Start("seq", StageEtcd, exec.Command("seq", "1", "100"), p)
	if err != nil {
		t.Fatal(err)
	}
	<-pr.done
	if got := Tail(p, 3); got != "98\n99\n100" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail(filepath.Join(t.TempDir(), "missing"), 3); !strings.HasPrefix(got, "(no log") {
		t.Errorf("Tail of a missing file = %q", got)
	}
}
