// Package proxmox renders the Proxmox host contract: per-node pct/qm config
// fragments, the host's modules, sysctls and pod routes, and create-nodes.sh.
package proxmox

import (
	"fmt"
	"maps"
	"net/netip"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/templates"
)

// Kind is the manifest kind of the files under proxmox/ (a node's
// proxmox.conf is nodefiles.ProxmoxConf).
const Kind = "proxmox"

// CreateNodesPath is create-nodes.sh, relative to the cluster directory:
// the script the operator reads, then runs on the Proxmox host.
const CreateNodesPath = "proxmox/create-nodes.sh"

// HostFiles returns proxmox/...: create-nodes.sh and the host's modules,
// sysctls, routes and chrony. A spec that nodegen.Check refuses gives none:
// these files cannot quote what they hold, and the host runs some as root.
func HostFiles(x *nodegen.Context) ([]nodegen.File, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	return append([]nodegen.File{createNodes(x, guests(x))}, host(x)...), nil
}

// Conf returns node n's nodes/<node>/proxmox.conf, which depends on the
// cluster's Proxmox settings and n alone: a writer of many nodes makes
// each when it writes it rather than hold them all (21 MB with 10,000
// workers). x must have passed nodegen.Check (HostFiles checks).
func Conf(x *nodegen.Context, n spec.Node) nodegen.File {
	g := guestOf(x, n)
	tmpl := "proxmox/qemu.conf"
	if g.LXC {
		tmpl = "proxmox/lxc.conf"
	}
	return nodegen.File{Path: nodefiles.ProxmoxConf.Path(g.Name), Mode: 0o644, Data: x.Render(tmpl, g), Node: g.Name, Kind: nodefiles.ProxmoxConf.Kind}
}

// option is one pct/qm option: `--key value` on the command line, `key: value`
// in the guest's configuration file.
type option struct{ Key, Value string }

// rawKey is a raw LXC key of a container's configuration, with the reason for it.
type rawKey struct{ Key, Value, Why string }

// Line is the key's line in the container's configuration file.
func (r rawKey) Line() string {
	if r.Value == "" {
		return r.Key + ":"
	}
	return r.Key + ": " + r.Value
}

// snippet is a file copied to the snippets storage for cicustom.
type snippet struct {
	Src  string // relative to the cluster directory
	Name string // file name in the snippets storage
}

// guest is one node as Proxmox sees it.
type guest struct {
	Name, Roles, Cluster string
	Version              string // the templates' and images' package version
	VMID                 int
	LXC                  bool
	Type                 string // lxc or qemu, as /cluster/resources calls it
	Artifact             string // the template's or image's name, as a shell word (see artifactWord)
	Privilege            string // LXC: why privileged or not
	TemplateStorage      string // LXC: where its template is
	Storage              string // KVM: where its disk image is imported to
	DiskGiB              int
	Options              []option
	Raw                  []rawKey
	Snippets             []snippet
}

// TagAll is the Proxmox tag of every guest create-nodes.sh creates, in any
// cluster; it takes a guest for one of its own only when it also carries
// Tag(cluster).
const TagAll = "hardway"

// Tag is the Proxmox tag of the guests of cluster.
func Tag(cluster string) string { return TagAll + "-" + cluster }

// guests is every node as Proxmox sees it, in spec order.
func guests(x *nodegen.Context) []guest {
	out := make([]guest, 0, len(x.C.Spec.Nodes))
	for _, n := range x.C.Spec.Nodes {
		out = append(out, guestOf(x, n))
	}
	return out
}

// guestOf is node n as Proxmox sees it.
func guestOf(x *nodegen.Context, n spec.Node) guest {
	g := guest{
		Name: n.Name, Roles: strings.Join(n.Roles, ", "), Cluster: x.C.Metadata.Name, VMID: n.VMID, Version: version(x.C),
		LXC: n.Target == spec.TargetLXC, TemplateStorage: x.C.Spec.Proxmox.TemplateStorage,
		Storage: x.C.Spec.Proxmox.Storage, DiskGiB: n.DiskGiB,
	}
	subject, ext := ArtifactSubject(n), pvename.ExtQCOW2
	if g.LXC {
		g.Type, ext = "lxc", pvename.ExtTemplate
		container(x, n, &g)
	} else {
		g.Type = "qemu"
		vm(x, n, &g)
	}
	switch {
	case g.LXC:
		g.Artifact = artifactWord(`${TEMPLATE_STORAGE}:vztmpl/`, subject, ext)
	case n.BootsByIgnition():
		// The distribution's own image, which bake does not make.
		g.Artifact = `"${IMAGE_DIR}/"` + templates.ShellQuote(x.C.Spec.Ignition.Images[n.Ignition])
	default:
		g.Artifact = artifactWord(`${IMAGE_DIR}/`, subject, ext)
	}
	g.Options = append(g.Options,
		option{"tags", TagAll + ";" + Tag(g.Cluster)},
		option{"description", fmt.Sprintf("Node %s (%s) of the hardway cluster %s, created by proxmox/create-nodes.sh "+
			"with the settings of nodes/%s/proxmox.conf: change the spec and regenerate rather than this guest.", g.Name, g.Roles, g.Cluster, g.Name)})
	return g
}

