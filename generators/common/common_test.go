package common

import (
	"bufio"
	"io/fs"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

var examples = []string{"../../examples/seed-lxc.yaml", "../../examples/seed-kvm.yaml", "../../examples/mixed.yaml"}

// generate returns node name's tree with only the common role's files.
func generate(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	tr := tree.New(name)
	if err := Generate(x, commontest.Node(t, x, name), tr); err != nil {
		t.Fatal(err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// TestHostsListsPeersOnce reads /etc/hosts of every node of the examples
// and expects, written here by hand, the nodes each one talks to exactly
// once, on the line of its own address, as "IP <name>.<domain> <name>",
// and no other node: etcd members list their fellow members, controllers
// the etcd members, lbs the controllers and each other, workers only
// themselves (and, without a VIP, the first controller), the gateway every
// node.
func TestHostsListsPeersOnce(t *testing.T) {
	lxc := []string{"gw", "lb", "lb1", "lb2", "etcd1", "etcd2", "controller", "controller1", "controller2", "worker1", "worker2"}
	lbs := []string{"lb", "lb1", "lb2", "controller", "controller1", "controller2"}
	mixedLBs := []string{"lb1", "lb2", "cp1", "cp2", "cp3"}
	cases := map[string]map[string][]string{
		"../../examples/seed-lxc.yaml": {
			"gw": lxc, "lb": lbs, "lb1": lbs, "lb2": lbs,
			"etcd1": {"etcd1", "etcd2"}, "etcd2": {"etcd1", "etcd2"},
			"controller": {"controller", "etcd1", "etcd2"}, "controller1": {"controller1", "etcd1", "etcd2"}, "controller2": {"controller2", "etcd1", "etcd2"},
			"worker1": {"worker1"}, "worker2": {"worker2"},
		},
		// No VIP: the API endpoint is kub-master, which the workers list.
		"../../examples/seed-kvm.yaml": {
			"kub-master": {"kub-master"}, "kub-node1": {"kub-master", "kub-node1"}, "kub-node2": {"kub-master", "kub-node2"},
		},
		"../../examples/mixed.yaml": {
			"lb1": mixedLBs, "lb2": mixedLBs,
			"cp1": {"cp1", "cp2", "cp3"}, "cp2": {"cp1", "cp2", "cp3"}, "cp3": {"cp1", "cp2", "cp3"},
			"w1": {"w1"}, "w2": {"w2"}, "w3": {"w3"},
		},
	}
	for _, ex := range examples {
		x := commontest.Context(t, ex)
		if len(cases[ex]) != len(x.C.Spec.Nodes) {
			t.Fatalf("%s: %d nodes, %d cases", ex, len(x.C.Spec.Nodes), len(cases[ex]))
		}
		for _, n := range x.C.Spec.Nodes {
			hosts := string(commontest.File(t, generate(t, x, n.Name), HostsFile))
			lines := hostsLines(hosts)
			for _, m := range x.C.Spec.Nodes {
				ip := strings.Split(m.Address, "/")[0]
				fqdn := m.Name + "." + x.C.Spec.Domain
				want := []string{ip, fqdn, m.Name}
				count := 0
				for _, l := range lines {
					if slices.Contains(l[1:], m.Name) || slices.Contains(l[1:], fqdn) {
						count++
						if !slices.Equal(l, want) {
							t.Errorf("%s, node %s: line %q, want %q", ex, n.Name, l, want)
						}
					}
				}
				if listed := slices.Contains(cases[ex][n.Name], m.Name); listed && count != 1 || !listed && count != 0 {
					t.Errorf("%s, node %s: %s appears on %d lines, want it listed: %v", ex, n.Name, m.Name, count, listed)
				}
			}
			if !slices.ContainsFunc(lines, func(l []string) bool { return l[0] == "127.0.0.1" && slices.Contains(l, "localhost") }) {
				t.Errorf("%s, node %s: no 127.0.0.1 localhost line", ex, n.Name)
			}
		}
	}
}

// hostsLines returns the fields of every non-comment line.
func hostsLines(s string) [][]string {
	var out [][]string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 0 && !strings.HasPrefix(f[0], "#") {
			out = append(out, f)
		}
	}
	return out
}

// TestHostsAPINames checks the API endpoint line of seed-lxc by hand: its VIP
// 10.240.0.10 under its only extra SAN, kubernetes.example.com.
func TestHostsAPINames(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-lxc.yaml")
	lines := hostsLines(string(commontest.File(t, generate(t, x, "gw"), HostsFile)))
	if !slices.ContainsFunc(lines, func(l []string) bool { return slices.Equal(l, []string{"10.240.0.10", "kubernetes.example.com"}) }) {
		t.Errorf("no API line 10.240.0.10 kubernetes.example.com in %q", lines)
	}
	// IP SANs, wildcards and node names are not hosts entries.
	x = commontest.Context(t, "../../examples/seed-lxc.yaml", func(c *spec.Cluster) {
		c.Spec.APIServer.ExtraSANs = []string{"203.0.113.7", "*.apps.example.com", "controller1.example.com"}
	})
	for _, l := range hostsLines(string(commontest.File(t, generate(t, x, "gw"), HostsFile))) {
		if l[0] == "10.240.0.10" {
			t.Errorf("unexpected API line %q", l)
		}
	}
}

// TestHostsResolve resolves names through glibc (getent) with a hosts file
// bound over /etc/hosts in a private mount namespace: worker1's its own
// name and the API endpoint's, the gateway's the other nodes'.
func TestHostsResolve(t *testing.T) {
	getent := commontest.Tool(t, "getent", "libc-bin")
	unshare := commontest.Tool(t, "unshare", "util-linux")
	x := commontest.Context(t, "../../examples/seed-lxc.yaml")
	for node, names := range map[string][]string{
		"worker1": {"worker1", "kubernetes.example.com"},
		"gw":      {"worker2.example.com", "etcd1", "kubernetes.example.com"},
	} {
		p := commontest.WriteFile(t, t.TempDir(), "hosts", commontest.File(t, generate(t, x, node), HostsFile))
		out, ok := commontest.Run(t, unshare, append([]string{"-m", "sh", "-c",
			`mount --bind "$1" /etc/hosts && shift && "$@"`, "sh", p, getent, "hosts"}, names...)...)
		if !ok {
			t.Fatalf("%s: getent: %s", node, out)
		}
		want := map[string]string{
			"worker1": "10.240.0.31 +worker1.example.com", "worker2.example.com": "10.240.0.32 +worker2.example.com",
			"etcd1": "10.240.0.11 +etcd1.example.com", "kubernetes.example.com": "10.240.0.10 +kubernetes.example.com",
		}
		for _, name := range names {
			if !matchLine(out, want[name]) {
				t.Errorf("%s: getent output lacks %q:\n%s", node, want[name], out)
			}
		}
	}
}

// matchLine reports whether a line of out has the words of pattern (split on " +").
func matchLine(out, pattern string) bool {
	want := strings.Split(pattern, " +")
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
			return true
		}
	}
	return false
}

// ini is a parsed systemd-style file: sections in order, each with its keys in order.
type ini []struct {
	name string
	keys [][2]string
}

func parseINI(t *testing.T, s string) ini {
	t.Helper()
	var out ini
	for i, l := range strings.Split(s, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			out = append(out, struct {
				name string
				keys [][2]string
			}{name: l[1 : len(l)-1]})
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || len(out) == 0 {
				t.Fatalf("line %d: %q is neither a section nor key=value", i+1, l)
			}
			out[len(out)-1].keys = append(out[len(out)-1].keys, [2]string{k, v})
		}
	}
	return out
}

