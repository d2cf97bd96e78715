package images

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPause runs the pause program of the image as PID 1 of a new PID
// namespace (as in a pod): it reaps an orphan reparented to it, and exits 0
// on SIGTERM.
func TestPause(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (a PID namespace)")
	}
	nsenter, err := exec.LookPath("nsenter")
	if err != nil {
		t.Skip("needs nsenter (util-linux)")
	}
	im := catalogImage(t, "pause")
	bin := extract(t, im, archiveBytes(t, im))

	if out, err := exec.Command(bin, "-v").Output(); err != nil || !strings.Contains(string(out), im.Tag) {
		t.Errorf("pause -v: %q, %v; want the tag %s", out, err, im.Tag)
	}

	cmd := exec.Command(bin)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, waitErr := waitIn(cmd)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})
	pid := cmd.Process.Pid
	time.Sleep(200 * time.Millisecond) // let it install its handlers

	// A shell entering pause's PID namespace leaves a sleep behind: the
	// orphan is reparented to the namespace's PID 1, which must reap it.
	out, err := exec.Command(nsenter, "--target", strconv.Itoa(pid), "--pid", "--",
		"/bin/sh", "-c", "sleep 2 </dev/null >/dev/null 2>&1 &").CombinedOutput()
	if err != nil {
		t.Fatalf("nsenter: %v\n%s", err, out)
	}
	adopted := false
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		kids := children(t, pid)
		if len(kids) > 0 {
			adopted = true
		} else if adopted {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !adopted {
		t.Fatal("the orphaned sleep was never a child of pause: the test did not test reaping")
	}
	if kids := children(t, pid); len(kids) > 0 {
		t.Fatalf("pause did not reap its children: %v", kids)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-exited:
		if err := *waitErr; err != nil {
			t.Fatalf("pause on SIGTERM: %v (want exit 0)\n%s", err, stderr.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("pause did not exit on SIGTERM")
	}
	if !strings.Contains(stderr.String(), "Shutting down") {
		t.Errorf("pause's stderr: %q", stderr.String())
	}
}

// children lists the processes whose parent is pid, with their state
// (Z for a zombie), from /proc.
func children(t testing.TB, pid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, s := range stats {
		data, err := os.ReadFile(s)
		if err != nil {
			continue // gone meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		rest := string(data[strings.LastIndexByte(string(data), ')')+1:])
		f := strings.Fields(rest)
		if len(f) >= 2 && f[1] == strconv.Itoa(pid) {
			kids = append(kids, filepath.Base(filepath.Dir(s))+":"+f[0])
		}
	}
	return kids
}

// TestSmoke runs the smoke program of the image on a loopback port: it
// answers /healthz and / with the identity the downward API would give it,
// logs to stdout, and exits 0 on SIGTERM.
func TestSmoke(t *testing.T) {
	im := catalogImage(t, "smoke")
	bin := extract(t, im, archiveBytes(t, im))
	want := Identity{Pod: "smoke-0", Namespace: "default", Node: "worker1", IP: "10.200.1.7", Version: im.Tag}

	cmd := exec.Command(bin)
	cmd.Env = []string{"LISTEN=127.0.0.1:0", "POD_NAME=" + want.Pod, "POD_NAMESPACE=" + want.Namespace,
		"NODE_NAME=" + want.Node, "POD_IP=" + want.IP}
	lines, exited, waitErr := startLines(t, cmd)
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-exited
	})

	addr := waitListening(t, lines)
	base := "http://" + addr
	if body := get(t, base+"/healthz"); body != "ok\n" {
		t.Errorf("/healthz = %q, want ok", body)
	}
	var got Identity
	if err := json.Unmarshal([]byte(get(t, base+"/")), &got); err != nil {
		t.Fatal(err)
	}
	if got != want {
		t.Errorf("/ = %+v, want %+v", got, want)
	}

	// The client commands the cluster checks run with kubectl exec.
	if out, err := exec.Command(bin, "get", base+"/healthz").CombinedOutput(); err != nil || string(out) != "ok\n" {
		t.Errorf("smoke get %s/healthz: %q, %v; want ok", base, out, err)
	}
	if out, err := exec.Command(bin, "get", base+"/nothing").CombinedOutput(); err == nil {
		t.Errorf("smoke get of a 404 exited 0: %q", out)
	}
	if out, err := exec.Command(bin, "lookup", "localhost").CombinedOutput(); err != nil || !strings.Contains(string(out), "127.0.0.1") {
		t.Errorf("smoke lookup localhost: %q, %v; want 127.0.0.1 (from /etc/hosts)", out, err)
	}
	if out, err := exec.Command(bin, "lookup", "no-such-name.invalid").CombinedOutput(); err == nil {
		t.Errorf("smoke lookup of an .invalid name exited 0: %q", out)
	}
	if out, err := exec.Command(bin, "frobnicate").CombinedOutput(); err == nil {
		t.Errorf("smoke with an unknown command exited 0: %q", out)
	}

	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	var logged []string
	for l := range lines {
		logged = append(logged, l)
	}
	<-exited
	if err := *waitErr; err != nil {
		t.Fatalf("smoke on SIGTERM: %v (want exit 0)", err)
	}
	if log := strings.Join(logged, "\n"); !strings.Contains(log, "GET / from 127.0.0.1:") || !strings.Contains(log, "shutting down") {
		t.Errorf("smoke's log does not show the request and the shutdown:\n%s", log)
	}
}

// waitIn waits for a started command in the background: the channel is
// closed once it has exited, and then *err is its Wait error.
func waitIn(cmd *exec.Cmd) (<-chan struct{}, *error) {
	done := make(chan struct{})
	var err error
	go func() {
		err = cmd.Wait()
		close(done)
	}()
	return done, &err
}

// startLines starts cmd with its stdout and stderr read line by line into
// the returned channel, which is closed once cmd has exited and all its
// output is read.
func startLines(t testing.TB, cmd *exec.Cmd) (lines <-chan string, exited <-chan struct{}, err *error) {
	t.Helper()
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw // not files: Wait returns once all is copied
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, err = waitIn(cmd)
	go func() {
		<-exited
		pw.Close()
	}()
	ch := make(chan string, 256)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			ch <- sc.Text()
		}
		close(ch)
	}()
	return ch, exited, err
}

// Identity mirrors what cmd/smoke answers.
type Identity struct {
	Pod, Namespace, Node, IP, Version string
}

// waitListening reads smoke's log up to its "listening on ADDR" line.
func waitListening(t testing.TB, lines <-chan string) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("smoke exited before listening")
			}
			if addr := listenAddr(l); addr != "" {
				return addr
			}
		case <-timeout:
			t.Fatal("smoke did not log its address")
		}
	}
}

// listenAddr is the address of smoke's "listening on ADDR (...)" log line,
// or "" for another line.
func listenAddr(line string) string {
	_, rest, found := strings.Cut(line, " listening on ")
	if !found {
		return ""
	}
	addr, _, _ := strings.Cut(rest, " ")
	return addr
}

func get(t testing.TB, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, body)
	}
	return string(body)
}
