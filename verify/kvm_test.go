package verify

import (
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
)

// TestQemuArgs: a KVM node's proxmox.conf (the seed's kub-node1) becomes
// the devices qemu-server would give the VM: the node's own MAC (from the
// generator, not from the file), its memory, UEFI with the VM's copy of the
// variable store, the image as scsi0 and the seed as ide2, the guest
// agent's port; cores beyond this host's are cut, and said so. An option
// the harness does not know is refused, never dropped.
func TestQemuArgs(t *testing.T) {
	doc := loadExample(t, "../examples/seed-kvm.yaml")
	dir := generateExample(t, "../examples/seed-kvm.yaml")
	n, _ := doc.Cluster.Node("kub-node1")
	mac := nodegen.New(doc.Cluster, nil).MAC(n)
	conf, err := ReadPctConf(filepath.Join(dir, "nodes/kub-node1/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	f := qemuFiles{image: "/img/w.qcow2", seed: "/seed.iso", vars: "/vm/vars.fd", serial: "/vm/console.log", agent: "/vm/qga.sock"}
	args, diffs, err := qemuArgs("201", conf, f, vmHost{cpus: 2, upScript: "/up"})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	for _, want := range []string{
		"-machine q35", "-accel tcg", "-smp 2,sockets=1,cores=2", "-m " + strconv.Itoa(n.MemoryMiB),
		"file=" + OVMFCode, "file=/vm/vars.fd",
		"file=/img/w.qcow2,if=none,id=drive-scsi0,format=qcow2,snapshot=on", "bootindex=100",
		"file=/seed.iso,if=none,id=drive-ide2,media=cdrom", "ifname=tap201i0,script=/up",
		"virtio-net-pci,mac=" + mac, "-serial file:/vm/console.log",
		"socket,path=/vm/qga.sock", "name=org.qemu.guest_agent.0",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("qemu args lack %q:\n%s", want, line)
		}
	}
	if !slices.ContainsFunc(diffs, func(d string) bool { return strings.HasPrefix(d, "cores 4: 2") }) {
		t.Errorf("no difference line for the cut cores: %q", diffs)
	}
	// Three emulated VMs on two CPUs: one vCPU each; with KVM, the host's.
	for _, c := range []struct {
		h    vmHost
		want string
	}{
		{vmHost{cpus: 2, vms: 3}, "-smp 1,sockets=1,cores=1"},
		{vmHost{cpus: 2, vms: 3, kvm: true}, "-smp 2,sockets=1,cores=2"},
		{vmHost{cpus: 8, vms: 2}, "-smp 4,sockets=1,cores=4"},
	} {
		args, diffs, err := qemuArgs("201", conf, f, c.h)
		if err != nil {
			t.Fatal(err)
		}
		if line := strings.Join(args, " "); !strings.Contains(line, c.want) {
			t.Errorf("%+v: qemu args lack %q (diffs %q)", c.h, c.want, diffs)
		}
	}
	conf.Options["hostpci0"] = "0000:01:00.0"
	if _, _, err := qemuArgs("201", conf, f, vmHost{cpus: 2}); err == nil || !strings.Contains(err.Error(), "hostpci0") {
		t.Errorf("an unknown option: err = %v", err)
	}
}

// TestBootOrder: guests start as create-nodes.sh --start starts them,
// gateway, lb, etcd, controllers, workers, the spec's order among equals; a
// stacked controller+etcd node starts with etcd.
func TestBootOrder(t *testing.T) {
	var got []string
	for _, n := range bootOrder(loadExample(t, "../examples/seed-lxc.yaml").Cluster.Spec.Nodes) {
		got = append(got, n.Name)
	}
	want := []string{"gw", "lb", "lb1", "lb2", "etcd1", "etcd2", "controller", "controller1", "controller2", "worker1", "worker2"}
	if !slices.Equal(got, want) {
		t.Errorf("boot order %v, want %v", got, want)
	}
	stacked := []spec.Node{{Name: "w", Roles: []string{spec.RoleWorker}}, {Name: "cp", Roles: []string{spec.RoleController, spec.RoleEtcd}}}
	if o := bootOrder(stacked); o[0].Name != "cp" {
		t.Errorf("stacked: %v", o)
	}
}

// TestSecondNIC: verify --boot has one bridge, br0. A node's second NIC
// (spec/testdata/two-nics.yaml) is booted with its own MAC, attached to br0
// like the first, and the difference is printed by the NIC's name and the
// bridge the spec gave it, never silently.
func TestSecondNIC(t *testing.T) {
	const spec = "../spec/testdata/two-nics.yaml"
	doc := loadExample(t, spec)
	dir := generateExample(t, spec)
	x := nodegen.New(doc.Cluster, nil)

	cp1, _ := doc.Cluster.Node("cp1")
	conf, err := ReadPctConf(filepath.Join(dir, "nodes/cp1/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	f := qemuFiles{image: "/img/c.qcow2", seed: "/seed.iso", vars: "/vm/vars.fd", serial: "/vm/console.log", agent: "/vm/qga.sock"}
	args, diffs, err := qemuArgs("221", conf, f, vmHost{cpus: 2, upScript: "/up"})
	if err != nil {
		t.Fatal(err)
	}
	line := strings.Join(args, " ")
	if !strings.Contains(line, "ifname=tap221i1,script=/up") || !strings.Contains(line, "virtio-net-pci,mac="+x.NICMAC(cp1, 1)+",netdev=net1") {
		t.Errorf("qemu args lack net1:\n%s", line)
	}
	if !slices.Contains(diffs, "net1: bridge vmbr4 is the run's bridge br0, in the hub namespace") {
		t.Errorf("no difference line for net1: %q", diffs)
	}

	gw, _ := doc.Cluster.Node("gw")
	conf, err = ReadPctConf(filepath.Join(dir, "nodes/gw/proxmox.conf"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, diffs, err := lxcConfig("103", conf, "/ct/rootfs", lxcHost{upScript: "/up"})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"lxc.net.1.name = eth1", "lxc.net.1.hwaddr = " + x.NICMAC(gw, 1), "lxc.net.1.script.up = /up"} {
		if !strings.Contains(cfg, want+"\n") {
			t.Errorf("LXC config lacks %q:\n%s", want, cfg)
		}
	}
	if !slices.Contains(diffs, "net1: bridge vmbr0 is the run's bridge br0, in the hub namespace") {
		t.Errorf("no difference line for net1: %q", diffs)
	}
}