// ArtifactSubject is the node or role a node's template or image is named
// after (but for a node booted by Ignition, whose image is
// spec.ignition.images' for its variant): the role of spec.nodes[].roleImage for a KVM node booted from a
// role image (hardway bake --format kvm --role R), the node otherwise (its
// own template or node image, hardway bake --node N).
func ArtifactSubject(n spec.Node) string {
	if n.Target == spec.TargetKVM && n.RoleImage != "" {
		return n.RoleImage
	}
	return n.Name
}

// ArtifactVars are the variables of create-nodes.sh that stand for what
// generate cannot know and bake names artifacts by: the base's os-release
// ID and VERSION_ID, and the Kubernetes version (the spec's by default).
var ArtifactVars = struct{ OS, OSVersion, Version string }{"OS", "OS_VERSION", "VERSION"}

// artifactWord is where, under dir (shell text inside double quotes),
// create-nodes.sh finds the artifact of subject with extension ext, named as
// hardway bake names it (pvename.Name): one shell word in which the base
// and the version are the script's variables. NUL-delimited stand-ins pass
// through pvename.Name and become "${VAR}"; a part of the name with a
// character the shell would read is single-quoted.
func artifactWord(dir, subject, ext string) string {
	v := ArtifactVars
	parts := strings.Split(pvename.Name("\x00"+v.OS+"\x00", "\x00"+v.OSVersion+"\x00", subject, "\x00"+v.Version+"\x00", ext), "\x00")
	var b strings.Builder
	b.WriteString(`"` + dir)
	for i, p := range parts {
		switch q := templates.ShellQuote(p); {
		case p == "":
		case i%2 == 1:
			b.WriteString("${" + p + "}")
		case q == p:
			b.WriteString(p)
		default:
			b.WriteString(`"` + q + `"`)
		}
	}
	return b.String() + `"`
}

// startRanks is the order in which create-nodes.sh --start starts guests,
// by role: a node starts with the first of its roles in this list.
var startRanks = []string{spec.RoleGateway, spec.RoleLB, spec.RoleEtcd, spec.RoleController, spec.RoleWorker}

// startOrder is the VMIDs of x's nodes in start order (spec order within a rank).
func startOrder(x *nodegen.Context) []int {
	rank := func(n spec.Node) int {
		r := len(startRanks)
		for _, role := range n.Roles {
			if i := slices.Index(startRanks, role); i >= 0 && i < r {
				r = i
			}
		}
		return r
	}
	nodes := slices.Clone(x.C.Spec.Nodes)
	slices.SortStableFunc(nodes, func(a, b spec.Node) int { return rank(a) - rank(b) })
	out := make([]int, len(nodes))
	for i, n := range nodes {
		out[i] = n.VMID
	}
	return out
}

// kubeletKeys are the raw LXC keys of a container that runs kubelet,
// containerd and kube-proxy (the seed's worker configuration, corrected for
// cgroup v2 and with a working /dev/kmsg).
var kubeletKeys = []rawKey{
	{"lxc.apparmor.profile", "unconfined", "containerd and runc mount file systems and load AppArmor profiles, which Proxmox's container profile forbids"},
	{"lxc.cgroup2.devices.allow", "a", "kubelet and the pods may use any device, /dev/kmsg (c 1:11) among them"},
	{"lxc.cap.drop", "", "keep every capability (Proxmox drops sys_time, sys_module, sys_rawio, mac_admin, mac_override): privileged pods expect the full set"},
	{"lxc.mount.auto", "proc:rw sys:mixed", "writable /proc: the kubelet and systemd-sysctl set the container's net.* sysctls; /sys read-only but for the container's own network devices, as Proxmox forces for unprivileged containers: with /sys writable, systemd-networkd waits for udev, which does not run in a container, and eth0 never gets its address"},
	{"lxc.mount.entry", "/dev/kmsg dev/kmsg none defaults,bind,create=file", "kubelet's OOM watcher reads /dev/kmsg (kubernetes#80633): the host's, bound in"},
}

