package proxmox

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/gen"
)

const (
	seedLXC = "../../examples/seed-lxc.yaml"
	seedKVM = "../../examples/seed-kvm.yaml"
	mixed   = "../../examples/mixed.yaml"
)

// files returns the cluster-level files of an example by path.
func files(t *testing.T, example string) map[string]gen.File {
	t.Helper()
	fs, err := Files(commontest.Context(t, example))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]gen.File{}
	for _, f := range fs {
		if _, dup := out[f.Path]; dup {
			t.Fatalf("%s is returned twice", f.Path)
		}
		out[f.Path] = f
	}
	return out
}

func file(t *testing.T, fs map[string]gen.File, p string) string {
	t.Helper()
	f, ok := fs[p]
	if !ok {
		t.Fatalf("no %s", p)
	}
	return string(f.Data)
}

// TestConntrackFormula checks hashsize against values computed by hand from
// kube-proxy's defaults: nf_conntrack_max = max(32768 x cores, 131072), hashsize a quarter.
func TestConntrackFormula(t *testing.T) {
	for _, c := range []struct{ cores, max, hashsize int }{
		{1, 131072, 32768},
		{4, 131072, 32768}, // the default worker size
		{5, 163840, 40960},
		{8, 262144, 65536}, // the seed's workers, and the seed's 65536
		{16, 524288, 131072},
	} {
		if got := conntrackMax(c.cores); got != c.max {
			t.Errorf("conntrackMax(%d) = %d, want %d", c.cores, got, c.max)
		}
		if got := conntrackHashsize(c.cores); got != c.hashsize {
			t.Errorf("conntrackHashsize(%d) = %d, want %d", c.cores, got, c.hashsize)
		}
	}
}

// TestHostConntrack: seed-lxc's 8-core LXC workers need hashsize 65536 and
// nf_conntrack_max 262144; mixed's LXC workers have the default 4 cores
// (its 4-core KVM worker does not count): 32768 and 131072. seed-kvm has no
// LXC worker, hence no module or conntrack settings on the host.
func TestHostConntrack(t *testing.T) {
	for _, c := range []struct {
		example       string
		hashsize, max int
	}{{seedLXC, 65536, 262144}, {mixed, 32768, 131072}, {seedKVM, 0, 0}} {
		fs := files(t, c.example)
		sysctl := lines(file(t, fs, "proxmox/sysctl.d/hardway.conf"))
		if !slices.Contains(sysctl, "net.ipv4.ip_forward = 1") {
			t.Errorf("%s: no ip_forward", c.example)
		}
		if c.hashsize == 0 {
			for _, p := range []string{"proxmox/modprobe.d/hardway-nf_conntrack.conf", "proxmox/modules-load.d/hardway.conf"} {
				if _, ok := fs[p]; ok {
					t.Errorf("%s: %s without LXC workers", c.example, p)
				}
			}
			if slices.ContainsFunc(sysctl, func(l string) bool { return strings.Contains(l, "conntrack") }) {
				t.Errorf("%s: conntrack sysctl without LXC workers", c.example)
			}
			continue
		}
		modprobe := lines(file(t, fs, "proxmox/modprobe.d/hardway-nf_conntrack.conf"))
		if want := fmt.Sprintf("options nf_conntrack hashsize=%d", c.hashsize); !slices.Equal(modprobe, []string{want}) {
			t.Errorf("%s: modprobe.d %q, want %q", c.example, modprobe, want)
		}
		if want := fmt.Sprintf("net.netfilter.nf_conntrack_max = %d", c.max); !slices.Contains(sysctl, want) {
			t.Errorf("%s: sysctl.d lacks %q: %q", c.example, want, sysctl)
		}
		modules := lines(file(t, fs, "proxmox/modules-load.d/hardway.conf"))
		for _, m := range []string{"overlay", "br_netfilter", "nf_conntrack"} {
			if !slices.Contains(modules, m) {
				t.Errorf("%s: modules-load.d lacks %s", c.example, m)
			}
		}
	}
}

// mac is the node's pinned MAC, as generators/gen derives it (not this package).
func mac(t *testing.T, example, node string) string {
	t.Helper()
	x := commontest.Context(t, example)
	return x.MAC(commontest.Node(t, x, node))
}

// lines returns the non-empty, non-comment lines.
func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// conf parses a Proxmox configuration: "key: value" lines, in order.
func conf(t *testing.T, s string) [][2]string {
	t.Helper()
	var out [][2]string
	for _, l := range lines(s) {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			t.Fatalf("%q is not key: value", l)
		}
		out = append(out, [2]string{k, strings.TrimSpace(v)})
	}
	return out
}

