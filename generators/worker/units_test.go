package worker_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// unitRoot is tr under a root for systemd-analyze verify (commontest.UnitRoot).
func unitRoot(t *testing.T, tr *tree.Tree) string { return commontest.UnitRoot(t, tr) }

// verify runs systemd-analyze verify on units inside root. It fails on any
// message, warnings included: systemd-analyze exits 0 on an unknown key or
// an unparsable value, which systemd would then ignore at boot.
func verify(analyze, root string, units []string) error {
	args := append([]string{"verify", "--root=" + root}, units...)
	cmd := exec.Command(analyze, args...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		return &verifyError{err, string(out)}
	}
	return nil
}

type verifyError struct {
	err error
	out string
}

func (e *verifyError) Error() string { return "systemd-analyze verify: " + strings.TrimSpace(e.out) }

// Every unit of every worker (both targets, both binaries modes, with and
// without images) passes systemd-analyze verify.
func TestUnitsVerify(t *testing.T) {
	analyze := commontest.Tool(t, "systemd-analyze", "systemd")
	cases := workers(t)
	withImages := variant(t, "seed-lxc.yaml", func(c *spec.Cluster) {
		c.Spec.Images = []string{"artifacts/images/pause.tar", "artifacts/images/coredns.tar"}
	})
	cases = append(cases, workerCase{"seed-lxc.yaml+images", withImages, "worker1"})
	for _, w := range cases {
		t.Run(w.example+"/"+w.node, func(t *testing.T) {
			tr := nodeTree(t, w.x, w.node)
			if w.x.C.Spec.Binaries.Mode == spec.ModePackaged {
				if _, err := os.Stat("/usr/lib/systemd/system/containerd.service"); err != nil {
					t.Fatal("packaged mode enables the distribution's containerd.service: apt-get install containerd")
				}
			}
			root := unitRoot(t, tr)
			var names []string
			for _, u := range unitPaths(tr) {
				names = append(names, path.Base(u))
			}
			if err := verify(analyze, root, names); err != nil {
				t.Error(err)
			}
		})
	}
}

// The check above can fail: a misspelt setting, a missing executable and a
// dependency on a unit that does not exist are each reported.
func TestUnitsVerifyCatchesBrokenUnits(t *testing.T) {
	analyze := commontest.Tool(t, "systemd-analyze", "systemd")
	x := load(t, "seed-lxc.yaml")
	for _, tc := range []struct {
		name   string
		break_ func(root string) error
	}{
		{"misspelt setting", func(root string) error {
			return edit(root, "etc/systemd/system/kubelet.service", "RestartSec=", "RestartSecs=")
		}},
		{"missing executable", func(root string) error {
			return os.Remove(filepath.Join(root, "usr/local/bin/kubelet"))
		}},
		{"unknown dependency", func(root string) error {
			return edit(root, "etc/systemd/system/kubelet.service", "Requires=containerd.service", "Requires=containerd-typo.service")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := unitRoot(t, nodeTree(t, x, "worker1"))
			if err := tc.break_(root); err != nil {
				t.Fatal(err)
			}
			if err := verify(analyze, root, []string{"kubelet.service"}); err == nil {
				t.Error("systemd-analyze verify accepted a broken kubelet.service")
			}
		})
	}
}