// Privilege decisions, stated in the configuration and the script.
const (
	privileged = "Privileged: kubelet, containerd and kube-proxy need devices, writes to /proc and /sys and every capability, " +
		"which a user namespace withholds. keyctl is not set: it only matters to unprivileged containers."
	unprivileged = "Unprivileged: its services need nothing a user namespace withholds. nesting=1 lets systemd's " +
		"sandboxed services (systemd-networkd among them) set up their mount namespaces."
)

// container fills in an LXC guest: the options of pct create, and for a
// worker the raw keys that let Kubernetes run in it. Only workers are
// privileged: etcd, the control plane, HAProxy, keepalived and sshd are plain
// processes. net0 carries the node's pinned MAC (nodegen.Context.MAC).
// nameserver and searchdomain make Proxmox write the spec's resolvers into
// /etc/resolv.conf, the one network file it keeps.
func container(x *nodegen.Context, n spec.Node, g *guest) {
	s := x.C.Spec
	kube := n.Has(spec.RoleWorker)
	g.Privilege = unprivileged
	if kube {
		g.Privilege, g.Raw = privileged, kubeletKeys
	}
	g.Options = []option{
		{"arch", "amd64"},
		{"hostname", n.Name},
		{"cores", strconv.Itoa(n.Cores)},
		{"memory", strconv.Itoa(n.MemoryMiB)},
		{"swap", strconv.Itoa(n.SwapMiB)},
		{"nameserver", strings.Join(s.Network.DNS, " ")},
		{"searchdomain", s.Domain},
		{"rootfs", fmt.Sprintf("%s:%d", s.Proxmox.Storage, n.DiskGiB)},
		{"unprivileged", boolOpt(!kube)},
		{"features", "nesting=1"},
		{"onboot", "1"},
	}
	// net<i> after swap, where net0 always stood.
	var nets []option
	for _, nic := range x.C.NICs(n) {
		v := fmt.Sprintf("name=%s,bridge=%s,hwaddr=%s,ip=%s", nic.Name, nic.Bridge, x.NICMAC(n, nic.Index), nic.Address)
		if nic.Gateway != "" {
			v += ",gw=" + nic.Gateway
		}
		nets = append(nets, option{"net" + strconv.Itoa(nic.Index), v + ",type=veth"})
	}
	g.Options = slices.Insert(g.Options, 5, nets...)
}

// vm fills in a KVM guest: UEFI on q35 for the baked GPT image, virtio disk
// and NIC (with the node's pinned MAC, which its network configuration
// matches), a serial console (the cloud images' console, `qm terminal`), the
// guest agent, and the boot configuration as cicustom snippets on a
// cloud-init drive: NoCloud files, or the Ignition config as user-data (the
// proxmoxve platform of Fedora CoreOS and Flatcar reads it there).
func vm(x *nodegen.Context, n spec.Node, g *guest) {
	s := x.C.Spec
	store := s.Proxmox.SnippetsStorage
	var custom []string
	if n.BootsByIgnition() {
		g.Snippets = []snippet{{nodefiles.IgnitionConfig(x.C, n), n.Name + "-ignition.json"}}
		custom = []string{"user=" + store + ":snippets/" + n.Name + "-ignition.json"}
	} else {
		for _, f := range []struct{ key, file string }{{"user", nodefiles.UserData}, {"network", nodefiles.NetworkConfig}, {"meta", nodefiles.MetaData}} {
			name := n.Name + "-" + f.file + ".yaml"
			g.Snippets = append(g.Snippets, snippet{path.Join(nodefiles.CloudInit.Path(n.Name), f.file), name})
			custom = append(custom, f.key+"="+store+":snippets/"+name)
		}
	}
	g.Options = []option{
		{"name", n.Name},
		{"ostype", "l26"},
		{"machine", "q35"},
		{"bios", "ovmf"},
		{"efidisk0", s.Proxmox.Storage + ":1,efitype=4m,pre-enrolled-keys=0"},
		{"cores", strconv.Itoa(n.Cores)},
		{"memory", strconv.Itoa(n.MemoryMiB)},
		{"scsihw", "virtio-scsi-single"},
		{"serial0", "socket"},
		{"agent", "enabled=1"},
		{"ide2", s.Proxmox.Storage + ":cloudinit"},
		{"cicustom", strings.Join(custom, ",")},
		{"boot", "order=scsi0"},
		{"onboot", "1"},
	}
	// net<i> after memory, where net0 always stood.
	var nets []option
	for _, nic := range x.C.NICs(n) {
		nets = append(nets, option{"net" + strconv.Itoa(nic.Index), "virtio=" + x.NICMAC(n, nic.Index) + ",bridge=" + nic.Bridge})
	}
	g.Options = slices.Insert(g.Options, 7, nets...)
}

