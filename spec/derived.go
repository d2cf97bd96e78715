package spec

import (
	"fmt"
	"math/big"
	"net/netip"
	"path/filepath"
	"slices"
)

// BinariesDir is spec.binaries.dir, which is relative to the spec file.
func (d *Document) BinariesDir() string {
	return filepath.Join(d.Dir, d.Cluster.Spec.Binaries.Dir)
}

// Has reports whether the node holds role r.
func (n Node) Has(r string) bool { return slices.Contains(n.Roles, r) }

// BootsByIgnition reports whether node n is a kvm node booted by Ignition
// (Fedora CoreOS, Flatcar), which boots from its distribution's image.
func (n Node) BootsByIgnition() bool { return n.Target == TargetKVM && n.Boot == BootIgnition }

// BootsByCloudInit reports whether node n is a kvm node booted by cloud-init
// from a NoCloud seed, into a Debian base image.
func (n Node) BootsByCloudInit() bool { return n.Target == TargetKVM && n.Boot == BootCloudInit }

// TreeManagesNetwork reports whether node n's file tree carries its network
// configuration (a systemd-networkd file, or on Fedora CoreOS a
// NetworkManager keyfile). A kvm node booted by cloud-init gets its network
// from the NoCloud network-config instead, rendered from the same data.
func (n Node) TreeManagesNetwork() bool { return !n.BootsByCloudInit() }

// IP is the node's address without prefix length.
func (n Node) IP() netip.Addr {
	p, _ := netip.ParsePrefix(n.Address)
	return p.Addr()
}

// FQDN is <name>.<domain>.
func (c *Cluster) FQDN(n Node) string { return n.Name + "." + c.Spec.Domain }

// NodesWith returns the nodes holding role r, in spec order.
func (c *Cluster) NodesWith(r string) []Node {
	var out []Node
	for _, n := range c.Spec.Nodes {
		if n.Has(r) {
			out = append(out, n)
		}
	}
	return out
}

// First returns the first node, in spec order, holding role r: without
// the copy of every such node that NodesWith makes, which a generator
// asking once per node would pay N times.
func (c *Cluster) First(r string) (Node, bool) {
	for _, n := range c.Spec.Nodes {
		if n.Has(r) {
			return n, true
		}
	}
	return Node{}, false
}

// Index maps every node's name to its position in spec.nodes: for a
// caller that asks of many names whether, or where, a node has it, where
// Node would search the list each time.
func (c *Cluster) Index() map[string]int {
	index := make(map[string]int, len(c.Spec.Nodes))
	for i, n := range c.Spec.Nodes {
		index[n.Name] = i
	}
	return index
}

// Node returns the node called name.
func (c *Cluster) Node(name string) (Node, bool) {
	for _, n := range c.Spec.Nodes {
		if n.Name == name {
			return n, true
		}
	}
	return Node{}, false
}

// Prefix parses a CIDR field already checked by Validate.
func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p.Masked()
}

// FirstServiceIP is the kubernetes service's cluster IP: the first address of serviceCIDR.
func (c *Cluster) FirstServiceIP() netip.Addr {
	return mustPrefix(c.Spec.Network.ServiceCIDR).Addr().Next()
}

// APIHost is the address kubelets, kube-proxy and remote admins use: the VIP
// when there is one, else the first controller's address.
func (c *Cluster) APIHost() netip.Addr {
	if c.Spec.APIServer.VIP != "" {
		a, _ := netip.ParseAddr(c.Spec.APIServer.VIP)
		return a
	}
	if cp, ok := c.First(RoleController); ok {
		return cp.IP()
	}
	return netip.Addr{}
}

// APIServerURL is https://<APIHost>:<port>.
func (c *Cluster) APIServerURL() string {
	return fmt.Sprintf("https://%s", netip.AddrPortFrom(c.APIHost(), uint16(c.Spec.APIServer.Port)))
}

// LocalAPIServerURL is the URL of the apiserver on the same controller.
func (c *Cluster) LocalAPIServerURL() string {
	return fmt.Sprintf("https://127.0.0.1:%d", c.Spec.APIServer.Port)
}

// PodCIDRs assigns every worker, in spec order, the next subnet of
// network.podCIDR of size network.podCIDRMaskSize. Append new workers at the
// end of the list so that existing ones keep their pod CIDR.
func (c *Cluster) PodCIDRs() map[string]netip.Prefix {
	out := map[string]netip.Prefix{}
	base := mustPrefix(c.Spec.Network.PodCIDR)
	size := c.Spec.Network.PodCIDRMaskSize
	for i, n := range c.NodesWith(RoleWorker) {
		p, ok := subnet(base, size, i)
		if ok {
			out[n.Name] = p
		}
	}
	return out
}

// subnet returns the i-th /size subnet of base.
func subnet(base netip.Prefix, size, i int) (netip.Prefix, bool) {
	if size < base.Bits() || size > base.Addr().BitLen() {
		return netip.Prefix{}, false
	}
	bits := size - base.Bits()
	if bits < 62 && i >= 1<<bits {
		return netip.Prefix{}, false
	}
	b := base.Addr().AsSlice()
	v := new(big.Int).SetBytes(b)
	off := new(big.Int).Lsh(big.NewInt(int64(i)), uint(base.Addr().BitLen()-size))
	v.Add(v, off)
	out := v.FillBytes(make([]byte, len(b)))
	a, _ := netip.AddrFromSlice(out)
	return netip.PrefixFrom(a, size), true
}

// NIC is one network interface of a node, as the generators write it:
// Proxmox's net<Index>, named eth<Index>.
type NIC struct {
	Index   int
	Name    string // eth<Index>
	Bridge  string
	Address string // with prefix length
	// Gateway is the node's default route through this interface, or "".
	Gateway string
	// Routes are the interface's other routes.
	Routes []Route
}

// Route is a route to To (a CIDR) through Via.
type Route struct{ To, Via string }

// NICs are node n's network interfaces: first its address on
// proxmox.bridge, then spec.nodes[].interfaces in order. The default route
// goes through network.gateway on the first, unless an interface of the
// node has a gateway: then that is the default route, and network.gateway
// is only the first interface's route to network.podCIDR (the pods on the
// workers, which the Proxmox host routes).
func (c *Cluster) NICs(n Node) []NIC {
	s := c.Spec
	first := NIC{Name: "eth0", Bridge: s.Proxmox.Bridge, Address: n.Address, Gateway: s.Network.Gateway}
	nics := []NIC{first}
	for i, f := range n.Interfaces {
		nics = append(nics, NIC{Index: i + 1, Name: fmt.Sprintf("eth%d", i+1), Bridge: f.Bridge, Address: f.Address, Gateway: f.Gateway})
		if f.Gateway != "" && nics[0].Gateway != "" {
			nics[0].Gateway = ""
			nics[0].Routes = []Route{{To: s.Network.PodCIDR, Via: s.Network.Gateway}}
		}
	}
	return nics
}
