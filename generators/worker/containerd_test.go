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

// The real containerd (Debian's 1.6) reads the generated config.toml without
// a warning, and its effective configuration holds our values where the CRI
// plugin looks for them: a key in the wrong table or misspelt would show the
// default instead.
func TestContainerdConfigDump(t *testing.T) {
	containerd := commontest.Tool(t, "containerd", "containerd")
	const cri = `plugins."io.containerd.grpc.v1.cri"`
	for _, w := range workers(t) {
		t.Run(w.example+"/"+w.node, func(t *testing.T) {
			tr := nodeTree(t, w.x, w.node)
			cfg := filepath.Join(t.TempDir(), "config.toml")
			if err := os.WriteFile(cfg, file(t, tr, "/etc/containerd/config.toml"), 0o644); err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			cmd := exec.Command(containerd, "--config", cfg, "config", "dump")
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("containerd config dump: %v: %s", err, stderr.Bytes())
			}
			if strings.Contains(stderr.String(), "level=") {
				t.Errorf("containerd complains about the configuration: %s", stderr.Bytes())
			}
			// Upstream: the pinned files; packaged: Debian's containerd, runc
			// and containernetworking-plugins.
			runc, cniBin := `"/usr/local/bin/runc"`, `"/opt/cni/bin"`
			if w.x.C.Spec.Binaries.Mode == spec.ModePackaged {
				runc, cniBin = `"/usr/bin/runc"`, `"/usr/lib/cni"`
			}
			got := tomlSections(stdout.Bytes())
			for _, c := range []struct{ section, key, want string }{
				{"", "version", "2"},
				{cri, "sandbox_image", `"registry.k8s.io/pause:3.10.1"`},
				{cri + ".containerd", "default_runtime_name", `"runc"`},
				{cri + ".containerd.runtimes.runc", "runtime_type", `"io.containerd.runc.v2"`},
				{cri + ".containerd.runtimes.runc.options", "SystemdCgroup", "true"},
				{cri + ".containerd.runtimes.runc.options", "BinaryName", runc},
				{cri + ".cni", "bin_dir", cniBin},
				{cri + ".cni", "conf_dir", `"/etc/cni/net.d"`},
			} {
				if v := got[c.section][c.key]; v != c.want {
					t.Errorf("[%s] %s = %s, want %s", c.section, c.key, v, c.want)
				}
			}
		})
	}
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
