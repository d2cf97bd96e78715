// Package lb generates the files of the lb role: HAProxy balancing the
// Kubernetes API across the controllers, and keepalived holding the API VIP
// on one lb node at a time.
package lb

import (
	"fmt"
	"net/netip"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Paths on lb nodes.
const (
	HAProxyConfig    = "/etc/haproxy/haproxy.cfg"
	HAProxyCA        = "/etc/haproxy/ca.crt"
	KeepalivedConfig = "/etc/keepalived/keepalived.conf"
	Sysctl           = "/etc/sysctl.d/60-hardway-lb.conf"
)

// The lb role's units, the base's packages' own.
const (
	HAProxyUnit    = "haproxy.service"
	KeepalivedUnit = "keepalived.service"
)

// TopPriority is the VRRP priority of the first lb node; each next one in spec
// order gets one less. 255 is reserved for an address owner, which no lb is.
const TopPriority = 200

// haproxyCheck is keepalived's health check of the local HAProxy.
const haproxyCheck = "/usr/bin/systemctl is-active --quiet " + HAProxyUnit

// Generate adds the lb role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	vip, err := netip.ParseAddr(x.C.Spec.APIServer.VIP)
	if err != nil {
		return fmt.Errorf("spec.apiServer.vip: the lb role needs the VIP it holds: %w", err)
	}
	lbs := x.C.NodesWith(spec.RoleLB)
	rank := rankOf(lbs, n)
	if TopPriority-rank < 1 {
		return fmt.Errorf("%d lb nodes: VRRP priorities run out after %d", len(lbs), TopPriority)
	}
	haproxy(x, n, t, vip)
	t.File(Sysctl, 0o644, x.Render("lb/sysctl.conf", map[string]any{
		"Node": n.Name, "VIP": vip, "Key": nonlocalBind(vip),
	}))
	keepalived(x, n, t, vip, lbs, rank)
	return nil
}

// rankOf is n's position among the lb nodes, in spec order.
func rankOf(lbs []spec.Node, n spec.Node) int {
	for i, l := range lbs {
		if l.Name == n.Name {
			return i
		}
	}
	return len(lbs)
}

// backend is one controller behind HAProxy.
type backend struct {
	Name, FQDN string
	Addr       netip.AddrPort
}

func haproxy(x *nodegen.Context, n spec.Node, t *tree.Tree, vip netip.Addr) {
	port := uint16(x.C.Spec.APIServer.Port)
	var servers []backend
	for _, c := range x.C.NodesWith(spec.RoleController) {
		servers = append(servers, backend{Name: c.Name, FQDN: x.C.FQDN(c), Addr: netip.AddrPortFrom(c.IP(), port)})
	}
	x.CACert(t, HAProxyCA, pki.CA)
	t.File(HAProxyConfig, 0o644, x.Render("lb/haproxy.cfg", map[string]any{
		"Node":    n.Name,
		"Cluster": x.C.Metadata.Name,
		"Bind":    netip.AddrPortFrom(vip, port),
		"CAFile":  HAProxyCA,
		"Servers": servers,
	}))
	t.Enable(HAProxyUnit, "multi-user.target")
}

func keepalived(x *nodegen.Context, n spec.Node, t *tree.Tree, vip netip.Addr, lbs []spec.Node, rank int) {
	state := "BACKUP"
	if rank == 0 {
		state = "MASTER"
	}
	var peers []netip.Addr
	for _, l := range lbs {
		if l.Name != n.Name {
			peers = append(peers, l.IP())
		}
	}
	t.File(KeepalivedConfig, 0o644, x.Render("lb/keepalived.conf", map[string]any{
		"Node":      n.Name,
		"Cluster":   x.C.Metadata.Name,
		"VIP":       vip,
		"Bits":      nodeBits(x.C),
		"VRID":      VRID(vip),
		"Top":       TopPriority,
		"Priority":  TopPriority - rank,
		"State":     state,
		"Interface": Interface(n),
		"Self":      n.IP(),
		"Peers":     peers,
		"Check":     haproxyCheck,
	}))
	t.Enable(KeepalivedUnit, "multi-user.target")
}

// VRID is the VRRP virtual router id of a VIP: 1 + (the address, read as a
// big-endian number, mod 255), in 1..255. Since 256 ≡ 1 (mod 255) this is the
// sum of its bytes mod 255, plus one; within one /24 every host address gets
// a different id. Deterministic: the same spec gives the same id on every node.
func VRID(vip netip.Addr) int {
	r := 0
	for _, b := range vip.AsSlice() {
		r = (r*256 + int(b)) % 255
	}
	return r + 1
}

// Interface is the lb node's network interface. eth0 in a container (net0
// name=eth0 in its Proxmox config) and in a VM booted by cloud-init (its
// network-config renames the NIC with the node's pinned MAC to eth0); in a
// VM booted by Ignition, ens18, the predictable name of net0, the virtio NIC
// Proxmox puts in PCI slot 18.
func Interface(n spec.Node) string {
	if n.BootsByIgnition() {
		return "ens18"
	}
	return "eth0"
}

// nodeBits is the prefix length of the node network, which the VIP is in.
func nodeBits(c *spec.Cluster) int {
	p, _ := netip.ParsePrefix(c.Spec.Network.NodeCIDR)
	return p.Bits()
}

// nonlocalBind is the sysctl that lets a process bind an address the node does not hold.
func nonlocalBind(vip netip.Addr) string {
	if vip.Is6() {
		return "net.ipv6.ip_nonlocal_bind"
	}
	return "net.ipv4.ip_nonlocal_bind"
}
