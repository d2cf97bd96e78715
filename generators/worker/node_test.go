package worker_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// What differs between an LXC container and a VM: modules are the host's in
// a container, /dev/kmsg is missing there; nothing is ever placed under /dev
// (pct drops it from templates, LXC mounts a new /dev at each start).
func TestTargetSpecifics(t *testing.T) {
	for _, e := range expects {
		tr := nodeTree(t, load(t, e.example), e.node)
		_, kmsg := tr.Get("/etc/tmpfiles.d/hardway-kmsg.conf")
		_, modules := tr.Get("/etc/modules-load.d/hardway-kubernetes.conf")
		if kmsg != e.lxc || modules == e.lxc {
			t.Errorf("%s %s (lxc=%v): kmsg tmpfiles %v, modules-load.d %v", e.example, e.node, e.lxc, kmsg, modules)
		}
		if modules {
			got := strings.Fields(noComments(file(t, tr, "/etc/modules-load.d/hardway-kubernetes.conf")))
			if !slices.Equal(got, []string{"overlay", "br_netfilter"}) {
				t.Errorf("%s: modules %v, want overlay and br_netfilter", e.node, got)
			}
		}
		for _, en := range tr.Entries() {
			if en.Path == "/dev" || strings.HasPrefix(en.Path, "/dev/") {
				t.Errorf("%s: %s is under /dev", e.node, en.Path)
			}
		}
	}
}