// sections returns the key/value pairs of every section called name.
func (f ini) sections(name string) [][][2]string {
	var out [][][2]string
	for _, s := range f {
		if s.name == name {
			out = append(out, s.keys)
		}
	}
	return out
}

// TestNetworkFile checks the networkd files against values written by hand
// from seed-lxc: address, gateway, resolvers, and no pod route (the
// gateway routes the pod CIDRs), on a worker as on a controller.
func TestNetworkFile(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-lxc.yaml")
	cases := []struct {
		node    string
		address string
	}{
		{"worker1", "10.240.0.31/24"},
		{"worker2", "10.240.0.32/24"},
		{"controller1", "10.240.0.21/24"},
	}
	for _, c := range cases {
		tr := generate(t, x, c.node)
		f := parseINI(t, string(commontest.File(t, tr, "/etc/systemd/network/eth0.network")))
		if got := f.sections("Match"); len(got) != 1 || !slices.Equal(got[0], [][2]string{{"Name", "eth0"}}) {
			t.Errorf("%s: [Match] = %q", c.node, got)
		}
		want := [][2]string{{"Address", c.address}, {"Gateway", "10.240.0.2"}, {"DNS", "10.240.0.2"}, {"Domains", "example.com"}}
		if got := f.sections("Network"); len(got) != 1 || !slices.Equal(got[0], want) {
			t.Errorf("%s: [Network] = %q, want %q", c.node, got, want)
		}
		if got := f.sections("Route"); len(got) != 0 {
			t.Errorf("%s: [Route] = %q, want none", c.node, got)
		}
		if !hasUnit(tr, "systemd-networkd.service") || !hasUnit(tr, "systemd-networkd-wait-online.service") {
			t.Errorf("%s: networkd is not enabled: %v", c.node, tr.Units())
		}
	}
}