func edit(root, rel, old, new string) error {
	p := filepath.Join(root, rel)
	b, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	if !strings.Contains(string(b), old) {
		return os.ErrNotExist
	}
	return os.WriteFile(p, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

// The units start in the right order and the right ones are enabled, per mode.
func TestUnitsWiring(t *testing.T) {
	for _, w := range workers(t) {
		tr := nodeTree(t, w.x, w.node)
		upstream := w.x.C.Spec.Binaries.Mode == spec.ModeUpstream
		enabled := map[string]string{}
		for _, e := range tr.Entries() {
			if e.IsSymlink() && strings.HasSuffix(path.Dir(e.Path), ".wants") {
				enabled[path.Base(e.Path)] = e.Target
			}
		}
		wantContainerd := "/etc/systemd/system/containerd.service"
		if !upstream {
			// The distribution's unit, as `systemctl enable` links it on Debian.
			wantContainerd = "/lib/systemd/system/containerd.service"
			if _, ok := tr.Get("/etc/systemd/system/containerd.service"); ok {
				t.Errorf("%s %s: packaged mode must not replace the distribution's containerd.service", w.example, w.node)
			}
		}
		for unit, target := range map[string]string{
			"containerd.service": wantContainerd,
			"kubelet.service":    "/etc/systemd/system/kubelet.service",
			"kube-proxy.service": "/etc/systemd/system/kube-proxy.service",
		} {
			if enabled[unit] != target {
				t.Errorf("%s %s: %s enabled as %q, want a link to %s", w.example, w.node, unit, enabled[unit], target)
			}
		}
		kubelet := string(file(t, tr, "/etc/systemd/system/kubelet.service"))
		for _, l := range []string{"After=containerd.service", "Requires=containerd.service"} {
			if !strings.Contains(kubelet, "\n"+l+"\n") {
				t.Errorf("%s %s: kubelet.service lacks %s", w.example, w.node, l)
			}
		}
		for _, want := range []struct{ unit, bin string }{
			{"kubelet.service", "kubelet"}, {"kube-proxy.service", "kube-proxy"}, {"containerd.service", "containerd"},
		} {
			if e, ok := tr.Get("/etc/systemd/system/" + want.unit); ok {
				got := execLines(t, e.Data)["ExecStart"][0][0]
				n, _ := w.x.C.Node(w.node)
				if dir := binDir(w.x, n, want.bin); got != dir+want.bin {
					t.Errorf("%s %s: %s runs %s, want %s%s", w.example, w.node, want.unit, got, dir, want.bin)
				}
			}
		}
	}
}

// binDir is where the binaries of the spec's mode are, per the spec's doc;
// on a node booted by Ignition, where its systemd-sysext image puts them.
func binDir(x *nodegen.Context, n spec.Node, bin string) string {
	if n.Sysext() {
		return "/usr/lib/hardway/bin/"
	}
	// Packaged mode: Debian 12's containerd package, the pinned Kubernetes.
	if x.C.Spec.Binaries.Mode == spec.ModePackaged && bin == "containerd" {
		return "/usr/bin/"
	}
	return "/usr/local/bin/"
}

// In packaged mode a kubeadm drop-in shipped by the distribution
// (pkgs.k8s.io's 10-kubeadm.conf replaces the kubelet's command line) is
// masked: systemd reads the kubelet's own ExecStart. Without the mask the
// same check sees the drop-in's command.
func TestPackagedMasksKubeadmDropIn(t *testing.T) {
	analyze := commontest.Tool(t, "systemd-analyze", "systemd")
	tr := nodeTree(t, load(t, "seed-kvm.yaml"), "kub-node1")
	for _, masked := range []bool{true, false} {
		root := unitRoot(t, tr)
		dropIn := filepath.Join(root, "usr/lib/systemd/system/kubelet.service.d/10-kubeadm.conf")
		if err := os.MkdirAll(filepath.Dir(dropIn), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(dropIn, []byte("[Service]\nExecStart=\nExecStart=/nonexistent/kubeadm-kubelet\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if !masked {
			if err := os.Remove(filepath.Join(root, "etc/systemd/system/kubelet.service.d/10-kubeadm.conf")); err != nil {
				t.Fatal(err)
			}
		}
		err := verify(analyze, root, []string{"kubelet.service"})
		if masked && err != nil {
			t.Errorf("with the mask: %v", err)
		}
		if !masked && (err == nil || !strings.Contains(err.Error(), "/nonexistent/kubeadm-kubelet")) {
			t.Errorf("without the mask the drop-in should win: %v", err)
		}
	}
}

// In packaged mode the distribution's containerd.service gets a drop-in
// raising its start limit above systemd's default 90 s: a first start that
// timed out left the kubelet, which requires containerd, never started (the
// seed's KVM workers under software emulation, TestBootSeedKVM). Upstream
// mode writes its own unit and no drop-in.
func TestPackagedContainerdStartLimit(t *testing.T) {
	const dropIn = "/etc/systemd/system/containerd.service.d/10-hardway.conf"
	for _, c := range []struct{ example, node string }{{"seed-kvm.yaml", "kub-node1"}, {"seed-lxc.yaml", "worker1"}} {
		tr := nodeTree(t, load(t, c.example), c.node)
		e, ok := tr.Get(dropIn)
		packaged := c.example == "seed-kvm.yaml"
		if ok != packaged {
			t.Errorf("%s %s: drop-in %s present: %v, want %v", c.example, c.node, dropIn, ok, packaged)
			continue
		}
		if ok && !strings.Contains(string(e.Data), "\n[Service]\nTimeoutStartSec=10min\n") {
			t.Errorf("%s: no [Service] TimeoutStartSec=10min:\n%s", dropIn, e.Data)
		}
	}
}
