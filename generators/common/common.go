// Package common generates the files every node gets, whatever its roles: its
// identity (hostname, the cluster's hosts file), its network, root's SSH keys,
// time sync and, on LXC, the markers that keep Proxmox off the files we own.
package common

import (
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Paths written on every node.
const (
	HostnameFile   = "/etc/hostname"
	HostsFile      = "/etc/hosts"
	AuthorizedKeys = "/root/.ssh/authorized_keys"
	// ChronySources is read by Debian's chrony.conf (sourcedir /etc/chrony/sources.d).
	ChronySources = "/etc/chrony/sources.d/hardway.sources"
	// Interfaces is ifupdown's file, which Proxmox rewrites for Debian containers.
	Interfaces = "/etc/network/interfaces"
)

// The base system's units the common role enables: networkd applies the
// node's network files, wait-online holds network-online.target until the
// address is up, chrony keeps time from the gateway.
const (
	NetworkdUnit   = "systemd-networkd.service"
	WaitOnlineUnit = "systemd-networkd-wait-online.service"
	ChronyUnit     = "chrony.service"
)

// Generate adds the common role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	identity(x, n, t)
	network(x, n, t)
	sshKeys(x, n, t)
	timeSync(x, n, t)
	pveIgnore(x, n, t)
	containerMasks(n, t)
	return nil
}

// ContainerMasks are the units an LXC node masks: the kernel's debug file
// system is the host's. An unprivileged container keeps CAP_SYS_RAWIO in
// its user namespace (LXC's userns.conf clears common.conf's cap.drop), so
// sys-kernel-debug.mount's condition holds, its mount is refused, and
// systemd reports the node degraded. pve-container's first-boot preset
// lists it as disabled, which a static unit ignores; it masks it for
// CentOS (setup_systemd_disable_static_units).
var ContainerMasks = []string{"sys-kernel-debug.mount"}

// containerMasks masks ContainerMasks on an LXC node (a link to /dev/null).
func containerMasks(n spec.Node, t *tree.Tree) {
	if n.Target != spec.TargetLXC {
		return
	}
	for _, u := range ContainerMasks {
		t.Symlink(tree.UnitFile(u), "/dev/null")
	}
}

// identity writes the short host name (the FQDN comes from /etc/hosts, as
// Debian expects) and the hosts file: the node itself, the API endpoint's
// names and the peers its roles talk to (hostsPeers), so that adding a
// worker changes no other node's file but the gateway's.
func identity(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	t.File(HostnameFile, 0o644, x.Render("common/hostname", n))
	peers, why := hostsPeers(x, n)
	t.File(HostsFile, 0o644, x.Render("common/hosts", map[string]any{
		"Node":    n.Name,
		"Cluster": x.C.Metadata.Name,
		"Nodes":   peers,
		"Why":     why,
		"API":     hostsAPI(x),
	}))
}

// hostLine is one node of /etc/hosts.
type hostLine struct {
	IP         netip.Addr
	FQDN, Name string
}

// hostsPeer says which nodes a node with role lists in /etc/hosts besides
// itself: those with one of the roles in Peers, or every node (All).
type hostsPeer struct {
	Role  string
	Peers []string
	All   bool
	Why   string
}

// hostsPeerTable is the table of hostsPeer rows. A worker talks to the API
// endpoint only (its name comes from hostsAPI, and without a VIP the first
// controller is listed, below); workers reach each other's pods through
// the node network's gateway, by address. Only the gateway, the bastion
// operators go through, knows every node: it is the one node whose
// /etc/hosts changes when a worker is added or removed.
var hostsPeerTable = []hostsPeer{
	{Role: spec.RoleEtcd, Peers: []string{spec.RoleEtcd}, Why: "etcd: its fellow members (--initial-cluster)"},
	{Role: spec.RoleController, Peers: []string{spec.RoleEtcd}, Why: "controller: the etcd members it is a client of (--etcd-servers)"},
	{Role: spec.RoleLB, Peers: []string{spec.RoleController, spec.RoleLB}, Why: "lb: HAProxy's controllers and keepalived's VRRP peers"},
	{Role: spec.RoleGateway, All: true, Why: "gateway: every node, reached by name through the bastion"},
}