// TestNetworkOwnership: cloud-init KVM nodes get their network from
// network-config, not from the tree; Ignition KVM nodes do get a file.
func TestNetworkOwnership(t *testing.T) {
	x := commontest.Context(t, "../../examples/mixed.yaml")
	if tr := generate(t, x, "cp1"); hasUnit(tr, "systemd-networkd.service") {
		t.Error("cp1 (kvm, cloud-init): networkd enabled by the tree")
	}
	tr := generate(t, x, "w3")
	f := parseINI(t, string(commontest.File(t, tr, "/etc/systemd/network/10-hardway.network")))
	if got := f.sections("Match"); len(got) != 1 || !slices.Equal(got[0], [][2]string{{"MACAddress", x.MAC(commontest.Node(t, x, "w3"))}}) {
		t.Errorf("w3: [Match] = %q, want its pinned MAC", got)
	}
	// w3 is the third worker: the gateway, not w3, routes w1's and w2's pods.
	if got := f.sections("Route"); len(got) != 0 {
		t.Errorf("w3: [Route] = %q, want none", got)
	}
}

func hasUnit(tr *tree.Tree, name string) bool {
	return slices.ContainsFunc(tr.Units(), func(u tree.Unit) bool { return u.Name == name })
}

// TestPVEIgnoreMarkers: every LXC node carries the five markers pve-container
// looks for (<dir>/.pve-ignore.<name>), a KVM node none.
func TestPVEIgnoreMarkers(t *testing.T) {
	x := commontest.Context(t, "../../examples/mixed.yaml")
	markers := []string{"/etc/.pve-ignore.hosts", "/etc/.pve-ignore.hostname",
		"/etc/systemd/network/.pve-ignore.eth0.network", "/etc/network/.pve-ignore.interfaces",
		"/etc/systemd/system-preset/.pve-ignore.00-pve.preset"}
	for _, n := range x.C.Spec.Nodes {
		tr := generate(t, x, n.Name)
		var got []string
		for _, e := range tr.Entries() {
			if strings.HasPrefix(filepath.Base(e.Path), ".pve-ignore.") {
				got = append(got, e.Path)
			}
		}
		want := markers
		if n.Target == spec.TargetKVM {
			want = nil
		}
		slices.Sort(got)
		want = slices.Sorted(slices.Values(want))
		if !slices.Equal(got, want) {
			t.Errorf("%s (%s): markers %q, want %q", n.Name, n.Target, got, want)
		}
	}
}

// TestAuthorizedKeys installs a real key and reads the file back with
// ssh-keygen, which must list exactly that key's fingerprint.
func TestAuthorizedKeys(t *testing.T) {
	keygen := commontest.Tool(t, "ssh-keygen", "openssh-client")
	dir := t.TempDir()
	if out, err := exec.Command(keygen, "-q", "-t", "ed25519", "-N", "", "-C", "ops@example.com", "-f", filepath.Join(dir, "id")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v: %s", err, out)
	}
	pub, _ := commontest.Run(t, "cat", filepath.Join(dir, "id.pub"))
	fp, ok := commontest.Run(t, keygen, "-l", "-f", filepath.Join(dir, "id.pub"))
	if !ok {
		t.Fatal(fp)
	}
	x := commontest.Context(t, "../../examples/seed-lxc.yaml", func(c *spec.Cluster) {
		c.Spec.SSH.AuthorizedKeys = []string{strings.TrimSpace(pub)}
	})
	tr := generate(t, x, "etcd1")
	for p, mode := range map[string]fs.FileMode{"/root": fs.ModeDir | 0o700, "/root/.ssh": fs.ModeDir | 0o700, AuthorizedKeys: 0o600} {
		e, ok := tr.Get(p)
		if !ok || e.Mode != mode {
			t.Errorf("%s: %v, want mode %v", p, e, mode)
		}
	}
	p := commontest.WriteFile(t, dir, "authorized_keys", commontest.File(t, tr, AuthorizedKeys))
	got, ok := commontest.Run(t, keygen, "-l", "-f", p)
	if !ok || strings.TrimSpace(got) != strings.TrimSpace(fp) {
		t.Errorf("ssh-keygen -l on authorized_keys: %q, want %q", got, fp)
	}
}

