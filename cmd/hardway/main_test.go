package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hardway-test")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "hardway")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func hardway(t *testing.T, args ...string) (string, int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	out, err := cmd.CombinedOutput()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return string(out), code
}

const seed = "../../examples/seed-lxc.yaml"

type fileState struct {
	sum   string
	mtime time.Time
	mode  os.FileMode
}

func tree(t *testing.T, dir string) map[string]fileState {
	t.Helper()
	out := map[string]fileState{}
	err := filepath.Walk(dir, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if info.Mode().IsRegular() && info.Name() != ".hardway.lock" {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			s := sha256.Sum256(b)
			rel, _ := filepath.Rel(dir, p)
			out[rel] = fileState{hex.EncodeToString(s[:]), info.ModTime(), info.Mode().Perm()}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestValidateExitStatus(t *testing.T) {
	out, code := hardway(t, "validate", "-f", "../../spec/testdata/invalid/duplicate-vmid.yaml")
	if code != 1 || !strings.Contains(out, "duplicate-vmid.yaml:26:13: spec.nodes[2].vmid: 221 is used by cp1 too") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = hardway(t, "validate", "-f", seed)
	if code != 0 || !strings.Contains(out, "warning: spec.nodes: 2 etcd members") {
		t.Errorf("exit %d, output:\n%s", code, out)
	}
	out, code = hardway(t, "validate", "-f", "../../examples/seed-kvm.yaml", "--show-defaults")
	if code != 0 || !strings.Contains(out, "clusterDNS: 10.32.0.10") || !strings.Contains(out, "boot: cloud-init") {
		t.Errorf("show-defaults: exit %d\n%s", code, out)
	}
}

// TestGenerateIdempotent: a second run writes nothing (same bytes, same
// mtimes), and the manifest lists every file with its real checksum.
func TestGenerateIdempotent(t *testing.T) {
	out := t.TempDir()
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 {
		t.Fatalf("generate: %s", o)
	}
	first := tree(t, out)
	time.Sleep(20 * time.Millisecond)
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 || !strings.Contains(o, " 0 files changed") {
		t.Fatalf("rerun: %d %s", code, o)
	}
	second := tree(t, out)
	if len(first) != len(second) {
		t.Fatalf("file count %d → %d", len(first), len(second))
	}
	for p, s := range first {
		if second[p] != s {
			t.Errorf("%s changed on rerun", p)
		}
	}
	checkManifest(t, filepath.Join(out, "kublxc"))
}

// checkManifest: every artifact listed exists with the listed sha256, and
// every file of the cluster directory is listed.
func checkManifest(t *testing.T, dir string) {
	t.Helper()
	entries, ok := readManifest(t, dir)
	if !ok {
		t.Fatalf("%s: no manifest.json", dir)
	}
	files := tree(t, dir)
	listed := map[string]bool{}
	for _, a := range entries {
		listed[a.Path] = true
		if why := differs(dir, a); why != "" {
			t.Errorf("%s: %s", a.Path, why)
		}
		if a.Kind == "" {
			t.Errorf("%s has no kind", a.Path)
		}
	}
	for p := range files {
		if !listed[p] && p != "manifest.json" {
			t.Errorf("%s is not in the manifest", p)
		}
	}
}

// manifestEntry is a line of manifest.json, as these tests read it.
type manifestEntry struct{ Path, Node, Kind, SHA256, Mode string }

// readManifest reads dir's manifest.json; ok is false when there is none.
func readManifest(t *testing.T, dir string) ([]manifestEntry, bool) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return nil, false
	}
	var m struct{ Artifacts []manifestEntry }
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	return m.Artifacts, true
}

// differs says how the file of a manifest entry differs from the entry: ""
// when it is on disk with that sha256 (of its bytes, or of a symlink's
// target) and, when the entry has one, that mode.
func differs(dir string, a manifestEntry) string {
	p := filepath.Join(dir, a.Path)
	fi, err := os.Lstat(p)
	if err != nil {
		return "listed in the manifest, missing on disk"
	}
	var content []byte
	if fi.Mode()&fs.ModeSymlink != 0 {
		target, _ := os.Readlink(p)
		content = []byte(target)
	} else {
		content, _ = os.ReadFile(p)
	}
	sum := sha256.Sum256(content)
	if got := hex.EncodeToString(sum[:]); got != a.SHA256 {
		return fmt.Sprintf("manifest sha256 %s, file has %s", a.SHA256, got)
	}
	if a.Mode != "" && a.Mode != modeName(fi.Mode()) {
		return fmt.Sprintf("manifest mode %s, file has %s", a.Mode, modeName(fi.Mode()))
	}
	return ""
}

// TestKubeconfigs loads every kubeconfig with client-go and checks server
// and user against the seed spec (values written out by hand).
func TestKubeconfigs(t *testing.T) {
	out := t.TempDir()
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 {
		t.Fatal(o)
	}
	want := map[string][2]string{
		"admin":                   {"https://127.0.0.1:6443", "kubernetes-admin"},
		"admin-api":               {"https://10.240.0.10:6443", "kubernetes-admin"},
		"super-admin":             {"https://127.0.0.1:6443", "kubernetes-super-admin"},
		"kube-controller-manager": {"https://127.0.0.1:6443", "system:kube-controller-manager"},
		"kube-scheduler":          {"https://127.0.0.1:6443", "system:kube-scheduler"},
		"kube-proxy":              {"https://10.240.0.10:6443", "system:kube-proxy"},
		"kubelet-worker1":         {"https://10.240.0.10:6443", "system:node:worker1"},
		"kubelet-worker2":         {"https://10.240.0.10:6443", "system:node:worker2"},
	}
	files, _ := filepath.Glob(filepath.Join(out, "kublxc", "kubeconfigs", "*.kubeconfig"))
	if len(files) != len(want) {
		t.Fatalf("kubeconfigs: %v", files)
	}
	for name, w := range want {
		p := filepath.Join(out, "kublxc", "kubeconfigs", name+".kubeconfig")
		cfg, err := clientcmd.LoadFromFile(p)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		rc, err := clientcmd.NewDefaultClientConfig(*cfg, nil).ClientConfig()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if rc.Host != w[0] {
			t.Errorf("%s: server %s, want %s", name, rc.Host, w[0])
		}
		ctx := cfg.Contexts[cfg.CurrentContext]
		if ctx == nil || ctx.AuthInfo != w[1] {
			t.Errorf("%s: user %v, want %s", name, ctx, w[1])
		}
		if len(rc.TLSClientConfig.CertData) == 0 || len(rc.TLSClientConfig.KeyData) == 0 || len(rc.TLSClientConfig.CAData) == 0 {
			t.Errorf("%s: certificates not embedded", name)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o", name, st.Mode().Perm())
		}
	}
}

// TestCrashSafety kills generate at several moments of its first run, then
// checks that a rerun completes and leaves a consistent PKI.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills processes repeatedly")
	}
	out := t.TempDir()
	for _, delay := range []time.Duration{2, 5, 10, 20, 40, 80} {
		cmd := exec.Command(binary, "generate", "-f", "../../examples/mixed.yaml", "--dir", out)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
	}
	if o, code := hardway(t, "generate", "-f", "../../examples/mixed.yaml", "--dir", out); code != 0 {
		t.Fatalf("rerun after kills: %s", o)
	}
	if o, code := hardway(t, "certs", "check", "-f", "../../examples/mixed.yaml", "--dir", out); code != 0 {
		t.Fatalf("certs check after kills:\n%s", o)
	}
	// The rerun swept what the killed runs left.
	leftovers, _ := filepath.Glob(filepath.Join(out, "mixed", "*", ".*.tmp-*"))
	if len(leftovers) > 0 {
		t.Errorf("temp files of killed runs survived the rerun: %v", leftovers)
	}
	checkManifest(t, filepath.Join(out, "mixed"))
}

