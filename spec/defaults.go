package spec

import "net/netip"

// Role names.
const (
	RoleEtcd       = "etcd"
	RoleController = "controller"
	RoleWorker     = "worker"
	RoleLB         = "lb"
	RoleGateway    = "gateway"
)

// Target names.
const (
	TargetLXC = "lxc"
	TargetKVM = "kvm"
)

// Boot modes (Node.Boot): how a kvm node receives its configuration at
// first boot. An lxc node has none.
const (
	BootCloudInit = "cloud-init" // a NoCloud seed, into a Debian base image
	BootIgnition  = "ignition"   // Ignition, into its distribution's image
)

// Ignition variants (Node.Ignition): the distribution of a node booted by
// Ignition.
const (
	IgnitionFCOS    = "fcos"    // Fedora CoreOS
	IgnitionFlatcar = "flatcar" // Flatcar Container Linux
)

// Binary modes.
const (
	ModeUpstream = "upstream"
	ModePackaged = "packaged"
)

// ApplyDefaults fills every unset field. It is the only place defaults live;
// `hardway validate --show-defaults` prints its result. It never fails:
// values it cannot derive (from an invalid CIDR, say) stay empty, and
// Validate reports the field they would come from.
func ApplyDefaults(c *Cluster) {
	s := &c.Spec
	setStr(&s.Domain, "example.com")
	setStr(&s.ClusterDomain, "cluster.local")

	n := &s.Network
	if n.Gateway == "" {
		if p, err := netip.ParsePrefix(n.NodeCIDR); err == nil {
			n.Gateway = p.Masked().Addr().Next().String()
		}
	}
	if _, err := netip.ParseAddr(n.Gateway); len(n.DNS) == 0 && err == nil {
		n.DNS = []string{n.Gateway}
	}
	setStr(&n.PodCIDR, "10.200.0.0/16")
	setInt(&n.PodCIDRMaskSize, 24)
	setStr(&n.ServiceCIDR, "10.32.0.0/24")
	if n.ClusterDNS == "" {
		if p, err := netip.ParsePrefix(n.ServiceCIDR); err == nil {
			if a, ok := nthAddr(p.Masked(), 10); ok {
				n.ClusterDNS = a.String()
			}
		}
	}

	setInt(&s.APIServer.Port, 6443)
	setStr(&s.PKI.Algorithm, "ecdsa-p256")
	setStr(&s.PKI.CAValidity, "87600h")
	setStr(&s.PKI.CertValidity, "8760h")
	setStr(&s.Encryption.Provider, "aescbc")
	setStr(&s.Binaries.Mode, ModeUpstream)
	setStr(&s.Binaries.Dir, "artifacts")
	setInt(&s.SSH.BastionPort, 7022)

	setStr(&s.Proxmox.Bridge, "vmbr0")
	setStr(&s.Proxmox.Storage, "local-lvm")
	setStr(&s.Proxmox.TemplateStorage, "local")
	setStr(&s.Proxmox.SnippetsStorage, "local")

	for i := range s.Nodes {
		nd := &s.Nodes[i]
		cores, mem, disk := 1, 1024, 10
		switch {
		case nd.Has(RoleWorker):
			cores, mem, disk = 4, 4096, 20
		case nd.Has(RoleController):
			cores, mem = 2, 2048
		}
		setInt(&nd.Cores, cores)
		setInt(&nd.MemoryMiB, mem)
		setInt(&nd.DiskGiB, disk)
		if nd.Target == TargetKVM {
			setStr(&nd.Boot, BootCloudInit)
			if nd.Boot == BootIgnition {
				setStr(&nd.Ignition, IgnitionFCOS)
			}
		}
	}
}

func setStr(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func setInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

// nthAddr returns the n-th address of a prefix (0 is the network address).
func nthAddr(p netip.Prefix, n int) (netip.Addr, bool) {
	a := p.Addr()
	for i := 0; i < n; i++ {
		a = a.Next()
		if !a.IsValid() || !p.Contains(a) {
			return netip.Addr{}, false
		}
	}
	return a, true
}