func noComments(b []byte) string {
	var out []string
	for _, l := range strings.Split(string(b), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// The tmpfiles.d line, applied by the real systemd-tmpfiles exactly as
// systemd-tmpfiles-setup-dev.service does at boot, links /dev/kmsg to the
// console on a container's empty /dev, and keeps a /dev/kmsg the host
// bind-mounted. The Debian base's service has no condition that skips it
// in a container.
func TestKmsgInContainer(t *testing.T) {
	tmpfiles := commontest.Tool(t, "systemd-tmpfiles", "systemd")
	unit, err := os.ReadFile("/usr/lib/systemd/system/systemd-tmpfiles-setup-dev.service")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(unit), "ExecStart=systemd-tmpfiles --prefix=/dev --create --boot") ||
		strings.Contains(string(unit), "ConditionVirtualization") || strings.Contains(string(unit), "ConditionCapability") {
		t.Fatalf("systemd-tmpfiles-setup-dev.service is not the one this test assumes:\n%s", unit)
	}
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), "worker1")
	for _, hostDevice := range []bool{false, true} {
		root := t.TempDir()
		commontest.WriteRoot(t, tr, root)
		kmsg := filepath.Join(root, "dev/kmsg")
		if err := os.MkdirAll(filepath.Dir(kmsg), 0o755); err != nil {
			t.Fatal(err)
		}
		if hostDevice {
			if err := os.WriteFile(kmsg, []byte("bind-mounted device"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if out, err := exec.Command(tmpfiles, "--root="+root, "--prefix=/dev", "--create", "--boot").CombinedOutput(); err != nil {
			t.Fatalf("systemd-tmpfiles: %v: %s", err, out)
		}
		target, err := os.Readlink(kmsg)
		switch {
		case hostDevice && err == nil:
			t.Errorf("the host's /dev/kmsg was replaced by a link to %s", target)
		case !hostDevice && target != "/dev/console":
			t.Errorf("/dev/kmsg: link %q (%v), want a link to /dev/console", target, err)
		}
	}
}

// The sysctl file, applied by the real systemd-sysctl inside a network
// namespace the test creates, sets every key there and nothing outside it:
// each key belongs to the network namespace, as an LXC container needs.
func TestSysctlPerNetworkNamespace(t *testing.T) {
	ipTool := commontest.Tool(t, "ip", "iproute2")
	sysctl := "/lib/systemd/systemd-sysctl"
	if _, err := os.Stat(sysctl); err != nil {
		t.Fatalf("%v (apt-get install systemd)", err)
	}
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), "worker1")
	conf := filepath.Join(t.TempDir(), "90-hardway-kubernetes.conf")
	if err := os.WriteFile(conf, file(t, tr, "/etc/sysctl.d/90-hardway-kubernetes.conf"), 0o644); err != nil {
		t.Fatal(err)
	}
	keys := map[string]string{}
	for _, l := range strings.Split(noComments(file(t, tr, "/etc/sysctl.d/90-hardway-kubernetes.conf")), "\n") {
		k, v, _ := strings.Cut(l, "=")
		keys[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	for k, v := range map[string]string{"net.ipv4.ip_forward": "1", "net.bridge.bridge-nf-call-iptables": "1"} {
		if keys[k] != v {
			t.Errorf("sysctl %s = %q, want %s", k, keys[k], v)
		}
	}

	procFile := func(k string) string { return "/proc/sys/" + strings.ReplaceAll(k, ".", "/") }
	before := map[string]string{}
	for k := range keys {
		if b, err := os.ReadFile(procFile(k)); err == nil {
			before[k] = string(b)
		} else {
			t.Logf("%s does not exist on this kernel (br_netfilter not loaded?): not checked", k)
		}
	}
	ns := fmt.Sprintf("hwk-sysctl-%d", os.Getpid())
	run(t, ipTool, "netns", "add", ns)
	t.Cleanup(func() { exec.Command(ipTool, "netns", "delete", ns).Run() })
	if out, err := exec.Command(ipTool, "netns", "exec", ns, sysctl, conf).CombinedOutput(); err != nil || len(out) > 0 {
		t.Fatalf("systemd-sysctl in a network namespace: %v: %s", err, out)
	}
	for k, was := range before {
		in := run(t, ipTool, "netns", "exec", ns, "cat", procFile(k))
		if strings.TrimSpace(in) != keys[k] {
			t.Errorf("%s in the namespace = %s, want %s", k, strings.TrimSpace(in), keys[k])
		}
		if now, _ := os.ReadFile(procFile(k)); string(now) != was {
			t.Errorf("%s changed outside the namespace: %q → %q", k, was, now)
		}
	}
}

// No spec images: no import unit. With images: the archives bake placed in
// /var/lib/hardway/images/ (ImagePath: the base name, or a digest for a name
// that is not a plain one) are imported, every one and nothing else, before
// the kubelet, once per set; the unit holds no spec text.
func TestImagesUnit(t *testing.T) {
	images := func(imgs ...string) *tree.Tree {
		return nodeTree(t, variant(t, "seed-lxc.yaml", func(c *spec.Cluster) { c.Spec.Images = imgs }), "worker1")
	}
	if _, ok := images().Get("/etc/systemd/system/hardway-images.service"); ok {
		t.Error("hardway-images.service without spec images")
	}
	tr := images("artifacts/images/pause.tar", "other/coredns.oci.tar")
	unit := file(t, tr, "/etc/systemd/system/hardway-images.service")
	for _, l := range []string{"Type=oneshot", "After=containerd.service", "Requires=containerd.service", "Before=kubelet.service"} {
		if !strings.Contains(string(unit), "\n"+l+"\n") {
			t.Errorf("hardway-images.service lacks %s", l)
		}
	}
	if e, ok := tr.Get("/etc/systemd/system/kubelet.service.wants/hardway-images.service"); !ok || e.Target != "/etc/systemd/system/hardway-images.service" {
		t.Error("kubelet.service does not want hardway-images.service")
	}
	ex := execLines(t, unit)
	stamp := stampOf(t, unit)
	if post := ex["ExecStartPost"]; len(post) != 1 || post[0][len(post[0])-1] != stamp {
		t.Errorf("ExecStartPost %q does not create the stamp %s", post, stamp)
	}
	if other := stampOf(t, file(t, images("artifacts/images/pause.tar"), "/etc/systemd/system/hardway-images.service")); other == stamp {
		t.Error("two image sets share a stamp: the second would never be imported")
	}

	// The import command, run by sh as systemd would run it, against a ctr
	// that logs its arguments, in a directory laid out as bake lays it out.
	start := ex["ExecStart"]
	if len(start) != 1 || start[0][0] != "/bin/sh" || start[0][len(start[0])-2] != "/usr/local/bin/ctr" || start[0][len(start[0])-1] != worker.ImagesDir {
		t.Fatalf("ExecStart %q, want one /bin/sh command given ctr and %s", start, worker.ImagesDir)
	}
	dir := t.TempDir()
	images1 := []string{worker.ImagePath("artifacts/images/pause.tar"), worker.ImagePath("other/coredns.oci.tar")}
	for _, p := range append(images1, stamp) {
		commontest.WriteFile(t, dir, filepath.Base(p), []byte("archive"))
	}
	ctr := commontest.WriteFile(t, t.TempDir(), "ctr", []byte("#!/bin/sh\necho \"$*\" >>\"$0.log\"\n"))
	if err := os.Chmod(ctr, 0o755); err != nil {
		t.Fatal(err)
	}
	argv := append(slices.Clone(start[0][:len(start[0])-2]), ctr, dir)
	if out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%q: %v: %s", argv, err, out)
	}
	log, _ := os.ReadFile(ctr + ".log")
	want := "--namespace k8s.io images import " + filepath.Join(dir, "coredns.oci.tar") + "\n--namespace k8s.io images import " + filepath.Join(dir, "pause.tar") + "\n"
	if string(log) != want {
		t.Errorf("ctr ran with\n%s\nwant\n%s", log, want)
	}

	// Two archives with one base name would overwrite each other on the node.
	x := variant(t, "seed-lxc.yaml", func(c *spec.Cluster) { c.Spec.Images = []string{"a/img.tar", "b/img.tar"} })
	n, _ := x.C.Node("worker1")
	if err := worker.Generate(x, n, tree.New("worker1")); err == nil || !strings.Contains(err.Error(), "img.tar") {
		t.Errorf("duplicate image base names: error %v", err)
	}
}

// TestImagesHostile: spec images whose names would be commands, lines or
// paths elsewhere, given to the worker generator behind validation's and
// nodegen.Check's back, get plain names in ImagesDir on the node (a digest for
// a base name that is not plain) and appear nowhere in the unit, which
// systemd-analyze verifies.
func TestImagesHostile(t *testing.T) {
	hostile := []string{"images/a.tar\nExecStartPre=/usr/sbin/reboot", "../../etc/x.tar", "images/-rf $HOME %n;.tar", "images/.imported-x", "images/a\nb.tar"}
	for i, want := range []string{"reboot", "x.tar", "image-", "image-", "image-"} {
		got := worker.ImagePath(hostile[i])
		if filepath.Dir(got) != worker.ImagesDir || !strings.HasPrefix(filepath.Base(got), want) || !nodegen.IsWord(filepath.Base(got)) {
			t.Errorf("ImagePath(%q) = %q, want %s... in %s", hostile[i], got, want, worker.ImagesDir)
		}
	}
	if a, b := worker.ImagePath(hostile[2]), worker.ImagePath(hostile[3]); a == b {
		t.Errorf("two images share %s", a)
	}
	tr := nodeTree(t, variant(t, "seed-lxc.yaml", func(c *spec.Cluster) { c.Spec.Images = hostile }), "worker1")
	unit := file(t, tr, "/etc/systemd/system/hardway-images.service")
	for _, s := range []string{"reboot", "etc/x", "rf", "%n", ".imported-x"} {
		if strings.Contains(string(unit), s) {
			t.Errorf("hardway-images.service holds %q:\n%s", s, unit)
		}
	}
	root := commontest.UnitRoot(t, tr)
	if out, ok := commontest.Verify(t, root, "hardway-images.service"); !ok {
		t.Errorf("systemd-analyze verify: %s", out)
	}
}

// stampOf returns the path of the unit's ConditionPathExists=! stamp.
func stampOf(t *testing.T, unit []byte) string {
	t.Helper()
	for _, l := range strings.Split(string(unit), "\n") {
		if s, ok := strings.CutPrefix(l, "ConditionPathExists=!"); ok {
			if !strings.HasPrefix(s, "/var/lib/hardway/") {
				t.Errorf("stamp %s is not under /var/lib/hardway", s)
			}
			return s
		}
	}
	t.Fatal("hardway-images.service has no ConditionPathExists=! stamp")
	return ""
}

// The import command line is one the real ctr accepts (global --namespace,
// images import).
func TestImagesCtrCommand(t *testing.T) {
	ctr := commontest.Tool(t, "ctr", "containerd")
	out, err := exec.Command(ctr, "--namespace", "k8s.io", "images", "import", "--help").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "import") {
		t.Errorf("ctr --namespace k8s.io images import: %v: %s", err, out)
	}
}