// Proxmox's limits on a VM's cicustom snippets (qemu-server,
// src/PVE/QemuServer/Cloudinit.pm): read_cloudinit_snippets_file reads a
// snippet with PVE::Tools::file_get_contents($path, 1 * 1024 * 1024), which
// dies "too long - aborting" past 1 MiB, and generate_nocloud (as
// generate_configdrive2) dies "Cloud-Init sum of snippets too big (> 3 MiB)"
// when user, network, meta and vendor data together exceed 3 MiB, to fit
// its 4 MiB cloud-init disk.
const (
	SnippetMax  = 1 << 20 // bytes of one snippet
	SnippetsMax = 3 << 20 // bytes of a VM's snippets together
)

// CheckSnippets checks node's cicustom snippets against Proxmox's limits
// before they are written: files are their contents by path, relative to the
// cluster directory. Proxmox would refuse to start the VM otherwise.
func CheckSnippets(node string, files map[string][]byte) error {
	paths := slices.Sorted(maps.Keys(files))
	sum := 0
	for _, p := range paths {
		n := len(files[p])
		sum += n
		if n > SnippetMax {
			return fmt.Errorf("node %s: %s is %s, more than the %d MiB Proxmox reads of a cicustom snippet (qemu-server, PVE/QemuServer/Cloudinit.pm): the VM would not start", node, p, mib(n), SnippetMax>>20)
		}
	}
	if sum > SnippetsMax {
		return fmt.Errorf("node %s: its cicustom snippets (%s) are %s together, more than the %d MiB Proxmox allows a VM (qemu-server, PVE/QemuServer/Cloudinit.pm): the VM would not start", node, strings.Join(paths, ", "), mib(sum), SnippetsMax>>20)
	}
	return nil
}

// mib words a size: bytes, and MiB to two places.
func mib(n int) string { return fmt.Sprintf("%d bytes (%.2f MiB)", n, float64(n)/(1<<20)) }

// version is the package version of the node templates and images: the
// Kubernetes version without its "v", as hardway bake names them.
func version(c *spec.Cluster) string { return strings.TrimPrefix(c.Spec.KubernetesVersion, "v") }

