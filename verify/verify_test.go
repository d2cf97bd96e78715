package verify

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// runVerify generates spec into a temp dir, lets mutate break the bundle,
// runs verify and checks that nothing is left behind.
func runVerify(t *testing.T, specPath string, mutate func(t *testing.T, dir string, c *spec.Cluster)) *Report {
	t.Helper()
	needRoot(t)
	bins := binDirs(t)
	doc := loadExample(t, specPath)
	dir := generateExample(t, specPath)
	if mutate != nil {
		mutate(t, dir, doc.Cluster)
	}
	work := t.TempDir()
	var out bytes.Buffer
	start := time.Now()
	rep, err := Run(context.Background(), Options{
		Cluster: doc.Cluster,
		Dir:     dir,
		BinDirs: bins,
		WorkDir: work,
		Out:     &out,
		Log:     slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	t.Logf("verify %s in %s:\n%s", specPath, time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Log(rep.Summary())
	assertNothingLeft(t, rep, work)
	return rep
}

// assertNothingLeft: every PID the run started is gone, no process names its
// work dir, and none of its namespaces (nor any other of its run's, by
// their prefix) is in `ip netns list`.
func assertNothingLeft(t *testing.T, rep *Report, work string) {
	t.Helper()
	if len(rep.PIDs) == 0 || len(rep.Namespaces) == 0 {
		t.Errorf("the report lists %d PIDs and %d namespaces", len(rep.PIDs), len(rep.Namespaces))
	}
	for _, pid := range rep.PIDs {
		if Alive(pid) {
			t.Errorf("pid %d still running after verify", pid)
		}
	}
	if left := processesUnder(t, work); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
	names, err := ListNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	// This run's prefix (hwv<pid>x<run>, its hub's name without ".hub"):
	// other runs of this test process may be going on beside it.
	mine := fmt.Sprintf("%s%dx", nsPrefix, os.Getpid())
	for _, n := range rep.Namespaces {
		if p, ok := strings.CutSuffix(n, ".hub"); ok {
			mine = p
		}
	}
	for _, n := range names {
		if slices.Contains(rep.Namespaces, n) || n == mine+".hub" || strings.HasPrefix(n, mine+"-") {
			t.Errorf("namespace %s left behind", n)
		}
	}
}

// wantRows asserts which rows pass.
func wantRows(t *testing.T, rep *Report, pass, fail []int) {
	t.Helper()
	for _, n := range pass {
		if row, ok := rep.Row(n); !ok || !row.Pass {
			t.Errorf("row %d (%s) should pass: %s", n, row.Name, row.Detail)
		}
	}
	for _, n := range fail {
		if row, ok := rep.Row(n); !ok || row.Pass {
			t.Errorf("row %d (%s) should fail: %s", n, row.Name, row.Detail)
		}
	}
}

var allRows = []int{1, 2, 3, 4, 5, 6, 7, 8, 9}

func TestVerifySeed(t *testing.T) {
	rep := runVerify(t, "../examples/seed-lxc.yaml", nil)
	wantRows(t, rep, allRows, nil)
	if !rep.OK() {
		t.Error(rep.Summary())
	}
}

// TestVerifyMixed: 3 stacked controllers, VIP, RSA keys, non-default CIDRs
// and cluster domain.
func TestVerifyMixed(t *testing.T) {
	rep := runVerify(t, "../examples/mixed.yaml", nil)
	wantRows(t, rep, allRows, nil)
	if !rep.OK() {
		t.Error(rep.Summary())
	}
}

// TestVerifySpecFromEnv runs the spec named by HARDWAY_VERIFY_SPEC (absolute,
// or relative to the repository root).
func TestVerifySpecFromEnv(t *testing.T) {
	p := os.Getenv("HARDWAY_VERIFY_SPEC")
	if p == "" {
		t.Skip("set HARDWAY_VERIFY_SPEC to a spec file to verify it")
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join("..", p)
	}
	rep := runVerify(t, p, nil)
	wantRows(t, rep, allRows, nil)
	if !rep.OK() {
		t.Error(rep.Summary())
	}
}

// TestVerifyWithoutHAProxy: with no HAProxy the VIP is held by the first
// controller, and every row still passes.
func TestVerifyWithoutHAProxy(t *testing.T) {
	old := lookHAProxy
	lookHAProxy = func() (string, error) { return "", errors.New("not installed") }
	t.Cleanup(func() { lookHAProxy = old })
	rep := runVerify(t, "../examples/seed-lxc.yaml", nil)
	wantRows(t, rep, allRows, nil)
	if p := rep.Phases[0]; !strings.Contains(p.Detail, "held by controller") {
		t.Errorf("prepare does not say who holds the VIP: %s", p.Detail)
	}
}

// TestVerifyCatchesSwappedCertificate: the controllers' serving certificate
// replaced by another valid certificate of the same CA (kube-scheduler's):
// the apiservers run, but the TLS row fails.
func TestVerifyCatchesSwappedCertificate(t *testing.T) {
	rep := runVerify(t, "../examples/seed-lxc.yaml", func(t *testing.T, dir string, c *spec.Cluster) {
		for _, n := range c.NodesWith(spec.RoleController) {
			for _, ext := range []string{".crt", ".key"} {
				other, err := os.ReadFile(filepath.Join(dir, "pki", "kube-scheduler"+ext))
				if err != nil {
					t.Fatal(err)
				}
				editOverlay(t, dir, n.Name, "/var/lib/kubernetes/apiserver"+ext, func([]byte) []byte { return other })
			}
		}
	})
	wantRows(t, rep, []int{1, 8}, []int{2})
	if rep.OK() {
		t.Error("verify passed a bundle with a swapped certificate")
	}
}

// TestVerifyCatchesDroppedFlag: kube-apiserver without
// --encryption-provider-config stores Secrets in plain text.
func TestVerifyCatchesDroppedFlag(t *testing.T) {
	rep := runVerify(t, "../examples/seed-lxc.yaml", func(t *testing.T, dir string, c *spec.Cluster) {
		for _, n := range c.NodesWith(spec.RoleController) {
			editOverlay(t, dir, n.Name, tree.UnitFile(controller.APIServerUnit), dropLine(t, "--encryption-provider-config="))
		}
	})
	wantRows(t, rep, []int{1, 2, 3, 4, 6, 7, 8, 9}, []int{5})
	if rep.OK() {
		t.Error("verify passed apiservers without encryption at rest")
	}
}

// dropLine is an edit for editOverlay that removes the unit line holding
// needle (a continuation line).
func dropLine(t *testing.T, needle string) func([]byte) []byte {
	return func(data []byte) []byte {
		t.Helper()
		var kept []string
		for _, l := range strings.Split(string(data), "\n") {
			if !strings.Contains(l, needle) {
				kept = append(kept, l)
			}
		}
		if len(kept) == strings.Count(string(data), "\n")+1 {
			t.Fatalf("no line with %s", needle)
		}
		return []byte(strings.Join(kept, "\n"))
	}
}

// TestVerifyInterrupted sends SIGINT (Ctrl-C) to `hardway verify` while the
// apiservers start: it stops every process and deletes every namespace.
func TestVerifyInterrupted(t *testing.T) {
	needRoot(t)
	cmd, stdout, stderr, work := startVerifyCLI(t)
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	signalled := false
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if !signalled && strings.HasPrefix(line, "phase start etcd") {
			signalled = true
			time.Sleep(time.Second) // the apiservers are starting
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := cmd.Wait()
	t.Logf("output:\n%s\nstderr:\n%s", out.String(), stderr.String())
	if !signalled {
		t.Fatal("verify never reached the etcd phase")
	}
	if err == nil {
		t.Error("an interrupted verify exited 0")
	}
	if !strings.Contains(out.String(), "phase teardown") || !strings.Contains(stderr.String(), "interrupted") {
		t.Error("no teardown, or no word of the interruption")
	}
	hub := regexp.MustCompile(`hub (\S+)\.hub`).FindStringSubmatch(out.String())
	if hub == nil {
		t.Fatal("no hub namespace in the output")
	}
	names, err := ListNamespaces()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if strings.HasPrefix(n, hub[1]) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	if left := processesUnder(t, work); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
}

// startVerifyCLI builds the CLI and starts `hardway verify` on the seed
// example with a work directory of its own and extra args; it returns the
// running command, its standard output, what it writes to standard error
// and the work directory.
func startVerifyCLI(t *testing.T, extra ...string) (*exec.Cmd, io.Reader, *bytes.Buffer, string) {
	t.Helper()
	bins := binDirs(t)
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "hardway")
	if out, err := exec.Command("go", "build", "-o", bin, "../cmd/hardway").CombinedOutput(); err != nil {
		t.Fatalf("build hardway: %v\n%s", err, out)
	}
	work := filepath.Join(tmp, "work")
	args := append([]string{"verify", "-f", "../examples/seed-lxc.yaml", "--dir", filepath.Join(tmp, "out"), "--work-dir", work}, extra...)
	for _, d := range bins {
		args = append(args, "--bin-dir", d)
	}
	cmd := exec.Command(bin, args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr := &bytes.Buffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	return cmd, stdout, stderr, work
}

// TestVerifyKeep: with --keep the cluster stays up after the rows; the
// kubectl command verify prints works against it; an interrupt then tears
// it down, and the run exits 0 with its work directory kept.
func TestVerifyKeep(t *testing.T) {
	needRoot(t)
	cmd, stdout, stderr, work := startVerifyCLI(t, "--keep")
	var out strings.Builder
	sc := bufio.NewScanner(stdout)
	kept, kubectl := false, ""
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		switch {
		case strings.HasPrefix(line, "--keep:"):
			kept = true
		case kept && kubectl == "" && strings.HasPrefix(line, "  ip netns exec "):
			kubectl = strings.TrimSpace(line)
			// The cluster is up while verify waits: the printed
			// command reaches its API.
			got, err := exec.Command("sh", "-c", kubectl).CombinedOutput()
			if err != nil || !strings.Contains(string(got), "kube-system") {
				t.Errorf("%s: %v\n%s", kubectl, err, got)
			}
		case kept && strings.HasPrefix(line, "Node roots and logs:"):
			if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
				t.Fatal(err)
			}
		}
	}
	err := cmd.Wait()
	t.Logf("output:\n%s\nstderr:\n%s", out.String(), stderr.String())
	if !kept || kubectl == "" {
		t.Fatal("verify --keep printed no --keep block with a kubectl command")
	}
	if err != nil {
		t.Errorf("verify --keep, interrupted after passing rows: %v", err)
	}
	if !strings.Contains(out.String(), "phase teardown") {
		t.Error("no teardown after the interrupt")
	}
	if left := processesUnder(t, work); len(left) > 0 {
		t.Errorf("processes left behind:\n%s", strings.Join(left, "\n"))
	}
	if _, err := os.Stat(filepath.Join(work, "logs")); err != nil {
		t.Errorf("the work directory's logs: %v", err)
	}
}