// TestTimeSync: a cloud-init KVM node syncs with chrony from the gateway
// (10.240.0.2 in seed-kvm); chronyd parses the file; LXC and Ignition nodes
// get nothing.
func TestTimeSync(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-kvm.yaml")
	tr := generate(t, x, "kub-master")
	src := commontest.File(t, tr, ChronySources)
	if !slices.ContainsFunc(hostsLines(string(src)), func(l []string) bool { return slices.Equal(l, []string{"server", "10.240.0.2", "iburst"}) }) {
		t.Errorf("%s: no 'server 10.240.0.2 iburst':\n%s", ChronySources, src)
	}
	if !hasUnit(tr, "chrony.service") {
		t.Error("chrony.service is not enabled")
	}
	for ex, node := range map[string]string{"../../examples/seed-lxc.yaml": "worker1", "../../examples/mixed.yaml": "w3"} {
		if _, ok := generate(t, commontest.Context(t, ex), node).Get(ChronySources); ok {
			t.Errorf("%s: has %s", node, ChronySources)
		}
	}

	chronyd := commontest.Tool(t, "chronyd", "chrony")
	dir := t.TempDir()
	commontest.WriteFile(t, dir, "conf.d/hardway.conf", src)
	main := commontest.WriteFile(t, dir, "chrony.conf", []byte("confdir "+filepath.Join(dir, "conf.d")+"\n"))
	out, ok := commontest.Run(t, chronyd, "-p", "-f", main)
	if !ok || !strings.Contains(out, "server 10.240.0.2 iburst") {
		t.Errorf("chronyd -p: %s", out)
	}
	commontest.WriteFile(t, dir, "conf.d/hardway.conf", []byte("servr 10.240.0.2 iburst\n"))
	if out, ok := commontest.Run(t, chronyd, "-p", "-f", main); ok {
		t.Errorf("chronyd -p accepted a misspelt directive: %s", out)
	}
}

// TestFedoraCoreOSNetwork: a Fedora CoreOS node (Ignition variant fcos) gets
// a NetworkManager keyfile, mode 0600, matching its pinned MAC, with its
// address, gateway, DNS and search domain, no pod route (the gateway
// routes the pod CIDRs), and no systemd-networkd; the same node on Flatcar
// gets systemd-networkd's file. Validation refuses a worker on Fedora
// CoreOS (spec.Node.Sysext: its SELinux refuses the unlabelled sysext); the
// keyfile is the same for the roles it accepts there.
func TestFedoraCoreOSNetwork(t *testing.T) {
	fcos := commontest.Hostile(t, "../../examples/mixed.yaml", func(c *spec.Cluster) {
		for i := range c.Spec.Nodes {
			if c.Spec.Nodes[i].Name == "w3" {
				c.Spec.Nodes[i].Ignition = spec.IgnitionFCOS
			}
		}
	})
	n := commontest.Node(t, fcos, "w3")
	tr := generate(t, fcos, "w3")
	const keyfile = "/etc/NetworkManager/system-connections/hardway.nmconnection"
	e, ok := tr.Get(keyfile)
	if !ok {
		t.Fatalf("no %s", keyfile)
	}
	if e.Mode.Perm() != 0o600 || e.UID != 0 {
		t.Errorf("%s: mode %o uid %d, want 0600 root", keyfile, e.Mode.Perm(), e.UID)
	}
	groups := keyfileGroups(t, string(e.Data))
	want := map[string]string{
		"connection.type":      "ethernet",
		"ethernet.mac-address": fcos.MAC(n),
		"ipv4.method":          "manual",
		"ipv4.address1":        "192.168.50.23/24," + fcos.C.Spec.Network.Gateway,
		"ipv4.dns":             strings.Join(fcos.C.Spec.Network.DNS, ";") + ";",
		"ipv4.dns-search":      fcos.C.Spec.Domain + ";",
	}
	for k, v := range want {
		if groups[k] != v {
			t.Errorf("%s = %q, want %q", k, groups[k], v)
		}
	}
	// No pod route: the gateway routes the other workers' pods.
	if _, ok := groups["ipv4.route1"]; ok {
		t.Errorf("a route in the keyfile: %v", groups)
	}
	for _, u := range tr.Units() {
		if strings.HasPrefix(u.Name, "systemd-networkd") {
			t.Errorf("a Fedora CoreOS node enables %s", u.Name)
		}
	}
	if _, ok := tr.Get("/etc/systemd/network/10-hardway.network"); ok {
		t.Error("a Fedora CoreOS node has a networkd file")
	}

	flatcar := commontest.Context(t, "../../examples/mixed.yaml")
	tr = generate(t, flatcar, "w3")
	if _, ok := tr.Get(keyfile); ok {
		t.Error("a Flatcar node has a NetworkManager keyfile")
	}
	if _, ok := tr.Get("/etc/systemd/network/10-hardway.network"); !ok {
		t.Error("a Flatcar node has no networkd file")
	}
}

