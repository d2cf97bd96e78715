package images

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ctrNamespace is the containerd namespace of the kubelet's images, the one
// the worker's hardway-images.service imports into.
const ctrNamespace = "k8s.io"

// TestContainerd writes the archives as `make images` does, imports each
// into the pinned containerd (hack/tools.sh containerd) started in a temp
// root with its own socket, lists their references, and runs pause, smoke
// and CoreDNS from them with the pinned runc (hack/tools.sh runc).
func TestContainerd(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: runs the pinned containerd and runc")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (containerd)")
	}
	ctdDir := toolDir(t, "containerd", "containerd")
	runc := filepath.Join(toolDir(t, "runc", "runc"), "runc")
	o := Options{ModuleDir: ".", Created: created,
		CoreDNS: filepath.Join(toolDir(t, "coredns", "coredns"), "coredns")}

	out := t.TempDir()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	paths, err := Write(context.Background(), out, o, log)
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) != len(Catalog) {
		t.Fatalf("Write returned %d paths for %d images", len(paths), len(Catalog))
	}
	before := stat(t, paths)
	again, err := Write(context.Background(), out, o, log)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(again, paths) || !slices.EqualFunc(before, stat(t, paths), os.SameFile) {
		t.Errorf("a second Write of unchanged images rewrote the archives")
	}

	c := startContainerd(t, ctdDir, runc)
	for i, im := range Catalog {
		if !filepath.IsAbs(paths[i]) || filepath.Base(paths[i]) != im.Archive() {
			t.Errorf("archive path %s: want an absolute path named %s", paths[i], im.Archive())
		}
		c.ctr(t, "images", "import", paths[i])
	}
	listed := strings.Fields(c.ctr(t, "images", "ls", "-q"))
	for _, im := range Catalog {
		if !slices.Contains(listed, im.Ref()) {
			t.Errorf("ctr images ls does not list %s after the import: %q", im.Ref(), listed)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	t.Run("pause", func(t *testing.T) {
		r := c.run(t, catalogImage(t, "pause"), "hw-pause")
		r.waitRunning(t)
		r.stop(t)
	})
	t.Run("smoke", func(t *testing.T) {
		r := c.run(t, catalogImage(t, "smoke"), "hw-smoke", "--net-host",
			"--env", "LISTEN=127.0.0.1:0", "--env", "POD_NAME=hw-smoke", "--env", "NODE_NAME=test")
		addr := listenAddr(r.waitLine(t, " listening on "))
		if body := get(t, "http://"+addr+"/healthz"); body != "ok\n" {
			t.Errorf("/healthz = %q", body)
		}
		if body := get(t, "http://"+addr+"/"); !strings.Contains(body, `"pod":"hw-smoke"`) {
			t.Errorf("/ = %q, want the pod name", body)
		}
		r.stop(t)
	})
	t.Run("coredns", func(t *testing.T) {
		// Its default configuration serves port 53 (whoami) in the
		// container's own network namespace, as user 65532: it can bind only
		// through the file capability of the image's /coredns.
		im := catalogImage(t, "coredns")
		r := c.run(t, im, "hw-coredns")
		r.waitLine(t, "CoreDNS-"+strings.TrimPrefix(im.Tag, "v"))
		r.stop(t)
	})
}

func stat(t testing.TB, paths []string) []os.FileInfo {
	t.Helper()
	var fis []os.FileInfo
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		fis = append(fis, fi)
	}
	return fis
}

// containerd is a containerd started by a test.
type containerd struct {
	ctrBin, sock, runc, log string
}