// TestGuestConf reads three nodes' proxmox.conf, every value written by hand
// from the spec: a privileged worker with the raw keys, an unprivileged etcd
// member, and a cloud-init VM.
func TestGuestConf(t *testing.T) {
	worker := [][2]string{
		{"arch", "amd64"}, {"hostname", "worker1"}, {"cores", "8"}, {"memory", "16384"}, {"swap", "16384"},
		{"net0", "name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "worker1") + ",ip=10.240.0.31/24,gw=10.240.0.2,type=veth"},
		{"nameserver", "10.240.0.2"}, {"searchdomain", "example.com"}, {"rootfs", "local-lvm:20"},
		{"unprivileged", "0"}, {"features", "nesting=1"}, {"onboot", "1"},
		{"lxc.apparmor.profile", "unconfined"}, {"lxc.cgroup2.devices.allow", "a"}, {"lxc.cap.drop", ""},
		{"lxc.mount.auto", "proc:rw sys:rw"}, {"lxc.mount.entry", "/dev/kmsg dev/kmsg none defaults,bind,create=file"},
	}
	etcd := [][2]string{
		{"arch", "amd64"}, {"hostname", "etcd1"}, {"cores", "1"}, {"memory", "1024"}, {"swap", "2048"},
		{"net0", "name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "etcd1") + ",ip=10.240.0.11/24,gw=10.240.0.2,type=veth"},
		{"nameserver", "10.240.0.2"}, {"searchdomain", "example.com"}, {"rootfs", "local-lvm:10"},
		{"unprivileged", "1"}, {"features", "nesting=1"}, {"onboot", "1"},
	}
	vm := [][2]string{
		{"name", "kub-node1"}, {"ostype", "l26"}, {"machine", "q35"}, {"bios", "ovmf"},
		{"efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=0"}, {"cores", "4"}, {"memory", "16384"},
		{"net0", "virtio=" + mac(t, seedKVM, "kub-node1") + ",bridge=vmbr3"}, {"scsihw", "virtio-scsi-single"}, {"serial0", "socket"}, {"agent", "enabled=1"},
		{"ide2", "local-lvm:cloudinit"},
		{"cicustom", "user=local:snippets/kub-node1-user-data.yaml,network=local:snippets/kub-node1-network-config.yaml,meta=local:snippets/kub-node1-meta-data.yaml"},
		{"boot", "order=scsi0"}, {"onboot", "1"},
	}
	for _, c := range []struct {
		example, node string
		want          [][2]string
	}{{seedLXC, "worker1", worker}, {seedLXC, "etcd1", etcd}, {seedKVM, "kub-node1", vm}} {
		p := "nodes/" + c.node + "/proxmox.conf"
		f := files(t, c.example)[p]
		if f.Kind != KindConf || f.Node != c.node || f.Mode != 0o644 {
			t.Errorf("%s: kind %q node %q mode %v", p, f.Kind, f.Node, f.Mode)
		}
		if got := conf(t, string(f.Data)); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", p, got, c.want)
		}
	}
}

// stubs writes pct, qm and pvesm stand-ins that log their create calls to
// dir/log, report the VMIDs listed in dir/exists as existing, create the
// container configuration a real pct create would, and map snippets volumes
// to dir/snippets.
func stubs(t *testing.T, dir string) string {
	t.Helper()
	bin := filepath.Join(dir, "bin")
	guest := `#!/bin/sh
case "$1" in
config) grep -qx "$2" "$STUB/exists" 2>/dev/null; exit $? ;;
esac
echo "$(basename "$0") $*" >>"$STUB/log"
`
	for name, body := range map[string]string{
		"pct":   guest + `[ "$1" = create ] && : >"$CT_CONF_DIR/$2.conf"` + "\nexit 0\n",
		"qm":    guest,
		"pvesm": "#!/bin/sh\n[ \"$1\" = path ] && case \"$2\" in local:snippets/*) echo \"$STUB/snippets/${2#local:snippets/}\";; *) exit 1;; esac\n",
	} {
		p := commontest.WriteFile(t, bin, name, []byte(body))
		if err := os.Chmod(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return bin
}

// runScript lays out example's cluster directory (the script and the KVM
// nodes' boot files), runs create-nodes.sh against the stubs with env, and
// returns the stub directory and the script's output.
func runScript(t *testing.T, example string, exists []string, env ...string) (string, string) {
	t.Helper()
	bash := commontest.Tool(t, "bash", "bash")
	x := commontest.Context(t, example)
	root, stub := t.TempDir(), t.TempDir()
	script := commontest.WriteFile(t, root, "proxmox/create-nodes.sh", []byte(file(t, files(t, example), "proxmox/create-nodes.sh")))
	for _, n := range x.C.Spec.Nodes {
		for _, f := range []string{"user-data", "network-config", "meta-data"} {
			commontest.WriteFile(t, root, "nodes/"+n.Name+"/cloud-init/"+f, []byte("fake "+n.Name+" "+f+"\n"))
		}
		commontest.WriteFile(t, root, "nodes/"+n.Name+"/ignition.json", []byte("{}\n"))
	}
	commontest.WriteFile(t, stub, "exists", []byte(strings.Join(exists, "\n")+"\n"))
	ctConf := filepath.Join(stub, "lxc")
	if err := os.MkdirAll(ctConf, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := stubs(t, stub)
	env = append(env, "PATH="+bin+":"+os.Getenv("PATH"), "STUB="+stub, "CT_CONF_DIR="+ctConf)
	out, ok := commontest.Run(t, "env", append(env, bash, script)...)
	if !ok {
		t.Fatalf("create-nodes.sh failed:\n%s", out)
	}
	return stub, out
}

func logLines(t *testing.T, stub string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(stub, "log"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(data)), "\n")
}

// TestCreateNodesLXC runs seed-lxc's script: worker1's pct create call and
// raw keys, written out by hand from the spec, an unprivileged etcd1, and gw
// (103) left alone because it exists.
func TestCreateNodesLXC(t *testing.T) {
	stub, out := runScript(t, seedLXC, []string{"103"})
	log := logLines(t, stub)
	want := "pct create 231 local:vztmpl/debian-12-hardway-worker1_1.34.2_amd64.tar.zst --arch amd64 --hostname worker1" +
		" --cores 8 --memory 16384 --swap 16384 --net0 name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "worker1") + ",ip=10.240.0.31/24,gw=10.240.0.2,type=veth" +
		" --nameserver 10.240.0.2 --searchdomain example.com --rootfs local-lvm:20 --unprivileged 0 --features nesting=1 --onboot 1"
	if !slices.Contains(log, want) {
		t.Errorf("no call\n%s\nin\n%s", want, strings.Join(log, "\n"))
	}
	raw, err := os.ReadFile(filepath.Join(stub, "lxc", "231.conf"))
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := "lxc.apparmor.profile: unconfined\nlxc.cgroup2.devices.allow: a\nlxc.cap.drop:\n" +
		"lxc.mount.auto: proc:rw sys:rw\nlxc.mount.entry: /dev/kmsg dev/kmsg none defaults,bind,create=file\n"
	if string(raw) != wantRaw {
		t.Errorf("231.conf:\n%s\nwant\n%s", raw, wantRaw)
	}
	if !slices.ContainsFunc(log, func(l string) bool {
		return strings.HasPrefix(l, "pct create 211 local:vztmpl/debian-12-hardway-etcd1_1.34.2_amd64.tar.zst ") && strings.Contains(l, " --unprivileged 1 ")
	}) {
		t.Errorf("etcd1 is not created unprivileged:\n%s", strings.Join(log, "\n"))
	}
	if raw, _ := os.ReadFile(filepath.Join(stub, "lxc", "211.conf")); len(raw) != 0 {
		t.Errorf("etcd1 got raw LXC keys: %s", raw)
	}
	if slices.ContainsFunc(log, func(l string) bool { return strings.HasPrefix(l, "pct create 103 ") }) || !strings.Contains(out, "103 (gw) exists: left alone") {
		t.Errorf("existing 103 was not left alone:\n%s", out)
	}
	if n := len(log); n != 10 {
		t.Errorf("%d calls, want 10 (11 nodes, one existing)", n)
	}
}

// TestCreateNodesKVM runs seed-kvm's script with the base, version and image
// directory given by the operator: kub-node1's qm calls by hand, its snippets copied 0600.
func TestCreateNodesKVM(t *testing.T) {
	stub, _ := runScript(t, seedKVM, nil, "OS=ubuntu", "OS_VERSION=24.04", "VERSION=1.34.3", "IMAGE_DIR=/images")
	log := logLines(t, stub)
	for _, want := range []string{
		"qm create 201 --name kub-node1 --ostype l26 --machine q35 --bios ovmf --efidisk0 local-lvm:1,efitype=4m,pre-enrolled-keys=0" +
			" --cores 4 --memory 16384 --net0 virtio=" + mac(t, seedKVM, "kub-node1") + ",bridge=vmbr3 --scsihw virtio-scsi-single --serial0 socket --agent enabled=1" +
			" --ide2 local-lvm:cloudinit --cicustom user=local:snippets/kub-node1-user-data.yaml,network=local:snippets/kub-node1-network-config.yaml,meta=local:snippets/kub-node1-meta-data.yaml" +
			" --boot order=scsi0 --onboot 1 --scsi0 local-lvm:0,import-from=/images/ubuntu-24.04-hardway-kub-node1_1.34.3_amd64.qcow2",
		"qm resize 201 scsi0 50G",
	} {
		if !slices.Contains(log, want) {
			t.Errorf("no call\n%s\nin\n%s", want, strings.Join(log, "\n"))
		}
	}
	for _, f := range []string{"user-data", "network-config", "meta-data"} {
		p := filepath.Join(stub, "snippets", "kub-node1-"+f+".yaml")
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if string(data) != "fake kub-node1 "+f+"\n" {
			t.Errorf("%s holds %q", p, data)
		}
		if st, _ := os.Stat(p); st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", p, st.Mode().Perm())
		}
	}
}

// TestCreateNodesLint: bash -n and shellcheck pass on every example's script,
// which is executable and starts with a shebang and set -euo pipefail.
func TestCreateNodesLint(t *testing.T) {
	bash := commontest.Tool(t, "bash", "bash")
	shellcheck := commontest.Tool(t, "shellcheck", "shellcheck")
	for _, ex := range []string{seedLXC, seedKVM, mixed} {
		f := files(t, ex)["proxmox/create-nodes.sh"]
		if f.Mode != 0o755 || f.Kind != Kind {
			t.Errorf("%s: mode %v kind %q", ex, f.Mode, f.Kind)
		}
		if !strings.HasPrefix(string(f.Data), "#!/bin/bash\n") || !slices.Contains(lines(string(f.Data)), "set -euo pipefail") {
			t.Errorf("%s: no shebang or set -euo pipefail", ex)
		}
		p := commontest.WriteFile(t, t.TempDir(), "create-nodes.sh", f.Data)
		if out, ok := commontest.Run(t, bash, "-n", p); !ok {
			t.Errorf("%s: bash -n: %s", ex, out)
		}
		if out, ok := commontest.Run(t, shellcheck, p); !ok {
			t.Errorf("%s: shellcheck:\n%s", ex, out)
		}
	}
	bad := commontest.WriteFile(t, t.TempDir(), "bad.sh", []byte("#!/bin/bash\nset -eu\nfor n in $(ls /); do echo $n; done\n"))
	if _, ok := commontest.Run(t, shellcheck, bad); ok {
		t.Error("shellcheck passed a script with unquoted expansions: the check cannot fail")
	}
}

// TestInterfaces parses the bridge stanza with ifupdown's ifquery: the host
// holds the gateway address on vmbr3 and routes each worker's pods via it
// (seed-lxc: 10.200.0.0/24 via worker1 .31, 10.200.1.0/24 via worker2 .32).
func TestInterfaces(t *testing.T) {
	ifquery := commontest.Tool(t, "ifquery", "ifupdown")
	p := commontest.WriteFile(t, t.TempDir(), "hardway-vmbr3", []byte(file(t, files(t, seedLXC), "proxmox/interfaces.d/hardway-vmbr3")))
	out, ok := commontest.Run(t, ifquery, "-i", p, "vmbr3")
	if !ok {
		t.Fatalf("ifquery: %s", out)
	}
	got := strings.Split(strings.TrimSpace(out), "\n")
	for _, want := range []string{
		"address: 10.240.0.2", "netmask: 255.255.255.0", "bridge-ports: none",
		"up: ip route replace 10.200.0.0/24 via 10.240.0.31 dev vmbr3",
		"down: ip route del 10.200.0.0/24 via 10.240.0.31 dev vmbr3",
		"up: ip route replace 10.200.1.0/24 via 10.240.0.32 dev vmbr3",
		"down: ip route del 10.200.1.0/24 via 10.240.0.32 dev vmbr3",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("ifquery lacks %q:\n%s", want, out)
		}
	}
}

// TestHostChrony: with cloud-init VMs (mixed), the host serves the node
// network, 192.168.50.0/24, and chronyd parses the drop-in; an LXC-only
// cluster gets no such file.
func TestHostChrony(t *testing.T) {
	if _, ok := files(t, seedLXC)["proxmox/chrony/hardway.conf"]; ok {
		t.Error("seed-lxc (no VM) has a chrony drop-in")
	}
	data := file(t, files(t, mixed), "proxmox/chrony/hardway.conf")
	if !slices.Equal(lines(data), []string{"allow 192.168.50.0/24"}) {
		t.Errorf("chrony drop-in: %q", lines(data))
	}
	chronyd := commontest.Tool(t, "chronyd", "chrony")
	dir := t.TempDir()
	commontest.WriteFile(t, dir, "conf.d/hardway.conf", []byte(data))
	main := commontest.WriteFile(t, dir, "chrony.conf", []byte("confdir "+filepath.Join(dir, "conf.d")+"\n"))
	if out, ok := commontest.Run(t, chronyd, "-p", "-f", main); !ok || !strings.Contains(out, "allow 192.168.50.0/24") {
		t.Errorf("chronyd -p: %s", out)
	}
}