// hostsPeers returns the nodes n's /etc/hosts lists, in spec order (n
// itself, the nodes hostsPeerTable gives its roles, and without a VIP the
// first controller, the API endpoint), and why, one reason a line.
//
// The nodes of a role in the table are few (every node is a peer of the
// gateway only): a worker's list is made without going through the others.
func hostsPeers(x *nodegen.Context, n spec.Node) ([]hostLine, []string) {
	c := x.C
	self, _ := x.Index(n.Name)
	want := []int{self}
	why := []string{"itself"}
	for _, r := range hostsPeerTable {
		if !n.Has(r.Role) {
			continue
		}
		why = append(why, r.Why)
		for i, m := range c.Spec.Nodes {
			if r.All || slices.ContainsFunc(r.Peers, m.Has) {
				want = append(want, i)
			}
		}
	}
	if cp, ok := c.First(spec.RoleController); c.Spec.APIServer.VIP == "" && ok {
		i, _ := x.Index(cp.Name)
		want = append(want, i)
		why = append(why, "the API endpoint: no VIP, the first controller")
	}
	slices.Sort(want)
	var out []hostLine
	for _, i := range slices.Compact(want) {
		m := c.Spec.Nodes[i]
		out = append(out, hostLine{IP: m.IP(), FQDN: c.FQDN(m), Name: m.Name})
	}
	return out, why
}

// apiLine names the API endpoint in /etc/hosts.
type apiLine struct {
	IP    netip.Addr
	What  string // where the address comes from
	Names []string
}

// hostsAPI maps the DNS names of apiServer.extraSANs to the API endpoint (the
// VIP, else the first controller), so that a client using such a name reaches
// the apiserver and verifies its certificate, which carries the names. No name
// is invented for the VIP: one outside the certificate would fail TLS.
// Wildcards cannot be hosts entries, and node names keep their node's address.
// It returns nil when there is nothing to add.
func hostsAPI(x *nodegen.Context) *apiLine {
	c := x.C
	taken := func(s string) bool { // a node's name or FQDN
		_, name := x.Index(s)
		short, fqdn := strings.CutSuffix(s, "."+c.Spec.Domain)
		_, named := x.Index(short)
		return name || fqdn && named
	}
	var names []string
	for _, s := range c.Spec.APIServer.ExtraSANs {
		if _, err := netip.ParseAddr(s); err == nil || strings.HasPrefix(s, "*.") || taken(s) || slices.Contains(names, s) {
			continue
		}
		names = append(names, s)
	}
	if len(names) == 0 || !c.APIHost().IsValid() {
		return nil
	}
	what := "spec.apiServer.vip"
	if c.Spec.APIServer.VIP == "" {
		what = "no VIP: the first controller"
	}
	return &apiLine{IP: c.APIHost(), What: what, Names: names}
}

// network writes the node's systemd-networkd file when the tree carries the
// network (everything but cloud-init KVM nodes, whose NoCloud network-config
// does it) and enables networkd, with wait-online so that units ordered after
// network-online.target find the node's address in place.
func network(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	if n.TreeManagesNetwork() {
		Network(x, n, t)
	}
}