// TestConcurrentRuns: two runs on one directory serialise on the lock and
// both succeed with one consistent result.
func TestConcurrentRuns(t *testing.T) {
	out := t.TempDir()
	var wg sync.WaitGroup
	outs := make([]string, 2)
	codes := make([]int, 2)
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o, err := exec.Command(binary, "generate", "-f", seed, "--dir", out).CombinedOutput()
			outs[i] = string(o)
			if ee, ok := err.(*exec.ExitError); ok {
				codes[i] = ee.ExitCode()
			}
		}()
	}
	wg.Wait()
	if codes[0] != 0 || codes[1] != 0 {
		t.Fatalf("concurrent runs: %v\n%s\n%s", codes, outs[0], outs[1])
	}
	// Exactly one run created the CA: the other waited and found it.
	if n := strings.Count(outs[0]+outs[1], "issued=ca "); n != 1 {
		t.Errorf("the CA was created %d times:\n%s\n%s", n, outs[0], outs[1])
	}
	if o, code := hardway(t, "certs", "check", "-f", seed, "--dir", out); code != 0 {
		t.Fatal(o)
	}
}

func TestCertsCheckJSONAndRenew(t *testing.T) {
	out := t.TempDir()
	hardway(t, "generate", "-f", seed, "--dir", out)
	o, code := hardway(t, "certs", "check", "-f", seed, "--dir", out, "-o", "json")
	if code != 0 {
		t.Fatal(o)
	}
	var st []struct{ Name, State string }
	if err := json.Unmarshal([]byte(o[strings.Index(o, "["):]), &st); err != nil {
		t.Fatalf("%v\n%s", err, o)
	}
	if len(st) != 19 {
		t.Errorf("%d certificates, want 19 for the seed", len(st))
	}
	before := tree(t, out)
	if o, code := hardway(t, "certs", "renew", "-f", seed, "--dir", out, "kube-proxy"); code != 0 {
		t.Fatal(o)
	}
	after := tree(t, out)
	var ch []string
	for p, s := range after {
		if before[p].sum != s.sum {
			ch = append(ch, p)
		}
	}
	sort.Strings(ch)
	// Only kube-proxy's pair, its kubeconfig and the workers' files that
	// embed it (the node trees hold the kubeconfig) may change.
	for _, p := range ch {
		switch {
		case filepath.Base(p) == "manifest.json", strings.Contains(p, "kube-proxy"):
		case strings.HasPrefix(p, "kublxc/nodes/worker1/"), strings.HasPrefix(p, "kublxc/nodes/worker2/"):
		default:
			t.Errorf("renew kube-proxy changed %s", p)
		}
	}
	for _, must := range []string{"kublxc/pki/kube-proxy.crt", "kublxc/pki/kube-proxy.key", "kublxc/kubeconfigs/kube-proxy.kubeconfig"} {
		if before[must].sum == after[must].sum {
			t.Errorf("renew did not change %s", must)
		}
	}
}

