package worker_test

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/spec"
)

// tomlSections reads the flat TOML that `containerd config dump` prints:
// [section] headers and key = value lines, values as written.
func tomlSections(data []byte) map[string]map[string]string {
	out := map[string]map[string]string{}
	section := ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			section = strings.Trim(l, "[]")
		case strings.Contains(l, " = "):
			k, v, _ := strings.Cut(l, " = ")
			if out[section] == nil {
				out[section] = map[string]string{}
			}
			out[section][k] = v
		}
	}
	return out
}

// The real containerd of each binaries.mode reads the generated config.toml
// without a warning, and its effective configuration holds our values where
// the CRI plugin looks for them: a key in the wrong table or misspelt would
// show the default instead. Upstream mode runs the pinned containerd 2.x
// (make runtime; format version 3), packaged mode Debian's 1.6 (version 2).
func TestContainerdConfigDump(t *testing.T) {
	debian := commontest.Tool(t, "containerd", "containerd")
	pinned := pinnedContainerd(t)
	const v2 = `plugins."io.containerd.grpc.v1.cri"`
	const images, rt = `plugins.io.containerd.cri.v1.images`, `plugins.io.containerd.cri.v1.runtime`
	for _, w := range workers(t) {
		t.Run(w.example+"/"+w.node, func(t *testing.T) {
			tr := nodeTree(t, w.x, w.node)
			cfg := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfg, file(t, tr, "/etc/containerd/config.toml"), 0o644); err != nil {
				t.Fatal(err)
			}
			containerd := pinned
			if w.x.C.Spec.Binaries.Mode == spec.ModePackaged {
				containerd = debian
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(containerd, "--config", cfg, "config", "dump")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("%s config dump: %v: %s", containerd, err, stderr.Bytes())
			}
			if strings.Contains(stderr.String(), "level=") {
				t.Errorf("containerd complains about the configuration: %s", stderr.Bytes())
			}
			got := tomlSections(stdout.Bytes())
			// containerd 2 writes TOML with quoted table names and
			// single-quoted strings: compared without the quotes.
			unquote := strings.NewReplacer("'", "", `"`, "")
			if w.x.C.Spec.Binaries.Mode != spec.ModePackaged {
				plain := map[string]map[string]string{}
				for sec, kv := range got {
					m := map[string]string{}
					for k, v := range kv {
						m[k] = unquote.Replace(v)
					}
					plain[unquote.Replace(sec)] = m
				}
				got = plain
			}
			// A node booted by Ignition runs the pinned runtime from its
			// systemd-sysext image, merged under /usr.
			runc, cni := "/usr/local/bin/runc", "[/opt/cni/bin]"
			if n, _ := w.x.C.Node(w.node); n.BootsByIgnition() {
				runc, cni = "/usr/lib/hardway/bin/runc", "[/usr/lib/hardway/cni]"
			}
			want := []struct{ section, key, want string }{
				{"", "version", "3"},
				{images + ".pinned_images", "sandbox", "registry.k8s.io/pause:3.10.1"},
				{rt + ".containerd", "default_runtime_name", "runc"},
				{rt + ".containerd.runtimes.runc", "runtime_type", "io.containerd.runc.v2"},
				{rt + ".containerd.runtimes.runc.options", "SystemdCgroup", "true"},
				{rt + ".containerd.runtimes.runc.options", "BinaryName", runc},
				{rt + ".cni", "bin_dirs", cni},
				{rt + ".cni", "conf_dir", "/etc/cni/net.d"},
			}
			if w.x.C.Spec.Binaries.Mode == spec.ModePackaged {
				want = []struct{ section, key, want string }{
					{"", "version", "2"},
					{v2, "sandbox_image", `"registry.k8s.io/pause:3.10.1"`},
					{v2 + ".containerd", "default_runtime_name", `"runc"`},
					{v2 + ".containerd.runtimes.runc", "runtime_type", `"io.containerd.runc.v2"`},
					{v2 + ".containerd.runtimes.runc.options", "SystemdCgroup", "true"},
					{v2 + ".containerd.runtimes.runc.options", "BinaryName", `"/usr/bin/runc"`},
					{v2 + ".cni", "bin_dir", `"/usr/lib/cni"`},
					{v2 + ".cni", "conf_dir", `"/etc/cni/net.d"`},
				}
			}
			for _, c := range want {
				if v := got[c.section][c.key]; v != c.want {
					t.Errorf("[%s] %s = %s, want %s", c.section, c.key, v, c.want)
				}
			}
		})
	}
}

// pinnedContainerd is the containerd that make runtime builds:
// $HARDWAY_RUNTIME_DIR/containerd, else hack/tools.sh's cache.
func pinnedContainerd(t *testing.T) string {
	t.Helper()
	if d := os.Getenv("HARDWAY_RUNTIME_DIR"); d != "" {
		return filepath.Join(d, "containerd")
	}
	out, err := exec.Command("../../hack/tools.sh", "path", "containerd").Output()
	if err != nil {
		t.Fatal("the pinned containerd is not built: run `make runtime` (make test does) or set HARDWAY_RUNTIME_DIR")
	}
	return filepath.Join(strings.TrimSpace(string(out)), "containerd")
}

// In packaged mode the binaries and the unit the worker uses are where
// Debian's packages put them: checked on this Debian host with containerd
// and runc installed (the CNI plugins are checked in TestCNIPlugins).
func TestPackagedPathsAreDebians(t *testing.T) {
	commontest.Tool(t, "containerd", "containerd")
	x := load(t, "seed-kvm.yaml")
	tr := nodeTree(t, x, "kub-node1")
	paths := []string{
		"/usr/bin/containerd", "/usr/bin/ctr", "/usr/bin/runc", "/usr/bin/containerd-shim-runc-v2",
		"/lib/systemd/system/containerd.service",
	}
	for _, p := range paths {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%v (apt-get install containerd runc)", err)
		}
	}
	// The enablement link points at the packaged unit.
	e, ok := tr.Get("/etc/systemd/system/multi-user.target.wants/containerd.service")
	if !ok || e.Target != "/lib/systemd/system/containerd.service" {
		t.Errorf("containerd.service is not enabled from the distribution's unit: %+v", e)
	}
}