// startContainerd starts containerd in a temp root with its own socket and
// a minimal configuration (no CRI), with the pinned shim and runc first in
// its PATH; the test's cleanup stops it by its PID.
func startContainerd(t *testing.T, binDir, runc string) *containerd {
	t.Helper()
	dir, err := os.MkdirTemp("", "hw-ctd-") // short: the socket path is limited
	if err != nil {
		t.Fatal(err)
	}
	c := &containerd{
		ctrBin: filepath.Join(binDir, "ctr"),
		sock:   filepath.Join(dir, "c.sock"),
		runc:   runc,
		log:    filepath.Join(dir, "containerd.log"),
	}
	config := fmt.Sprintf(`version = 3
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri", "io.containerd.cri.v1.runtime", "io.containerd.cri.v1.images"]

[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), c.sock)
	if err := os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	logf, err := os.Create(c.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(binDir, "containerd"), "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = append(os.Environ(), "PATH="+binDir+":"+filepath.Dir(runc)+":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited, _ := waitIn(cmd)
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		logf.Close()
		if t.Failed() {
			data, _ := os.ReadFile(c.log)
			t.Logf("containerd's log (tail):\n%s", tail(string(data), 40))
		}
		unmountUnder(t, dir)
		if err := os.RemoveAll(dir); err != nil {
			t.Errorf("removing containerd's temp root: %v", err)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if _, err := exec.Command(c.ctrBin, "-a", c.sock, "version").CombinedOutput(); err == nil {
			return c
		}
		select {
		case <-exited:
			t.Fatal("containerd exited at start")
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("containerd did not answer on its socket in 60s")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// ctr runs ctr against c in the kubelet's namespace and returns its output.
func (c *containerd) ctr(t testing.TB, args ...string) string {
	t.Helper()
	out, err := exec.Command(c.ctrBin, append([]string{"-a", c.sock, "-n", ctrNamespace}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ctr %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// task is a container run in the foreground by `ctr run --rm`.
type task struct {
	c      *containerd
	id     string
	lines  <-chan string
	seen   []string
	exited <-chan struct{}
	err    *error
}

// run starts `ctr run --rm` of im's reference with the pinned runc; the
// test's cleanup kills and removes what is left.
func (c *containerd) run(t *testing.T, im Image, id string, flags ...string) *task {
	t.Helper()
	args := append([]string{"-a", c.sock, "-n", ctrNamespace, "run", "--rm", "--runc-binary", c.runc}, flags...)
	cmd := exec.Command(c.ctrBin, append(args, im.Ref(), id)...)
	r := &task{c: c, id: id}
	r.lines, r.exited, r.err = startLines(t, cmd)
	t.Cleanup(func() {
		select {
		case <-r.exited:
			return
		default:
		}
		_, _ = exec.Command(c.ctrBin, "-a", c.sock, "-n", ctrNamespace, "task", "kill", "-s", "SIGKILL", id).CombinedOutput()
		select {
		case <-r.exited:
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-r.exited
		}
		_, _ = exec.Command(c.ctrBin, "-a", c.sock, "-n", ctrNamespace, "container", "rm", id).CombinedOutput()
	})
	return r
}

// waitLine reads the task's output up to a line holding s, and returns it.
func (r *task) waitLine(t testing.TB, s string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-r.lines:
			if !ok {
				t.Fatalf("%s exited (%v) before printing %q; its output:\n%s", r.id, *r.err, s, strings.Join(r.seen, "\n"))
			}
			r.seen = append(r.seen, l)
			if strings.Contains(l, s) {
				return l
			}
		case <-timeout:
			t.Fatalf("%s did not print %q in 60s; its output:\n%s", r.id, s, strings.Join(r.seen, "\n"))
		}
	}
}

// waitRunning waits until containerd reports the task RUNNING.
func (r *task) waitRunning(t testing.TB) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		for _, l := range strings.Split(r.c.ctr(t, "task", "ls"), "\n") {
			if f := strings.Fields(l); len(f) == 3 && f[0] == r.id && f[2] == "RUNNING" {
				return
			}
		}
		select {
		case <-r.exited:
			t.Fatalf("%s exited (%v) before running", r.id, *r.err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatalf("%s is not RUNNING after 60s", r.id)
}

// stop sends the task SIGTERM; it must exit 0.
func (r *task) stop(t testing.TB) {
	t.Helper()
	r.c.ctr(t, "task", "kill", "-s", "SIGTERM", r.id)
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit on SIGTERM", r.id)
	}
	for l := range r.lines {
		r.seen = append(r.seen, l)
	}
	if err := *r.err; err != nil {
		t.Fatalf("%s on SIGTERM: %v (want exit 0); its output:\n%s", r.id, err, strings.Join(r.seen, "\n"))
	}
}

// unmountUnder lazily unmounts whatever is still mounted below dir (a
// snapshot of a container that did not go away), deepest first.
func unmountUnder(t testing.TB, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Error(err)
		return
	}
	var mounts []string
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			mounts = append(mounts, f[4])
		}
	}
	slices.SortFunc(mounts, func(a, b string) int { return len(b) - len(a) })
	for _, m := range mounts {
		if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", m, err)
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
