package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// tool returns the path of a pinned tool: $HARDWAY_BIN_DIR/<name> when
// set (make tools links every pinned tool there), else the cache
// hack/packer.sh fills.
func tool(t *testing.T, name string) string {
	t.Helper()
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		if p := filepath.Join(d, name); isExec(p) {
			return p
		}
	}
	out, err := exec.Command(filepath.Join(repo, "hack/packer.sh"), "path", name).Output()
	if p := filepath.Join(strings.TrimSpace(string(out)), name); err == nil && isExec(p) {
		return p
	}
	t.Fatalf("%s is not built: run `hack/packer.sh %s` (or set HARDWAY_BIN_DIR)", name, name)
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
	Builds []struct {
		Name        string            `json:"name"`
		BuilderType string            `json:"builder_type"`
		ArtifactID  string            `json:"artifact_id"`
		CustomData  map[string]string `json:"custom_data"`
		Files       []struct {
			Name string `json:"name"`
			Size int64  `json:"size"`
		} `json:"files"`
	} `json:"builds"`
}

// TestAccSeed validates and builds examples/packer/seed.pkr.hcl, which
// bakes through the hardway-cluster data source an LXC template for every
// LXC node of examples/seed-lxc.yaml (here with binaries.mode packaged), and
// checks every template against Packer's manifest and checksum files and,
// byte for byte, against `hardway bake` of the same inputs.
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
	start := time.Now()
	log := e.run(append(append([]string{"build", "-parallel-builds=1"}, vars...), template)...)
	t.Logf("packer build of the seed's LXC templates took %s", time.Since(start).Round(time.Millisecond))

	bakeDir := filepath.Join(out, "kublxc", "bake")
	data, err := os.ReadFile(filepath.Join(bakeDir, "packer-manifest.json"))
	if err != nil {
		t.Fatalf("%v\npacker output:\n%s", err, log)
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
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
		checksum := filepath.Join(bakeDir, "packer_"+node+"_sha256.checksum")
		if cs, _ := os.ReadFile(checksum); string(cs) != sum+"\t"+filepath.Base(f)+"\n" {
			t.Errorf("%s = %q, want %s for %s", checksum, cs, sum, filepath.Base(f))
		}
		if want := "debian-12-hardway-" + node + "_1.34.2_amd64.tar.zst"; filepath.Base(f) != want || b.ArtifactID != want {
			t.Errorf("build of %s: template %s (id %s), want %s", node, f, b.ArtifactID, want)
		}
		if want := lxc[node]; b.CustomData["vmid"] != want[0] || b.CustomData["roles"] != want[1] {
			t.Errorf("build of %s: custom data %v, want vmid %s and roles %s", node, b.CustomData, want[0], want[1])
		}
	}
	for n := range lxc {
		if templates[n] == "" {
			t.Errorf("no template for %s", n)
		}
	}

	// The same inputs through the CLI, into another directory, with the
	// PKI state the builds created.
	hardway := filepath.Join(t.TempDir(), "hardway")
	build := exec.Command("go", "build", "-o", hardway, "./cmd/hardway")
	build.Dir = repo
	if o, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/hardway: %v\n%s", err, o)
	}
	cliDir := t.TempDir()
	cli := exec.Command(hardway, "bake", "-f", specFile, "--base", base, "--dir", out, "-o", cliDir)
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
	}
}

// TestAccRejects checks through Packer that a bad configuration is refused
// before anything runs, with every problem at once, and that hardway-kvm
// says plainly that it cannot bake yet.
func TestAccRejects(t *testing.T) {
	e := newEnv(t)
	specFile := plugintest.Write(t, plugintest.Cluster)
	base := plugintest.Base(t)
	write := func(name, hcl string) string {
		p := filepath.Join(e.dir, name)
		if err := os.WriteFile(p, []byte(hcl), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	bad := write("bad.pkr.hcl", fmt.Sprintf(`
source "hardway-lxc" "bad" {
  spec        = %q
  node        = "w2"
  base_rootfs = "/nonexistent/base.tar.zst"
}
source "hardway-lxc" "unknown" {
  spec = "/nonexistent/cluster.yaml"
  role = "etcd"
}
build { sources = ["source.hardway-lxc.bad", "source.hardway-lxc.unknown"] }
`, specFile))
	out, err := e.try("validate", bad)
	if err == nil {
		t.Fatalf("packer validate accepted %s:\n%s", bad, out)
	}
	for _, w := range []string{
		"base_rootfs: stat /nonexistent/base.tar.zst: no such file or directory",
		"node: w2 has target kvm; hardway-lxc bakes nodes of target lxc (use hardway-kvm)",
		"base_rootfs: required",
		"spec: open /nonexistent/cluster.yaml: no such file or directory",
	} {
		if !strings.Contains(out, w) {
			t.Errorf("packer validate output lacks %q:\n%s", w, out)
		}
	}

	kvm := write("kvm.pkr.hcl", fmt.Sprintf(`
source "hardway-kvm" "w2" {
  spec        = %q
  node        = "w2"
  base_rootfs = %q
  format      = "raw"
}
build { sources = ["source.hardway-kvm.w2"] }
`, specFile, base))
	e.run("validate", kvm)
	out, err = e.try("build", kvm)
	if err == nil || !strings.Contains(out, "KVM baking is not available yet in this hardway version") {
		t.Fatalf("packer build of hardway-kvm: %v\n%s", err, out)
	}
}

func fileSHA256(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	h := sha256.Sum256(data)
	return hex.EncodeToString(h[:])
}
