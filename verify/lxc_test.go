package verify

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
)

// TestHostContractParsers: the parsers of the worker boot read what the
// generators write for the seed: the host's routes to both workers' pod
// CIDRs, a worker's default route (its only one: the gateway routes the
// other workers' pods), and the pct options and raw keys of a worker's
// proxmox.conf, which become the LXC configuration pve-container would write.
func TestHostContractParsers(t *testing.T) {
	doc := loadExample(t, "../examples/seed-lxc.yaml")
	dir := generateExample(t, "../examples/seed-lxc.yaml")
	cidrs := doc.Cluster.PodCIDRs()

	routes, bridge, err := hostRoutes(filepath.Join(dir, hostInterfacesFile))
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{cidrs["worker1"].String(), "via", "10.240.0.31"},
		{cidrs["worker2"].String(), "via", "10.240.0.32"},
	}
	if !slices.EqualFunc(routes, want, slices.Equal) || bridge != doc.Cluster.Spec.Proxmox.Bridge {
		t.Errorf("host routes %v on %q, want %v on %q", routes, bridge, want, doc.Cluster.Spec.Proxmox.Bridge)
	}

	rs, err := networkRoutes(filepath.Join(overlayTree(t, dir, "worker1"), "etc/systemd/network/eth0.network"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 1 || !slices.Equal(rs[0], []string{"default", "via", doc.Cluster.Spec.Network.Gateway}) {
		t.Errorf("worker1's routes %v: want the default route via %s only", rs, doc.Cluster.Spec.Network.Gateway)
	}

	c, err := ReadPctConf(filepath.Join(dir, "nodes/worker1/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Options["hostname"] != "worker1" || !strings.Contains(c.Options["net0"], "ip=10.240.0.31/24") {
		t.Errorf("proxmox.conf options %v", c.Options)
	}
	cfg, diffs, err := lxcConfig("231", c, "/tmp/rootfs", lxcHost{cgroupV1: true, upScript: "/up"})
	if err != nil {
		t.Fatal(err)
	}
	net := netOptions(c.Options["net0"])
	for _, line := range []string{
		"lxc.uts.name = worker1",
		"lxc.net.0.hwaddr = " + net["hwaddr"],
		"lxc.net.0.name = eth0",
		"lxc.net.0.script.up = /up",
		"lxc.rootfs.path = dir:/tmp/rootfs",
	} {
		if !strings.Contains(cfg, line+"\n") {
			t.Errorf("LXC configuration lacks %q:\n%s", line, cfg)
		}
	}
	// Every raw key, in order after Proxmox's own, the cgroup2 devices
	// keys as their cgroup v1 form on a cgroup v1 host.
	if len(c.Raw) == 0 {
		t.Fatal("no raw lxc.* keys in worker1's proxmox.conf")
	}
	last := 0
	for _, kv := range c.Raw {
		line := strings.Replace(kv[0], "lxc.cgroup2.devices.", "lxc.cgroup.devices.", 1) + " = " + kv[1] + "\n"
		i := strings.Index(cfg[last:], line)
		if i < 0 {
			t.Errorf("LXC configuration lacks %q after offset %d:\n%s", line, last, cfg)
			continue
		}
		last += i + len(line)
	}
	if !slices.ContainsFunc(diffs, func(d string) bool { return strings.Contains(d, "lxc.cgroup2.devices.allow") }) {
		t.Errorf("the cgroup v1 rewrite is not reported: %v", diffs)
	}
	// An unprivileged container (etcd1) gets userns.conf, sys:mixed and
	// Proxmox's id map, as pve-container writes them.
	u, err := ReadPctConf(filepath.Join(dir, "nodes/etcd1/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, _, err = lxcConfig("211", u, "/r", lxcHost{})
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"lxc.include = " + lxcUsernsConf, "lxc.mount.auto = sys:mixed", "lxc.idmap = u 0 100000 65536", "lxc.idmap = g 0 100000 65536"} {
		if !strings.Contains(cfg, line+"\n") {
			t.Errorf("etcd1's LXC configuration lacks %q:\n%s", line, cfg)
		}
	}
	if _, _, err := lxcConfig("211", &PctConf{Options: map[string]string{}, Raw: [][2]string{{"lxc.idmap", "u 0 100000"}}}, "/r", lxcHost{}); err == nil {
		t.Error("a malformed lxc.idmap was accepted")
	}
}

// TestPctSetupMarkers: pct's setup writes the hostname, resolv.conf and the
// first-boot preset that disables systemd-networkd, but not a file whose
// .pve-ignore marker the tree has, as the seed's LXC nodes have for the
// hostname and the preset.
func TestPctSetupMarkers(t *testing.T) {
	dir := generateExample(t, "../examples/seed-lxc.yaml")
	c, err := ReadPctConf(filepath.Join(dir, "nodes/worker1/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, marked := range []bool{false, true} {
		root := t.TempDir()
		if marked {
			// What the template holds of the node's tree: the markers.
			root = overlayTree(t, dir, "worker1")
		}
		if err := pctSetup(root, c); err != nil {
			t.Fatal(err)
		}
		preset, _ := os.ReadFile(filepath.Join(root, nodegen.PVEPreset))
		hostname, _ := os.ReadFile(filepath.Join(root, "etc/hostname"))
		resolv, _ := os.ReadFile(filepath.Join(root, "etc/resolv.conf"))
		switch {
		case !marked && (!strings.Contains(string(preset), "disable systemd-networkd.service") || string(hostname) != c.Options["hostname"]+"\n"):
			t.Errorf("without markers: preset %q, hostname %q", preset, hostname)
		case marked && len(preset) > 0:
			t.Errorf("the preset was written despite its marker: %q", preset)
		case !strings.Contains(string(resolv), "nameserver "):
			t.Errorf("resolv.conf %q", resolv)
		}
	}
}

// TestSweepCgroups: the empty cgroups a killed run left for a container go,
// deepest first, in every hierarchy; a tree with a process in it stays.
func TestSweepCgroups(t *testing.T) {
	needRoot(t)
	left, live := fmt.Sprintf("hwsweep%d", os.Getpid()), fmt.Sprintf("hwsweep%dlive", os.Getpid())
	var made []string
	for _, h := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"} {
		for _, d := range []string{filepath.Join(h, "lxc", left, "ns", "init.scope"), filepath.Join(h, "lxc.monitor", left), filepath.Join(h, "lxc", live, "ns")} {
			if err := os.MkdirAll(d, 0o755); err != nil {
				t.Skipf("no writable cgroup hierarchy %s: %v", h, err)
			}
			made = append(made, d)
		}
	}
	sleep := exec.Command("sleep", "60")
	if err := sleep.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = sleep.Process.Kill() // by its PID
		_ = sleep.Wait()
		for _, d := range slices.Backward(made) {
			_ = os.Remove(d)
			_ = os.Remove(filepath.Dir(d))
		}
	})
	for _, h := range []string{"/sys/fs/cgroup/pids", "/sys/fs/cgroup/unified"} {
		procs := filepath.Join(h, "lxc", live, "ns", "cgroup.procs")
		if err := os.WriteFile(procs, []byte(fmt.Sprint(sleep.Process.Pid)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	removed := sweepCgroups(left)
	if len(removed) != 4 {
		t.Errorf("removed %v, want lxc/%s and lxc.monitor/%s in both hierarchies", removed, left, left)
	}
	assertNoCgroup(t, "lxc/"+left)
	assertNoCgroup(t, "lxc.monitor/"+left)
	if removed := sweepCgroups(live); len(removed) != 0 {
		t.Errorf("removed %v of a cgroup tree with a process in it", removed)
	}
}

// TestPreflightDisk: an LXC worker is not booted on a file system whose
// free space is under the kubelet's DiskPressure threshold plus the boot's
// headroom; a KVM worker's disk is its own, and a big enough file system
// passes. The file systems are tmpfs mounts of a given size (nothing is
// written to them, so they cost no memory).
func TestPreflightDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("mounts tmpfs: needs root")
	}
	lxcWorker := spec.Node{Name: "w1", Roles: []string{spec.RoleWorker}, Target: spec.TargetLXC}
	kvmWorker := spec.Node{Name: "w2", Roles: []string{spec.RoleWorker}, Target: spec.TargetKVM}
	lxcLB := spec.Node{Name: "lb1", Roles: []string{spec.RoleLB}, Target: spec.TargetLXC}
	for _, tt := range []struct {
		size    string
		booting []spec.Node
		fail    bool
	}{
		{"4g", []spec.Node{lxcLB, lxcWorker}, true}, // 4 GiB free < 15% of 4 GiB + 8 GiB
		{"4g", []spec.Node{lxcLB, kvmWorker}, false},
		{"100g", []spec.Node{lxcWorker}, false}, // 100 GiB free >= 15 + 8 GiB
		{"30g", []spec.Node{lxcWorker}, false},  // 30 >= 4.5 + 8
		{"9g", []spec.Node{lxcWorker}, true},    // 9 < 1.35 + 8
	} {
		dir := t.TempDir()
		if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+tt.size, "hardway-test", dir).CombinedOutput(); err != nil {
			t.Skipf("mount tmpfs: %v: %s", err, out)
		}
		v := &run{work: dir, booting: tt.booting}
		err := v.preflightDisk()
		if umount := exec.Command("umount", dir).Run(); umount != nil {
			t.Errorf("umount %s: %v", dir, umount)
		}
		if (err != nil) != tt.fail || err != nil && !strings.Contains(err.Error(), "DiskPressure") {
			t.Errorf("%s, %d nodes: %v, want fail %v", tt.size, len(tt.booting), err, tt.fail)
		}
	}
}