// Network writes node n's network file at x.NetworkFile(n) (static address,
// gateway, DNS) and enables networkd; on
// Fedora CoreOS the file is a NetworkManager keyfile (0600: NetworkManager
// ignores a keyfile others can read) and NetworkManager, which the system
// enables, reads it. generators.Image calls it for node images booted by
// cloud-init, which have no NoCloud seed to carry their network.
func Network(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	for _, nic := range x.C.NICs(n) {
		data := map[string]any{
			"Node":    n.Name,
			"LXC":     n.Target == spec.TargetLXC,
			"Index":   nic.Index,
			"Name":    nic.Name,
			"Bridge":  nic.Bridge,
			"Match":   match(x, n, nic),
			"MAC":     x.NICMAC(n, nic.Index),
			"Address": nic.Address,
			"Gateway": nic.Gateway,
			"Routes":  nic.Routes,
			"DNS":     []string(nil),
			"Domain":  "",
		}
		if nic.Index == 0 {
			// The resolvers and search domain are the node's, on its first interface.
			data["DNS"], data["Domain"] = x.C.Spec.Network.DNS, x.C.Spec.Domain
		}
		if nodegen.NetworkManager(n) {
			// spec validation refuses extra interfaces on Ignition nodes.
			t.File(x.NetworkFile(n), 0o600, x.Render("common/network.nmconnection", data))
			return
		}
		t.File(x.NICFile(n, nic.Index), 0o644, x.Render("common/network", data))
	}
	t.Enable(NetworkdUnit, "multi-user.target")
	t.Enable(WaitOnlineUnit, "network-online.target")
}

// match selects the interface a network file applies to: eth<i> in a
// container (Proxmox's net<i> name=eth<i>); in a VM the NIC with the
// interface's pinned MAC (net<i> of its Proxmox config), whatever the kernel
// names it. Never Type=ether, which would also catch the pods' veth pairs.
func match(x *nodegen.Context, n spec.Node, nic spec.NIC) string {
	if n.Target == spec.TargetLXC {
		return "Name=" + nic.Name
	}
	return "MACAddress=" + x.NICMAC(n, nic.Index)
}

// sshKeys installs root's authorized keys. /root is listed explicitly: a
// parent added implicitly would be 0755 and loosen Debian's 0700 home.
func sshKeys(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	keys := x.C.Spec.SSH.AuthorizedKeys
	if len(keys) == 0 {
		return
	}
	t.Dir("/root", 0o700)
	t.Dir(path.Dir(AuthorizedKeys), 0o700)
	t.File(AuthorizedKeys, 0o600, x.Render("common/authorized_keys", map[string]any{"Node": n.Name, "Keys": keys}))
}

// timeSync keeps the clock right where the node has its own:
//   - LXC: nothing. A container reads the host's clock and cannot set it.
//   - KVM booted by cloud-init (a Debian base): chrony, the Debian NTP client
//     that serves and steps well on VMs, with the nodes' gateway as a source.
//   - KVM booted by Ignition: Fedora CoreOS enables chronyd and Flatcar
//     systemd-timesyncd out of the box; nothing to add.
func timeSync(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	if !n.BootsByCloudInit() {
		return
	}
	t.File(ChronySources, 0o644, x.Render("common/chrony.sources", map[string]any{
		"Node": n.Name, "Gateway": x.C.Spec.Network.Gateway,
	}))
	t.Enable(ChronyUnit, "multi-user.target")
}

// pveIgnore drops, next to each file of ours that Proxmox would rewrite at
// every container start, the marker /dir/.pve-ignore.<name> that makes it
// skip the file (pve-container: ct_is_file_ignored). Besides the hosts and
// hostname files and our network file, Debian's ifupdown interfaces file is
// marked: Proxmox would configure eth0 there too, against networkd. So is
// the preset file Proxmox writes into Debian 12+ containers, which disables
// systemd-networkd at a first boot (nodegen.PVEPreset).
func pveIgnore(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	if n.Target != spec.TargetLXC {
		return
	}
	files := []string{HostsFile, HostnameFile}
	if n.TreeManagesNetwork() {
		for _, nic := range x.C.NICs(n) {
			files = append(files, x.NICFile(n, nic.Index))
		}
		files = append(files, Interfaces, nodegen.PVEPreset)
	}
	for _, f := range files {
		t.File(IgnoreMarker(f), 0o644, x.Render("common/pve-ignore", map[string]any{"File": f}))
	}
}

// IgnoreMarker is the path of the Proxmox marker that protects file p.
func IgnoreMarker(p string) string {
	return path.Join(path.Dir(p), ".pve-ignore."+path.Base(p))
}