func TestSchemaAndInit(t *testing.T) {
	dir := t.TempDir()
	o, code := hardway(t, "init", "-f", filepath.Join(dir, "c.yaml"))
	if code != 0 {
		t.Fatal(o)
	}
	if o, code := hardway(t, "validate", "-f", filepath.Join(dir, "c.yaml")); code != 0 {
		t.Fatal(o)
	}
	if _, code := hardway(t, "init", "-f", filepath.Join(dir, "c.yaml")); code == 0 {
		t.Error("init overwrote an existing file")
	}
	o, _ = hardway(t, "schema")
	var s map[string]any
	if err := json.Unmarshal([]byte(o), &s); err != nil || s["$schema"] == nil {
		t.Errorf("schema output: %v", err)
	}
}

// TestRerunRestores: the no-op fast path (same inputs) must still notice a
// deleted output and put it back.
func TestRerunRestores(t *testing.T) {
	out := t.TempDir()
	hardway(t, "generate", "-f", seed, "--dir", out)
	victim := filepath.Join(out, "kublxc", "nodes", "worker1", "overlay.tar")
	want, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(victim)
	if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 || !strings.Contains(o, " 1 files changed") {
		t.Fatalf("rerun after deleting a file: %d %s", code, o)
	}
	if got, err := os.ReadFile(victim); err != nil || string(got) != string(want) {
		t.Errorf("%s not restored: %v", victim, err)
	}
}