func boolOpt(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

// createNodes renders create-nodes.sh, in which every value is a quoted
// shell word (the template's shq) and every comment takes its text through
// comment: nothing from the spec can run on the host.
func createNodes(x *nodegen.Context, gs []guest) nodegen.File {
	s := x.C.Spec.Proxmox
	data := x.Render("proxmox/create-nodes.sh", map[string]any{
		"Cluster":         x.C.Metadata.Name,
		"Tag":             Tag(x.C.Metadata.Name),
		"Version":         version(x.C),
		"TemplateStorage": s.TemplateStorage,
		"SnippetsStorage": s.SnippetsStorage,
		"Vars":            ArtifactVars,
		"Guests":          gs,
		"StartOrder":      startOrder(x),
	})
	return nodegen.File{Path: CreateNodesPath, Mode: 0o755, Data: data, Kind: Kind}
}

// host returns the files the Proxmox host itself needs.
func host(x *nodegen.Context) []nodegen.File {
	c := x.C
	file := func(p, tmpl string, data map[string]any) nodegen.File {
		data["Cluster"] = c.Metadata.Name
		return nodegen.File{Path: "proxmox/" + p, Mode: 0o644, Data: x.Render(tmpl, data), Kind: Kind}
	}
	ct := conntrack(c)
	out := []nodegen.File{
		// A fixed name, as the others': no file name comes from the spec.
		file("interfaces.d/hardway", "proxmox/interfaces", map[string]any{
			"Bridge": c.Spec.Proxmox.Bridge, "Gateway": c.Spec.Network.Gateway, "Address": bridgeAddress(c), "Routes": podRoutes(x),
		}),
		file("sysctl.d/hardway.conf", "proxmox/sysctl.conf", map[string]any{"Conntrack": ct}),
	}
	if ct != nil {
		out = append(out,
			file("modules-load.d/hardway.conf", "proxmox/modules-load.conf", map[string]any{"Modules": hostModules}),
			file("modprobe.d/hardway-nf_conntrack.conf", "proxmox/modprobe-nf_conntrack.conf", map[string]any{
				"Worker": ct.Worker, "Cores": ct.Cores, "Hashsize": ct.Hashsize,
			}))
	}
	if servesTime(c) {
		out = append(out, file("chrony/hardway.conf", "proxmox/chrony.conf", map[string]any{
			"Gateway": c.Spec.Network.Gateway, "NodeCIDR": c.Spec.Network.NodeCIDR,
		}))
	}
	return out
}

// module is a kernel module the host loads for the LXC workers.
type module struct{ Name, Why string }

// hostModules are loaded on the host because a container cannot load them.
var hostModules = []module{
	{"overlay", "containerd's overlayfs snapshotter"},
	{"br_netfilter", "pod traffic on the CNI bridge passes iptables (the workers set its sysctls in their own network namespaces)"},
	{"nf_conntrack", "kube-proxy's connection tracking, sized by modprobe.d/hardway-nf_conntrack.conf"},
	{"nf_nat", "Service and masquerade NAT (kube-proxy, the CNI portmap plugin)"},
	{"nf_tables", "the nftables backend of Debian's iptables, and kube-proxy's nftables mode"},
	{"ip_tables", "the legacy iptables backend, for images that use it"},
	{"ip6_tables", "the same for IPv6"},
}

// kube-proxy's conntrack defaults (KubeProxyConfiguration conntrack.maxPerCore
// and conntrack.min): it wants nf_conntrack_max = max(maxPerCore × cores, min).
const (
	conntrackMaxPerCore = 32 * 1024
	conntrackMin        = 128 * 1024
)

// conntrackMax is the nf_conntrack_max kube-proxy wants on a worker with cores CPUs.
func conntrackMax(cores int) int { return max(conntrackMaxPerCore*cores, conntrackMin) }

// conntrackHashsize is the nf_conntrack hashsize kube-proxy wants on such a
// worker: a quarter of conntrackMax (it writes max/4 when the current size is
// smaller, which fails in a container, so the host sets it beforehand).
func conntrackHashsize(cores int) int { return conntrackMax(cores) / 4 }

// conntrackPlan sizes the host's connection tracking for its largest LXC worker.
type conntrackPlan struct {
	Worker        string
	Cores         int
	Max, Hashsize int
}

// conntrack sizes the host's conntrack table for the LXC worker with the most
// cores (the first of them on a tie): all of them share the host's table.
// KVM workers have their own kernel, where kube-proxy sets it. nil when no
// worker is a container.
func conntrack(c *spec.Cluster) *conntrackPlan {
	var p *conntrackPlan
	for _, w := range c.NodesWith(spec.RoleWorker) {
		if w.Target == spec.TargetLXC && (p == nil || w.Cores > p.Cores) {
			p = &conntrackPlan{Worker: w.Name, Cores: w.Cores, Max: conntrackMax(w.Cores), Hashsize: conntrackHashsize(w.Cores)}
		}
	}
	return p
}

// route is a host route to a worker's pod CIDR.
type route struct {
	To     netip.Prefix
	Via    netip.Addr
	Worker string
}

// podRoutes lists every worker's pod CIDR via the worker, in spec order: the
// host, as every node's default gateway, forwards pod traffic to its worker.
func podRoutes(x *nodegen.Context) []route {
	var out []route
	for _, w := range x.C.NodesWith(spec.RoleWorker) {
		out = append(out, route{To: x.PodCIDRs[w.Name], Via: w.IP(), Worker: w.Name})
	}
	return out
}

// bridgeAddress is the host's address on the node bridge: the nodes' gateway,
// with the node network's prefix length.
func bridgeAddress(c *spec.Cluster) netip.Prefix {
	gw, _ := netip.ParseAddr(c.Spec.Network.Gateway)
	nodes, _ := netip.ParsePrefix(c.Spec.Network.NodeCIDR)
	return netip.PrefixFrom(gw, nodes.Bits())
}

// servesTime reports whether a node takes its time from the gateway by NTP:
// the KVM nodes booted by cloud-init (see generators/common).
func servesTime(c *spec.Cluster) bool {
	for _, n := range c.Spec.Nodes {
		if n.BootsByCloudInit() {
			return true
		}
	}
	return false
}
