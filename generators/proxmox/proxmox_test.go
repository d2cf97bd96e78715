package proxmox

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/spec"
)

const (
	seedLXC = "../../examples/seed-lxc.yaml"
	seedKVM = "../../examples/seed-kvm.yaml"
	mixed   = "../../examples/mixed.yaml"
)

// files returns the cluster-level files of an example by path.
func files(t *testing.T, example string) map[string]nodegen.File {
	t.Helper()
	fs, err := Files(commontest.Context(t, example))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]nodegen.File{}
	for _, f := range fs {
		if _, dup := out[f.Path]; dup {
			t.Fatalf("%s is returned twice", f.Path)
		}
		out[f.Path] = f
	}
	return out
}

func file(t *testing.T, fs map[string]nodegen.File, p string) string {
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

// mac is the node's pinned MAC, as generators/nodegen derives it (not this package).
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

// tagsDesc are the tags and description of node (roles) of cluster.
func tagsDesc(cluster, node, roles string) [2][2]string {
	return [2][2]string{{"tags", "hardway;hardway-" + cluster}, {"description", "Node " + node + " (" + roles + ") of the hardway cluster " + cluster +
		", created by proxmox/create-nodes.sh with the settings of nodes/" + node + "/proxmox.conf: change the spec and regenerate rather than this guest."}}
}

// TestGuestConf reads three nodes' proxmox.conf, every value written by hand
// from the spec: a privileged worker with the raw keys, an unprivileged etcd
// member, and a cloud-init VM.
func TestGuestConf(t *testing.T) {
	worker := [][2]string{
		{"arch", "amd64"}, {"hostname", "worker1"}, {"cores", "8"}, {"memory", "16384"}, {"swap", "16384"},
		{"net0", "name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "worker1") + ",ip=10.240.0.31/24,gw=10.240.0.2,type=veth"},
		{"nameserver", "10.240.0.2"}, {"searchdomain", "example.com"}, {"rootfs", "local-lvm:20"},
		{"unprivileged", "0"}, {"features", "nesting=1"}, {"onboot", "1"}, tagsDesc("kublxc", "worker1", "worker")[0], tagsDesc("kublxc", "worker1", "worker")[1],
		{"lxc.apparmor.profile", "unconfined"}, {"lxc.cgroup2.devices.allow", "a"}, {"lxc.cap.drop", ""},
		{"lxc.mount.auto", "proc:rw sys:mixed"}, {"lxc.mount.entry", "/dev/kmsg dev/kmsg none defaults,bind,create=file"},
	}
	etcd := [][2]string{
		{"arch", "amd64"}, {"hostname", "etcd1"}, {"cores", "1"}, {"memory", "1024"}, {"swap", "2048"},
		{"net0", "name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "etcd1") + ",ip=10.240.0.11/24,gw=10.240.0.2,type=veth"},
		{"nameserver", "10.240.0.2"}, {"searchdomain", "example.com"}, {"rootfs", "local-lvm:10"},
		{"unprivileged", "1"}, {"features", "nesting=1"}, {"onboot", "1"}, tagsDesc("kublxc", "etcd1", "etcd")[0], tagsDesc("kublxc", "etcd1", "etcd")[1],
	}
	vm := [][2]string{
		{"name", "kub-node1"}, {"ostype", "l26"}, {"machine", "q35"}, {"bios", "ovmf"},
		{"efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=0"}, {"cores", "4"}, {"memory", "16384"},
		{"net0", "virtio=" + mac(t, seedKVM, "kub-node1") + ",bridge=vmbr3"}, {"scsihw", "virtio-scsi-single"}, {"serial0", "socket"}, {"agent", "enabled=1"},
		{"ide2", "local-lvm:cloudinit"},
		{"cicustom", "user=local:snippets/kub-node1-user-data.yaml,network=local:snippets/kub-node1-network-config.yaml,meta=local:snippets/kub-node1-meta-data.yaml"},
		{"boot", "order=scsi0"}, {"onboot", "1"}, tagsDesc("kubkvm", "kub-node1", "worker")[0], tagsDesc("kubkvm", "kub-node1", "worker")[1],
	}
	for _, c := range []struct {
		example, node string
		want          [][2]string
	}{{seedLXC, "worker1", worker}, {seedLXC, "etcd1", etcd}, {seedKVM, "kub-node1", vm}} {
		p := "nodes/" + c.node + "/proxmox.conf"
		f := files(t, c.example)[p]
		if f.Kind != nodefiles.ProxmoxConf.Kind || f.Node != c.node || f.Mode != 0o644 {
			t.Errorf("%s: kind %q node %q mode %v", p, f.Kind, f.Node, f.Mode)
		}
		if got := conf(t, string(f.Data)); !slices.Equal(got, c.want) {
			t.Errorf("%s:\n got %q\nwant %q", p, got, c.want)
		}
	}
}

// resource is a guest as pvesh get /cluster/resources --type vm lists it.
type resource struct {
	VMID   int    `json:"vmid"`
	Type   string `json:"type"`
	Node   string `json:"node"`
	Name   string `json:"name"`
	Tags   string `json:"tags,omitempty"`
	Lock   string `json:"lock,omitempty"`
	Status string `json:"status"`
}

// storage is a storage of a Proxmox node as pvesh get /cluster/resources --type storage lists it.
type storage struct {
	Storage string `json:"storage"`
	Node    string `json:"node"`
	Type    string `json:"type"`
	Content string `json:"content"`
	Shared  int    `json:"shared"`
}

// stubNode is the Proxmox node the script runs on; the cluster has a second, pve2.
const stubNode = "pve1"

// operator is how the operator runs create-nodes.sh and what the Proxmox
// cluster holds: the variables it reads from the environment (their
// defaults when empty), its arguments, the guests that exist, and the
// templates and images uploaded (nil: those the script names).
type operator struct {
	OS, OSVersion, Version, ImageDir string
	Args                             []string
	Guests                           []resource
	Templates, Images                []string          // volids in templateStorage, file names in IMAGE_DIR
	SharedSnippets, NoSnippets       bool              // the snippets storage is shared; it lacks content snippets
	Snippets                         map[string]string // the snippets storage's files, by volid
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// env is the script's environment for o.
func (o operator) env() []string {
	var out []string
	for _, v := range [][2]string{{"OS", o.OS}, {"OS_VERSION", o.OSVersion}, {"VERSION", o.Version}, {"IMAGE_DIR", o.ImageDir}} {
		if v[1] != "" {
			out = append(out, v[0]+"="+v[1])
		}
	}
	return out
}

// artifact is the template volid or the image path of g as o runs the
// script, named by pvename (the test names them by bake's functions in
// names_test.go).
func artifact(x *nodegen.Context, g guest, o operator, imageDir string) string {
	n := specNode(x, g.Name)
	os, osv, v := or(o.OS, "debian"), or(o.OSVersion, "12"), or(o.Version, version(x.C))
	if g.LXC {
		return x.C.Spec.Proxmox.TemplateStorage + ":vztmpl/" + pvename.Name(os, osv, ArtifactSubject(n), v, pvename.ExtTemplate)
	}
	if n.Boot == spec.BootIgnition {
		return imageDir + "/" + x.C.Spec.Ignition.Images[n.Ignition]
	}
	return imageDir + "/" + pvename.Name(os, osv, ArtifactSubject(n), v, pvename.ExtQCOW2)
}

// specNode is x's node name.
func specNode(x *nodegen.Context, name string) spec.Node {
	i := slices.IndexFunc(x.C.Spec.Nodes, func(n spec.Node) bool { return n.Name == name })
	return x.C.Spec.Nodes[i]
}

// run is one run of create-nodes.sh against the stubs.
type run struct {
	root, stub, images string // the cluster directory, the stubs' directory, IMAGE_DIR
	out                string // what the script printed (stdout and stderr)
	ok                 bool   // whether it exited 0
}

// execScript lays out x's cluster directory (script and the KVM nodes' boot
// files) and the Proxmox cluster o describes, runs script there against the
// stubs, with CANARY naming a file no command of the script may create, and
// fails the test if the file exists.
func execScript(t *testing.T, x *nodegen.Context, script []byte, o operator) run {
	t.Helper()
	bash := commontest.Tool(t, "bash", "bash")
	r := run{root: t.TempDir(), stub: t.TempDir(), images: t.TempDir()}
	if o.ImageDir != "" {
		r.images = o.ImageDir
	}
	p := commontest.WriteFile(t, r.root, "proxmox/create-nodes.sh", script)
	for _, n := range x.C.Spec.Nodes {
		for _, f := range []string{"user-data", "network-config", "meta-data"} {
			commontest.WriteFile(t, r.root, filepath.Join("nodes", n.Name, "cloud-init", f), []byte("fake "+n.Name+" "+f+"\n"))
		}
		commontest.WriteFile(t, r.root, filepath.Join("nodes", n.Name, "ignition.json"), []byte("{}\n"))
		if n.Sysext() { // bake --format sysext writes its config
			commontest.WriteFile(t, r.root, filepath.Join("bake", nodefiles.IgnitionFileName(x.C, n.Name)), []byte("{}\n"))
		}
	}
	if o.Guests == nil {
		o.Guests = []resource{}
	}
	vms, _ := json.Marshal(o.Guests)
	commontest.WriteFile(t, r.stub, "vm.json", vms)
	px := x.C.Spec.Proxmox
	var stores []storage
	for _, node := range []string{stubNode, "pve2"} {
		stores = append(stores, storage{"local", node, "storage", "vztmpl,iso,backup,import", 0}, storage{"local-lvm", node, "storage", "images,rootdir", 0})
		content := "snippets"
		if o.NoSnippets {
			content = "iso"
		}
		stores = append(stores, storage{px.SnippetsStorage, node, "storage", content, boolInt(o.SharedSnippets)})
	}
	data, _ := json.Marshal(stores)
	commontest.WriteFile(t, r.stub, "storage.json", data)
	templates, images := o.Templates, o.Images
	if templates == nil || images == nil {
		for _, g := range guests(x) {
			a := artifact(x, g, o, r.images)
			switch {
			case g.LXC && o.Templates == nil:
				templates = append(templates, a)
			case !g.LXC && o.Images == nil:
				images = append(images, filepath.Base(a))
			}
		}
	}
	if templates == nil {
		templates = []string{}
	}
	data, _ = json.Marshal(templates)
	commontest.WriteFile(t, r.stub, "content", data)
	for _, i := range images {
		commontest.WriteFile(t, r.images, i, []byte("qcow2"))
	}
	for _, dir := range []string{"lxc", "qemu"} {
		if err := os.MkdirAll(filepath.Join(r.stub, dir), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range o.Guests { // made by create-nodes.sh but for its last steps: an LXC's raw keys, a VM's resize
		switch {
		case g.Node != stubNode:
		case g.Type == "lxc":
			commontest.WriteFile(t, r.stub, filepath.Join("lxc", strconv.Itoa(g.VMID)+".conf"), nil)
		default:
			commontest.WriteFile(t, r.stub, filepath.Join("qemu", strconv.Itoa(g.VMID)+".conf"), []byte("scsi0: x:vm-"+strconv.Itoa(g.VMID)+"-disk-1,size=4G\n"))
		}
	}
	for vol, data := range o.Snippets {
		if err := os.MkdirAll(filepath.Join(r.stub, "volumes"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(stubVolume(r.stub, vol), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	canary := filepath.Join(r.stub, "canary")
	env := append(o.env(), "IMAGE_DIR="+r.images, "NODE="+stubNode, "PATH="+stubs(t, r.stub)+":"+os.Getenv("PATH"), "STUB_DIR="+r.stub,
		"CT_CONF_DIR="+filepath.Join(r.stub, "lxc"), "CANARY="+canary)
	r.out, r.ok = commontest.Run(t, "env", append(append(env, bash, p), o.Args...)...)
	if _, err := os.Stat(canary); err == nil {
		t.Errorf("create-nodes.sh ran a command from the spec: %s exists", canary)
	}
	return r
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// runScript is execScript that fails the test unless the script succeeds.
func runScript(t *testing.T, x *nodegen.Context, script []byte, o operator) run {
	t.Helper()
	r := execScript(t, x, script, o)
	if !r.ok {
		t.Fatalf("create-nodes.sh failed:\n%s", r.out)
	}
	return r
}

// wantCalls is every stub call create-nodes.sh must make for x's guests as
// o runs it, in order, built from the guests' options: whatever a value
// holds, it must reach pct or qm as one argument, unchanged. The guests of
// o.Guests are this cluster's and stopped; those on pve1 are complete but
// for a VM's disk, which is the image's 4 GiB.
func wantCalls(x *nodegen.Context, r run, o operator) [][]string {
	out := [][]string{
		{"pvesh", "get", "/cluster/resources", "--type", "vm", "--output-format", "json"},
		{"pvesh", "get", "/cluster/resources", "--type", "storage", "--output-format", "json"},
	}
	gs := guests(x)
	existing := map[int]resource{}
	for _, e := range o.Guests {
		existing[e.VMID] = e
	}
	if slices.ContainsFunc(gs, func(g guest) bool { _, ok := existing[g.VMID]; return g.LXC && !ok }) {
		out = append(out, []string{"pvesh", "get", "/nodes/" + stubNode + "/storage/" + x.C.Spec.Proxmox.TemplateStorage + "/content", "--content", "vztmpl", "--output-format", "json"})
	}
	node := map[int]string{}
	for _, g := range gs {
		id := strconv.Itoa(g.VMID)
		e, exists := existing[g.VMID]
		node[g.VMID] = stubNode
		if exists && e.Node != stubNode {
			node[g.VMID] = e.Node
			continue
		}
		if !g.LXC {
			for _, s := range g.Snippets {
				vol := x.C.Spec.Proxmox.SnippetsStorage + ":snippets/" + s.Name
				out = append(out, []string{"pvesm", "path", vol})
				if src, _ := os.ReadFile(r.root + "/" + s.Src); o.Snippets[vol] != string(src) {
					out = append(out, []string{"install", "-D", "-m", "0600", r.root + "/" + s.Src, stubVolume(r.stub, vol)})
				}
			}
		}
		if !exists {
			var opts []string
			for _, opt := range g.Options {
				opts = append(opts, "--"+opt.Key, opt.Value)
			}
			if g.LXC {
				out = append(out, append([]string{"pct", "create", id, artifact(x, g, o, r.images)}, opts...))
			} else {
				out = append(out, append(append([]string{"qm", "create", id}, opts...), "--scsi0", g.Storage+":0,import-from="+artifact(x, g, o, r.images)))
			}
		}
		if !g.LXC {
			out = append(out, []string{"qm", "config", id}, []string{"qm", "resize", id, "scsi0", strconv.Itoa(g.DiskGiB) + "G"})
		}
	}
	if slices.Contains(o.Args, "--start") {
		for _, id := range startOrder(x) {
			tool := "qm"
			if slices.ContainsFunc(gs, func(g guest) bool { return g.VMID == id && g.LXC }) {
				tool = "pct"
			}
			if node[id] == stubNode {
				out = append(out, []string{tool, "start", strconv.Itoa(id)})
				continue
			}
			typ := map[string]string{"pct": "lxc", "qm": "qemu"}[tool]
			out = append(out, []string{"pvesh", "create", "/nodes/" + node[id] + "/" + typ + "/" + strconv.Itoa(id) + "/status/start"})
		}
	}
	return out
}

// checkCalls compares the stub calls of r with want, call by call.
func checkCalls(t *testing.T, r run, want [][]string) {
	t.Helper()
	got := calls(t, r.stub)
	for i := range max(len(got), len(want)) {
		switch {
		case i >= len(got):
			t.Errorf("call %d missing: %q", i, want[i])
		case i >= len(want):
			t.Errorf("extra call %d: %q", i, got[i])
		case !slices.Equal(got[i], want[i]):
			t.Errorf("call %d:\n got %q\nwant %q", i, got[i], want[i])
		}
	}
}

// ours is g as Proxmox lists it once create-nodes.sh made it, on node.
func ours(x *nodegen.Context, name, node string) resource {
	n := specNode(x, name)
	typ := "qemu"
	if n.Target == spec.TargetLXC {
		typ = "lxc"
	}
	return resource{VMID: n.VMID, Type: typ, Node: node, Name: n.Name, Tags: "hardway;" + Tag(x.C.Metadata.Name), Status: "stopped"}
}

// TestCreateNodesLXC runs seed-lxc's script: worker1's pct create call and
// raw keys, written out by hand from the spec, an unprivileged etcd1, and gw
// (103), this cluster's, only checked; every call is the one the guests'
// options ask for.
func TestCreateNodesLXC(t *testing.T) {
	x := commontest.Context(t, seedLXC)
	o := operator{Guests: []resource{ours(x, "gw", stubNode)}}
	r := runScript(t, x, []byte(file(t, files(t, seedLXC), "proxmox/create-nodes.sh")), o)
	checkCalls(t, r, wantCalls(x, r, o))
	got := calls(t, r.stub)
	want := []string{"pct", "create", "231", "local:vztmpl/debian-12-hardway-worker1_1.34.2_amd64.tar.zst", "--arch", "amd64", "--hostname", "worker1",
		"--cores", "8", "--memory", "16384", "--swap", "16384", "--net0", "name=eth0,bridge=vmbr3,hwaddr=" + mac(t, seedLXC, "worker1") + ",ip=10.240.0.31/24,gw=10.240.0.2,type=veth",
		"--nameserver", "10.240.0.2", "--searchdomain", "example.com", "--rootfs", "local-lvm:20", "--unprivileged", "0", "--features", "nesting=1", "--onboot", "1",
		"--tags", "hardway;hardway-kublxc", "--description", "Node worker1 (worker) of the hardway cluster kublxc, created by proxmox/create-nodes.sh with the settings of nodes/worker1/proxmox.conf: change the spec and regenerate rather than this guest."}
	if !slices.ContainsFunc(got, func(c []string) bool { return slices.Equal(c, want) }) {
		t.Errorf("no call\n%q\nin\n%q", want, got)
	}
	raw, err := os.ReadFile(filepath.Join(r.stub, "lxc", "231.conf"))
	if err != nil {
		t.Fatal(err)
	}
	wantRaw := "lxc.apparmor.profile: unconfined\nlxc.cgroup2.devices.allow: a\nlxc.cap.drop:\n" +
		"lxc.mount.auto: proc:rw sys:mixed\nlxc.mount.entry: /dev/kmsg dev/kmsg none defaults,bind,create=file\n"
	if string(raw) != wantRaw {
		t.Errorf("231.conf:\n%s\nwant\n%s", raw, wantRaw)
	}
	if !slices.ContainsFunc(got, func(c []string) bool {
		return slices.Equal(c[:4], []string{"pct", "create", "211", "local:vztmpl/debian-12-hardway-etcd1_1.34.2_amd64.tar.zst"}) && slices.Contains(c, "--unprivileged") && c[slices.Index(c, "--unprivileged")+1] == "1"
	}) {
		t.Errorf("etcd1 is not created unprivileged:\n%q", got)
	}
	if raw, _ := os.ReadFile(filepath.Join(r.stub, "lxc", "211.conf")); len(raw) != 0 {
		t.Errorf("etcd1 got raw LXC keys: %s", raw)
	}
	if !strings.Contains(r.out, "103 (gw): exists, checked\n") || !strings.Contains(r.out, "231 (worker1): created\n") {
		t.Errorf("create-nodes.sh printed:\n%s", r.out)
	}
}

// TestCreateNodesKVM runs seed-kvm's script with the base, version and image
// directory given by the operator: kub-node1's qm calls by hand, its snippets copied 0600.
func TestCreateNodesKVM(t *testing.T) {
	x := commontest.Context(t, seedKVM)
	o := operator{OS: "ubuntu", OSVersion: "24.04", Version: "1.34.3", ImageDir: t.TempDir()}
	r := runScript(t, x, []byte(file(t, files(t, seedKVM), "proxmox/create-nodes.sh")), o)
	checkCalls(t, r, wantCalls(x, r, o))
	got := calls(t, r.stub)
	for _, want := range [][]string{
		{"qm", "create", "201", "--name", "kub-node1", "--ostype", "l26", "--machine", "q35", "--bios", "ovmf", "--efidisk0", "local-lvm:1,efitype=4m,pre-enrolled-keys=0",
			"--cores", "4", "--memory", "16384", "--net0", "virtio=" + mac(t, seedKVM, "kub-node1") + ",bridge=vmbr3", "--scsihw", "virtio-scsi-single", "--serial0", "socket", "--agent", "enabled=1",
			"--ide2", "local-lvm:cloudinit", "--cicustom", "user=local:snippets/kub-node1-user-data.yaml,network=local:snippets/kub-node1-network-config.yaml,meta=local:snippets/kub-node1-meta-data.yaml",
			"--boot", "order=scsi0", "--onboot", "1", "--tags", "hardway;hardway-kubkvm",
			"--description", "Node kub-node1 (worker) of the hardway cluster kubkvm, created by proxmox/create-nodes.sh with the settings of nodes/kub-node1/proxmox.conf: change the spec and regenerate rather than this guest.",
			"--scsi0", "local-lvm:0,import-from=" + o.ImageDir + "/ubuntu-24.04-hardway-kub-node1_1.34.3_amd64.qcow2"},
		{"qm", "resize", "201", "scsi0", "50G"},
	} {
		if !slices.ContainsFunc(got, func(c []string) bool { return slices.Equal(c, want) }) {
			t.Errorf("no call\n%q\nin\n%q", want, got)
		}
	}
	for _, f := range []string{"user-data", "network-config", "meta-data"} {
		p := stubVolume(r.stub, "local:snippets/kub-node1-"+f+".yaml")
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
	p := commontest.WriteFile(t, t.TempDir(), "hardway", []byte(file(t, files(t, seedLXC), "proxmox/interfaces.d/hardway")))
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

// TestGuestConfTwoNICs: a container's and a VM's second interface is net1
// on its own bridge with a MAC of its own, written by hand from the spec;
// the container's net0 loses gw= to net1, which has the default route.
func TestGuestConfTwoNICs(t *testing.T) {
	for _, c := range []struct {
		example, node string
		want          func(x *nodegen.Context, n spec.Node) [][2]string
	}{
		{seedLXC, "gw", func(x *nodegen.Context, n spec.Node) [][2]string {
			return [][2]string{
				{"net0", "name=eth0,bridge=vmbr3,hwaddr=" + x.MAC(n) + ",ip=10.240.0.1/24,type=veth"},
				{"net1", "name=eth1,bridge=vmbr0,hwaddr=" + x.NICMAC(n, 1) + ",ip=203.0.113.5/24,gw=203.0.113.1,type=veth"},
			}
		}},
		{seedKVM, "kub-master", func(x *nodegen.Context, n spec.Node) [][2]string {
			return [][2]string{{"net0", "virtio=" + x.MAC(n) + ",bridge=vmbr3"}, {"net1", "virtio=" + x.NICMAC(n, 1) + ",bridge=vmbr0"}}
		}},
	} {
		x := commontest.Context(t, c.example, commontest.PublicNIC(c.node))
		n := commontest.Node(t, x, c.node)
		if m := x.NICMAC(n, 1); m == x.MAC(n) || !strings.HasPrefix(m, "02:") {
			t.Errorf("%s: net1's MAC %s (net0's %s)", c.node, m, x.MAC(n))
		}
		fs, err := Files(x)
		if err != nil {
			t.Fatal(err)
		}
		var got [][2]string
		for _, f := range fs {
			if f.Path == "nodes/"+c.node+"/proxmox.conf" {
				for _, kv := range conf(t, string(f.Data)) {
					if strings.HasPrefix(kv[0], "net") {
						got = append(got, kv)
					}
				}
			}
		}
		if want := c.want(x, n); !slices.Equal(got, want) {
			t.Errorf("%s:\n got %q\nwant %q", c.node, got, want)
		}
	}
}
