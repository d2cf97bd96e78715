package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/packer/internal/plugintest"
)

// The acceptance tests drive the real Packer v1.11.2 (hack/packer.sh builds
// it from the module proxy) with the plugin built from this tree and
// installed by `packer plugins install --path` into a temporary plugin
// directory. They are skipped in -short mode and fail when a tool is
// missing.

// repo is the repository root, seen from this package's directory.
const repo = "../../.."

// tool returns the path of a pinned Packer tool (hack/packer.sh).
func tool(t *testing.T, name string) string {
	t.Helper()
	return pinned(t, "packer.sh", name, name)
}

// pinned returns the path of the pinned program name:
// $HARDWAY_BIN_DIR/<name> when set (make tools links every pinned program
// there), else <name> in the cache directory `hack/<script> path <group>`
// prints.
func pinned(t *testing.T, script, group, name string) string {
	t.Helper()
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	out, err := exec.Command(filepath.Join(repo, "hack", script), "path", group).Output()
	if p := filepath.Join(strings.TrimSpace(string(out)), name); err == nil && isExec(p) {
		return p
	}
	t.Fatalf("%s is not built: run `hack/%s %s` (or set HARDWAY_BIN_DIR)", name, script, group)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// env is a Packer environment: its own plugin and config directories.
type env struct {
	t      *testing.T
	packer string
	dir    string // working directory of every packer command
	vars   []string
}

// newEnv builds the plugin, checks it with packer-sdc plugin-check and
// installs it into a fresh plugin directory.
func newEnv(t *testing.T) *env {
	t.Helper()
	if testing.Short() {
		t.Skip("acceptance test: runs the real Packer")
	}
	e := &env{t: t, packer: tool(t, "packer"), dir: t.TempDir()}
	home := t.TempDir()
	e.vars = append(os.Environ(),
		"PACKER_PLUGIN_PATH="+filepath.Join(home, "plugins"),
		"PACKER_CONFIG_DIR="+filepath.Join(home, "config"),
		"PACKER_CACHE_DIR="+filepath.Join(home, "cache"),
		"CHECKPOINT_DISABLE=1",
		"PACKER_NO_COLOR=1",
	)
	bin := filepath.Join(t.TempDir(), "packer-plugin-hardway")
	start := time.Now()
	if out, err := exec.Command("go", "build", "-trimpath", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built packer-plugin-hardway in %s", time.Since(start).Round(time.Millisecond))
	check := exec.Command(tool(t, "packer-sdc"), "plugin-check", filepath.Base(bin))
	check.Dir = filepath.Dir(bin)
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("packer-sdc plugin-check: %v\n%s", err, out)
	}
	e.run("plugins", "install", "--path", bin, "github.com/hardway-dev/hardway")
	return e
}

// run runs packer with args and returns its output; it fails the test on
// a non-zero exit status.
func (e *env) run(args ...string) string {
	e.t.Helper()
	out, err := e.try(args...)
	if err != nil {
		e.t.Fatalf("packer %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// try runs packer with args and returns its output and exit error.
func (e *env) try(args ...string) (string, error) {
	cmd := exec.Command(e.packer, args...)
	cmd.Dir, cmd.Env = e.dir, e.vars
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// manifest is the part of Packer's packer-manifest.json the test reads.
type manifest struct {
	Builds []manifestBuild `json:"builds"`
}

// manifestBuild is one build of the manifest.
type manifestBuild struct {
	Name        string            `json:"name"`
	BuilderType string            `json:"builder_type"`
	ArtifactID  string            `json:"artifact_id"`
	CustomData  map[string]string `json:"custom_data"`
	Files       []struct {
		Name string `json:"name"`
		Size int64  `json:"size"`
	} `json:"files"`
}

// readManifest reads the Packer manifest file that a build whose output was
// log wrote, and returns it with its text.
func readManifest(t *testing.T, file, log string) (manifest, []byte) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v\npacker output:\n%s", err, log)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
	return m, data
}

// buildHardway builds the hardway CLI of this tree and returns its path.
func buildHardway(t *testing.T) string {
	t.Helper()
	hardway := filepath.Join(t.TempDir(), "hardway")
	build := exec.Command("go", "build", "-o", hardway, "./cmd/hardway")
	build.Dir = repo
	if o, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hardway: %v\n%s", err, o)
	}
	return hardway
}

// TestAccSeed validates and builds examples/packer/seed.pkr.hcl, which
// bakes through the hardway-cluster data source an LXC template for every
// LXC node of examples/seed-lxc.yaml (here with binaries.mode packaged) and
// a KVM image for every role of its KVM nodes (it has none), and checks
// every template against Packer's manifest and checksum files and, byte for
// byte, against `hardway bake` of the same inputs. It also validates the
// example with examples/seed-kvm.yaml, whose KVM roles make sources.
func TestAccSeed(t *testing.T) {
	e := newEnv(t)
	specFile := plugintest.Packaged(t, filepath.Join(repo, "examples/seed-lxc.yaml"))
	base := plugintest.Base(t)
	out := filepath.Join(e.dir, "out")
	template, err := filepath.Abs(filepath.Join(repo, "examples/packer/seed.pkr.hcl"))
	if err != nil {
		t.Fatal(err)
	}
	vars := []string{"-var", "spec=" + specFile, "-var", "base_rootfs=" + base, "-var", "output_directory=" + out}

	// Both examples are in packer fmt's canonical form (proxmox-clone.pkr.hcl
	// needs the Proxmox plugin and a Proxmox host to go further).
	e.run("fmt", "-check", "-diff", filepath.Dir(template))

	// The builds come from the data source: validate must evaluate it.
	e.run(append(append([]string{"validate", "-evaluate-datasources"}, vars...), template)...)

	// A spec with KVM nodes (binaries.mode packaged already) makes a
	// hardway-kvm source per role: kvm_base_rootfs reaches each of them.
	seedKVM, err := filepath.Abs(filepath.Join(repo, "examples/seed-kvm.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	kvmVars := []string{"-var", "spec=" + seedKVM, "-var", "base_rootfs=" + base, "-var", "output_directory=" + t.TempDir()}
	e.run(append(append([]string{"validate", "-evaluate-datasources"}, kvmVars...), template)...)
	res, err := e.try(append(append([]string{"validate", "-evaluate-datasources", "-var", "kvm_base_rootfs=/nonexistent/kvm.tar.zst"}, kvmVars...), template)...)
	if n := strings.Count(res, "base_rootfs: stat /nonexistent/kvm.tar.zst"); err == nil || n != 3 {
		t.Errorf("packer validate of seed-kvm.yaml with a missing kvm_base_rootfs: %v, %d errors, want one for each role (controller, etcd, worker)\n%s", err, n, res)
	}
	start := time.Now()
	log := e.run(append(append([]string{"build", "-parallel-builds=1"}, vars...), template)...)
	t.Logf("packer build of the seed's LXC templates took %s", time.Since(start).Round(time.Millisecond))

	bakeDir := filepath.Join(out, "kublxc", "bake")
	m, data := readManifest(t, filepath.Join(bakeDir, "packer-manifest.json"), log)
	// Every LXC node of the seed, its vmid and its roles.
	lxc := map[string][2]string{
		"gw": {"103", "gateway"}, "lb": {"240", "lb"}, "lb1": {"241", "lb"}, "lb2": {"242", "lb"},
		"etcd1": {"211", "etcd"}, "etcd2": {"212", "etcd"},
		"controller": {"220", "controller"}, "controller1": {"221", "controller"}, "controller2": {"222", "controller"},
		"worker1": {"231", "worker"}, "worker2": {"232", "worker"},
	}
	if len(m.Builds) != len(lxc) {
		t.Fatalf("the manifest has %d builds, want one per LXC node (%d):\n%s", len(m.Builds), len(lxc), data)
	}
	templates := map[string]string{} // node → template
	for _, b := range m.Builds {
		node := b.CustomData["node"]
		if b.BuilderType != "hardway-lxc" || len(b.Files) != 1 {
			t.Errorf("build %s (%s, node %q): %d files\n%s", b.Name, b.BuilderType, node, len(b.Files), data)
			continue
		}
		f := b.Files[0].Name
		templates[node] = f
		sum := fileSHA256(t, f)
		if sum != b.CustomData["sha256"] {
			t.Errorf("%s: sha256 %s, the manifest claims %s", f, sum, b.CustomData["sha256"])
		}
		if side, _ := os.ReadFile(f + ".sha256"); string(side) != sum+"  "+filepath.Base(f)+"\n" {
			t.Errorf("%s.sha256 = %q, want %s", f, side, sum)
		}
		checksum := filepath.Join(bakeDir, "packer_hardway-lxc_"+node+"_sha256.checksum")
		if cs, _ := os.ReadFile(checksum); string(cs) != sum+"\t"+filepath.Base(f)+"\n" {
			t.Errorf("%s = %q, want %s for %s", checksum, cs, sum, filepath.Base(f))
		}
		if want := "debian-12-hardway-" + node + "_1.34.2_amd64.tar.zst"; filepath.Base(f) != want || b.ArtifactID != want {
			t.Errorf("build of %s: template %s (id %s), want %s", node, f, b.ArtifactID, want)
		}
		if want := lxc[node]; b.CustomData["vmid"] != want[0] || b.CustomData["roles"] != want[1] {
			t.Errorf("build of %s: custom data %v, want vmid %s and roles %s", node, b.CustomData, want[0], want[1])
		}
		// Every node's tree but a load balancer's holds private keys.
		mode := os.FileMode(0o600)
		if lxc[node][1] == "lb" {
			mode = 0o644
		}
		checkMode(t, f, mode)
		checkMode(t, f+".sha256", 0o644)
	}
	for n := range lxc {
		if templates[n] == "" {
			t.Errorf("no template for %s", n)
		}
	}

	// The same inputs through the CLI, into another directory, with the
	// PKI state the builds created.
	cliDir := t.TempDir()
	cli := exec.Command(buildHardway(t), "bake", "-f", specFile, "--base", base, "--dir", out, "--artifact-dir", cliDir)
	if o, err := cli.CombinedOutput(); err != nil {
		t.Fatalf("hardway bake: %v\n%s", err, o)
	}
	for node, f := range templates {
		a, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(filepath.Join(cliDir, filepath.Base(f)))
		if err != nil {
			t.Errorf("hardway bake wrote no %s: %v", filepath.Base(f), err)
			continue
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: Packer's template (%d bytes) differs from hardway bake's (%d bytes)", node, len(a), len(b))
		}
		checkMode(t, filepath.Join(cliDir, filepath.Base(f)), fileMode(t, f))
	}
}

// fileMode is a file's permissions.
func fileMode(t *testing.T, file string) os.FileMode {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	return st.Mode().Perm()
}

// checkMode checks a file's permissions.
func checkMode(t *testing.T, file string, want os.FileMode) {
	t.Helper()
	if got := fileMode(t, file); got != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(file), got, want)
	}
}

// TestAccRejects checks through Packer that a bad configuration is refused
// before anything runs, with every problem at once.
func TestAccRejects(t *testing.T) {
	e := newEnv(t)
	specFile := plugintest.Write(t, plugintest.Cluster)
	bad := filepath.Join(e.dir, "bad.pkr.hcl")
	err := os.WriteFile(bad, fmt.Appendf(nil, `
source "hardway-lxc" "bad" {
  spec        = %q
  node        = "w2"
  base_rootfs = "/nonexistent/base.tar.zst"
}
source "hardway-lxc" "unknown" {
  spec = "/nonexistent/cluster.yaml"
  role = "etcd"
}
source "hardway-kvm" "small" {
  spec        = %[1]q
  node        = "w2"
  base_rootfs = %q
  format      = "vmdk"
  disk_size   = "512M"
}
build { sources = ["source.hardway-lxc.bad", "source.hardway-lxc.unknown", "source.hardway-kvm.small"] }
`, specFile, plugintest.Base(t)), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	out, err := e.try("validate", bad)
	if err == nil {
		t.Fatalf("packer validate accepted %s:\n%s", bad, out)
	}
	for _, w := range []string{
		"base_rootfs: stat /nonexistent/base.tar.zst: no such file or directory",
		"node w2 has target kvm; an LXC template is for target lxc nodes",
		"base_rootfs: required",
		"spec: stat /nonexistent/cluster.yaml: no such file or directory",
		`format: "vmdk": want qcow2 or raw`,
		`disk_size: "512M" is smaller than 1024 MiB`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("packer validate output lacks %q:\n%s", w, out)
		}
	}
}

// kvmSpec is a cluster whose one KVM node, e1, is the only etcd member, on
// a 2 GiB disk; its etcd is the upstream binary pinned by the SHA-256 that
// fills %s. (cp1 is the controller every cluster needs.)
const kvmSpec = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: pkrkvm
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
    dns: [10.240.0.1]
  binaries:
    mode: upstream
    dir: artifacts
    sha256:
      etcd: "%s"
  nodes:
    - {name: e1, roles: [etcd], target: kvm, address: 10.240.0.21/24, vmid: 221, diskGiB: 2}
    - {name: cp1, roles: [controller], target: lxc, address: 10.240.0.22/24, vmid: 222}
`

// kvmBase is the base of KVM images: $HARDWAY_KVM_BASE, else the one
// `hack/base.sh --kvm` caches (make test builds it).
func kvmBase(t *testing.T) string {
	t.Helper()
	if b := os.Getenv("HARDWAY_KVM_BASE"); b != "" {
		return b
	}
	out, err := exec.Command(filepath.Join(repo, "hack/base.sh"), "path", "--kvm").Output()
	if err != nil {
		t.Fatal("no Debian base with a kernel: run `hack/base.sh --kvm` (make base-kvm) or set HARDWAY_KVM_BASE")
	}
	return strings.TrimSpace(string(out))
}

// TestAccKVM bakes e1's KVM image (qcow2) with hardway-kvm from the real
// etcd and the KVM base, and checks it against Packer's manifest and the
// image's .sha256 file and, byte for byte, against `hardway bake --format
// kvm` of the same inputs.
func TestAccKVM(t *testing.T) {
	e := newEnv(t)
	base := kvmBase(t)
	etcd, err := os.ReadFile(pinned(t, "tools.sh", "etcd", "etcd"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Mkdir(filepath.Join(dir, "artifacts"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "artifacts", "etcd"), etcd, 0o755); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(etcd)
	specFile := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(specFile, fmt.Appendf(nil, kvmSpec, hex.EncodeToString(sum[:])), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(e.dir, "out")
	template := filepath.Join(e.dir, "kvm.pkr.hcl")
	err = os.WriteFile(template, fmt.Appendf(nil, `
source "hardway-kvm" "e1" {
  spec             = %[1]q
  node             = "e1"
  base_rootfs      = %[2]q
  output_directory = %[3]q
  format           = "qcow2"
}
source "hardway-kvm" "etcd" {
  spec             = %[1]q
  role             = "etcd"
  base_rootfs      = %[2]q
  output_directory = %[3]q
  format           = "qcow2"
}
build {
  sources = ["source.hardway-kvm.e1", "source.hardway-kvm.etcd"]
  post-processor "manifest" {
    output     = "packer-manifest.json"
    strip_path = false
    custom_data = {
      node     = build.node
      roles    = build.roles
      vmid     = build.vmid
      artifact = build.artifact
      sha256   = build.sha256
    }
  }
}
`, specFile, base, out), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	e.run("validate", template)
	start := time.Now()
	log := e.run("build", template)
	t.Logf("packer build of e1's node image and the etcd role image took %s", time.Since(start).Round(time.Millisecond))

	m, data := readManifest(t, filepath.Join(e.dir, "packer-manifest.json"), log)
	if len(m.Builds) != 2 {
		t.Fatalf("the manifest has not two builds:\n%s", data)
	}
	// The node image of e1 and the role image of etcd (which serves e1),
	// each the same bytes as the CLI's bake of the same inputs, into another
	// directory, with the PKI state the build created.
	// The node image holds e1's etcd keys: readable by its owner only; the
	// role image holds no node's configuration.
	for _, c := range []struct {
		source, name, flag, value string
		mode                      os.FileMode
	}{
		{"e1", "debian-12-hardway-e1_1.34.2_amd64.qcow2", "--node", "e1", 0o600},
		{"etcd", "debian-12-hardway-etcd_1.34.2_amd64.qcow2", "--role", "etcd", 0o644},
	} {
		i := slices.IndexFunc(m.Builds, func(b manifestBuild) bool { return b.Name == c.source })
		if i < 0 || len(m.Builds[i].Files) != 1 || m.Builds[i].BuilderType != "hardway-kvm" {
			t.Fatalf("the manifest has no hardway-kvm build %s of one file:\n%s", c.source, data)
		}
		b := m.Builds[i]
		img := b.Files[0].Name
		if want := filepath.Join(out, "pkrkvm", "bake", c.name); img != want || b.ArtifactID != c.name || b.CustomData["artifact"] != want {
			t.Errorf("image %s (id %s, artifact %s), want %s", img, b.ArtifactID, b.CustomData["artifact"], want)
		}
		for k, v := range map[string]string{"node": "e1", "roles": "etcd", "vmid": "221"} {
			if b.CustomData[k] != v {
				t.Errorf("%s: custom data %s = %q, want %q", c.source, k, b.CustomData[k], v)
			}
		}
		got := fileSHA256(t, img)
		if got != b.CustomData["sha256"] || !strings.Contains(log, got+"  "+img) {
			t.Errorf("%s: sha256 %s; the manifest claims %s, the build said:\n%s", img, got, b.CustomData["sha256"], log)
		}
		if side, _ := os.ReadFile(img + ".sha256"); string(side) != got+"  "+c.name+"\n" {
			t.Errorf("%s.sha256 = %q, want %s", img, side, got)
		}
		checkMode(t, img, c.mode)
		checkMode(t, img+".sha256", 0o644)
		cliDir := t.TempDir()
		start = time.Now()
		cli := exec.Command(buildHardway(t), "bake", "-f", specFile, "--base", base, "--dir", out, "--artifact-dir", cliDir,
			"--format", "kvm", c.flag, c.value, "--image-format", "qcow2")
		if o, err := cli.CombinedOutput(); err != nil {
			t.Fatalf("hardway bake --format kvm %s %s: %v\n%s", c.flag, c.value, err, o)
		}
		t.Logf("hardway bake of %s took %s", c.name, time.Since(start).Round(time.Millisecond))
		if cliSum := fileSHA256(t, filepath.Join(cliDir, c.name)); cliSum != got {
			t.Errorf("%s: Packer's image (sha256 %s) differs from hardway bake's (%s)", c.name, got, cliSum)
		}
		checkMode(t, filepath.Join(cliDir, c.name), c.mode)
	}
}

// fileSHA256 is the SHA-256 of a file, read as a stream (disk images are
// gigabytes).
func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return hex.EncodeToString(h.Sum(nil))
}