// keyfileGroups parses a GLib key file as NetworkManager does, strictly:
// "[group]" lines and "key=value" lines in a group, comments and blank
// lines; it returns "group.key" → value and fails on anything else or on a
// key given twice.
func keyfileGroups(t *testing.T, data string) map[string]string {
	t.Helper()
	out := map[string]string{}
	group := ""
	for i, l := range strings.Split(data, "\n") {
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "[") && strings.HasSuffix(l, "]"):
			group = strings.Trim(l, "[]")
		default:
			k, v, ok := strings.Cut(l, "=")
			if !ok || group == "" || k != strings.TrimSpace(k) || k == "" {
				t.Fatalf("line %d: %q is not a key file line", i+1, l)
			}
			if _, dup := out[group+"."+k]; dup {
				t.Fatalf("line %d: %s.%s given twice", i+1, group, k)
			}
			out[group+"."+k] = v
		}
	}
	return out
}

// TestContainerMasks: every LXC node masks the kernel's debug file system
// (a link to /dev/null in the unit directory), a KVM node does not.
func TestContainerMasks(t *testing.T) {
	x := commontest.Context(t, "../../examples/mixed.yaml")
	for _, n := range x.C.Spec.Nodes {
		e, ok := generate(t, x, n.Name).Get("/etc/systemd/system/sys-kernel-debug.mount")
		masked := ok && e.Target == "/dev/null"
		if want := n.Target == spec.TargetLXC; masked != want {
			t.Errorf("%s (%s): sys-kernel-debug.mount masked %v, want %v", n.Name, n.Target, masked, want)
		}
	}
}

// TestNetworkFileTwoNICs: the seed's gateway with a public NIC gets one
// networkd file per interface, written by hand from the spec: eth1 has the
// default route, eth0 the resolvers and only the pods' route through the
// Proxmox host; both files are guarded from Proxmox in a container, and a
// VM's node image matches each NIC by its own MAC.
func TestNetworkFileTwoNICs(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-lxc.yaml", commontest.PublicNIC("gw"))
	tr := generate(t, x, "gw")
	eth0 := parseINI(t, string(commontest.File(t, tr, "/etc/systemd/network/eth0.network")))
	eth1 := parseINI(t, string(commontest.File(t, tr, "/etc/systemd/network/eth1.network")))
	for _, c := range []struct {
		name, section string
		f             ini
		want          [][][2]string
	}{
		{"eth0", "Match", eth0, [][][2]string{{{"Name", "eth0"}}}},
		{"eth0", "Network", eth0, [][][2]string{{{"Address", "10.240.0.1/24"}, {"DNS", "10.240.0.2"}, {"Domains", "example.com"}}}},
		{"eth0", "Route", eth0, [][][2]string{{{"Destination", "10.200.0.0/16"}, {"Gateway", "10.240.0.2"}}}},
		{"eth1", "Match", eth1, [][][2]string{{{"Name", "eth1"}}}},
		{"eth1", "Network", eth1, [][][2]string{{{"Address", "203.0.113.5/24"}, {"Gateway", "203.0.113.1"}}}},
		{"eth1", "Route", eth1, nil},
	} {
		if got := c.f.sections(c.section); !slices.EqualFunc(got, c.want, slices.Equal) {
			t.Errorf("%s [%s] = %q, want %q", c.name, c.section, got, c.want)
		}
	}
	if _, ok := tr.Get("/etc/systemd/network/.pve-ignore.eth1.network"); !ok {
		t.Error("no .pve-ignore marker for eth1.network: Proxmox would rewrite it")
	}

	x = commontest.Context(t, "../../examples/seed-kvm.yaml", commontest.PublicNIC("kub-master"))
	n := commontest.Node(t, x, "kub-master")
	img := tree.New(n.Name)
	Network(x, n, img)
	for _, c := range []struct{ file, match string }{
		{"/etc/systemd/network/10-hardway.network", x.MAC(n)},
		{"/etc/systemd/network/10-hardway-eth1.network", x.NICMAC(n, 1)},
	} {
		f := parseINI(t, string(commontest.File(t, img, c.file)))
		if got := f.sections("Match"); len(got) != 1 || !slices.Equal(got[0], [][2]string{{"MACAddress", c.match}}) {
			t.Errorf("%s: [Match] = %q, want MACAddress=%s", c.file, got, c.match)
		}
	}
}
