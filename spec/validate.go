package spec

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"
)

// Options tune validation.
type Options struct {
	// Artifacts checks that every pinned binary and image exists with its
	// pinned SHA-256. generate does not need the binaries; validate and bake do.
	Artifacts bool
}

var (
	dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	versionRE    = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+$`)
	sha256RE     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// Validate applies defaults and checks the document's meaning. The returned
// Issues hold errors and warnings, sorted by position; use Errors() to decide.
func (d *Document) Validate(o Options) Issues {
	ApplyDefaults(d.Cluster)
	v := &validator{d: d}
	v.run(o)
	v.is.sort()
	return v.is
}

type validator struct {
	d  *Document
	is Issues
}

func (v *validator) errf(path, format string, args ...any) {
	v.is = append(v.is, v.d.at(path, format, args...))
}

func (v *validator) warnf(path, format string, args ...any) {
	i := v.d.at(path, format, args...)
	i.Warning = true
	v.is = append(v.is, i)
}

func (v *validator) prefix(path, s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		v.errf(path, "%q is not a CIDR (like 10.240.0.0/24)", s)
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		v.errf(path, "%s has host bits set; did you mean %s?", s, p.Masked())
		return netip.Prefix{}, false
	}
	return p, true
}

func (v *validator) addr(path, s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		v.errf(path, "%q is not an IP address", s)
		return netip.Addr{}, false
	}
	return a, true
}

func (v *validator) run(o Options) {
	c := v.d.Cluster
	s := &c.Spec
	if !dns1123Label.MatchString(c.Metadata.Name) || len(c.Metadata.Name) > 63 {
		v.errf("metadata.name", "%q is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)", c.Metadata.Name)
	}
	if !versionRE.MatchString(s.KubernetesVersion) {
		v.errf("spec.kubernetesVersion", "%q is not a version like v1.34.2", s.KubernetesVersion)
	}
	for _, dn := range []struct{ path, val string }{{"spec.domain", s.Domain}, {"spec.clusterDomain", s.ClusterDomain}} {
		if !isDNSName(dn.val) {
			v.errf(dn.path, "%q is not a DNS name", dn.val)
		}
	}

	// Network.
	n := s.Network
	nodeNet, okNode := v.prefix("spec.network.nodeCIDR", n.NodeCIDR)
	podNet, okPod := v.prefix("spec.network.podCIDR", n.PodCIDR)
	svcNet, okSvc := v.prefix("spec.network.serviceCIDR", n.ServiceCIDR)
	nets := []struct {
		path string
		p    netip.Prefix
		ok   bool
	}{{"spec.network.nodeCIDR", nodeNet, okNode}, {"spec.network.podCIDR", podNet, okPod}, {"spec.network.serviceCIDR", svcNet, okSvc}}
	for i := range nets {
		for j := i + 1; j < len(nets); j++ {
			if nets[i].ok && nets[j].ok && nets[i].p.Overlaps(nets[j].p) {
				v.errf(nets[j].path, "%s overlaps %s %s", nets[j].p, strings.TrimPrefix(nets[i].path, "spec.network."), nets[i].p)
			}
		}
	}
	if gw, ok := v.addr("spec.network.gateway", n.Gateway); ok && okNode && !nodeNet.Contains(gw) {
		v.errf("spec.network.gateway", "%s is outside nodeCIDR %s", gw, nodeNet)
	}
	for i, d := range n.DNS {
		v.addr(fmt.Sprintf("spec.network.dns[%d]", i), d)
	}
	if okSvc {
		if dnsIP, ok := v.addr("spec.network.clusterDNS", n.ClusterDNS); ok {
			switch {
			case !svcNet.Contains(dnsIP):
				v.errf("spec.network.clusterDNS", "%s is outside serviceCIDR %s", dnsIP, svcNet)
			case dnsIP == svcNet.Addr().Next():
				v.errf("spec.network.clusterDNS", "%s is the kubernetes service's address; pick another", dnsIP)
			}
		}
		if svcNet.Bits() > 30 || (svcNet.Addr().Is6() && svcNet.Bits() < 108) || (svcNet.Addr().Is4() && svcNet.Bits() < 12) {
			v.errf("spec.network.serviceCIDR", "%s: prefix length must be /12 to /30 for IPv4 (/108 or longer for IPv6)", svcNet)
		}
	}
	workers := c.NodesWith(RoleWorker)
	if okPod {
		m := n.PodCIDRMaskSize
		switch {
		case m < podNet.Bits() || m > podNet.Addr().BitLen()-2:
			v.errf("spec.network.podCIDRMaskSize", "%d must be between %d (the podCIDR's prefix) and %d", m, podNet.Bits(), podNet.Addr().BitLen()-2)
		case m-podNet.Bits() < 31 && len(workers) > 1<<(m-podNet.Bits()):
			v.errf("spec.network.podCIDRMaskSize", "/%d gives %s only %d pod CIDRs for %d workers", m, podNet, 1<<(m-podNet.Bits()), len(workers))
		}
	}

	// API server.
	a := s.APIServer
	if a.Port < 1 || a.Port > 65535 {
		v.errf("spec.apiServer.port", "%d is not a TCP port", a.Port)
	}
	var vip netip.Addr
	if a.VIP != "" {
		if ip, ok := v.addr("spec.apiServer.vip", a.VIP); ok {
			vip = ip
			if okNode && !nodeNet.Contains(ip) {
				v.errf("spec.apiServer.vip", "%s is outside nodeCIDR %s", ip, nodeNet)
			}
		}
		if len(c.NodesWith(RoleLB)) == 0 {
			v.errf("spec.apiServer.vip", "a VIP needs at least one node with role lb to hold it")
		}
	}
	for i, san := range a.ExtraSANs {
		if _, err := netip.ParseAddr(san); err != nil && !isDNSName(strings.TrimPrefix(san, "*.")) {
			v.errf(fmt.Sprintf("spec.apiServer.extraSANs[%d]", i), "%q is neither an IP address nor a DNS name", san)
		}
	}

	// PKI.
	caV, okCA := v.duration("spec.pki.caValidity", s.PKI.CAValidity)
	leafV, okLeaf := v.duration("spec.pki.certValidity", s.PKI.CertValidity)
	if okCA && okLeaf && leafV > caV {
		v.errf("spec.pki.certValidity", "%s outlives the CAs (caValidity %s); a leaf cannot be valid longer than its CA", s.PKI.CertValidity, s.PKI.CAValidity)
	}

	// SSH.
	for i, k := range s.SSH.AuthorizedKeys {
		f := strings.Fields(k)
		if len(f) < 2 || !(strings.HasPrefix(f[0], "ssh-") || strings.HasPrefix(f[0], "ecdsa-") || strings.HasPrefix(f[0], "sk-")) {
			v.errf(fmt.Sprintf("spec.ssh.authorizedKeys[%d]", i), "not an OpenSSH public key (expected \"ssh-ed25519 AAAA... comment\")")
		}
	}
	if p := s.SSH.BastionPort; p < 1 || p > 65535 {
		v.errf("spec.ssh.bastionPort", "%d is not a TCP port", p)
	}

	v.nodes(nodeNet, okNode, vip)
	v.binaries(o)
}

func (v *validator) duration(path, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		v.errf(path, "%q is not a positive duration (like 8760h)", s)
		return 0, false
	}
	return d, true
}

func (v *validator) nodes(nodeNet netip.Prefix, okNode bool, vip netip.Addr) {
	c := v.d.Cluster
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	vmids := map[int]int{}
	for i, n := range c.Spec.Nodes {
		p := fmt.Sprintf("spec.nodes[%d]", i)
		if !dns1123Label.MatchString(n.Name) || len(n.Name) > 63 {
			v.errf(p+".name", "%q is not a DNS-1123 label (lower-case letters, digits and '-', at most 63)", n.Name)
		} else if j, dup := names[n.Name]; dup {
			v.errf(p+".name", "%q is already the name of spec.nodes[%d]", n.Name, j)
		} else {
			names[n.Name] = i
		}
		if len(n.Roles) == 0 {
			v.errf(p+".roles", "a node needs at least one role")
		}
		if n.Has(RoleLB) && n.Has(RoleController) {
			v.errf(p+".roles", "%s cannot be both lb and controller: HAProxy and kube-apiserver would both listen on port %d", n.Name, v.d.Cluster.Spec.APIServer.Port)
		}
		seenRole := map[string]bool{}
		for k, r := range n.Roles {
			if seenRole[r] {
				v.errf(fmt.Sprintf("%s.roles[%d]", p, k), "role %q is listed twice", r)
			}
			seenRole[r] = true
		}
		if pfx, err := netip.ParsePrefix(n.Address); err != nil {
			v.errf(p+".address", "%q is not an address with prefix length (like 10.240.0.11/24)", n.Address)
		} else if okNode {
			ip := pfx.Addr()
			switch {
			case !nodeNet.Contains(ip):
				v.errf(p+".address", "%s is outside nodeCIDR %s", ip, nodeNet)
			case pfx.Bits() != nodeNet.Bits():
				v.errf(p+".address", "prefix length /%d differs from nodeCIDR's /%d", pfx.Bits(), nodeNet.Bits())
			case ip == nodeNet.Addr():
				v.errf(p+".address", "%s is the network address of nodeCIDR", ip)
			case ip == vip:
				v.errf(p+".address", "%s is the API VIP; a node cannot own it", ip)
			case n.Address != "" && addrs[ip] > 0:
				v.errf(p+".address", "%s is used by %s too", ip, c.Spec.Nodes[addrs[ip]-1].Name)
			}
			if addrs[ip] == 0 {
				addrs[ip] = i + 1
			}
		}
		if n.VMID < 100 || n.VMID > 999999999 {
			v.errf(p+".vmid", "%d is not a Proxmox VM id (100 to 999999999)", n.VMID)
		} else if j, dup := vmids[n.VMID]; dup {
			v.errf(p+".vmid", "%d is used by %s too", n.VMID, c.Spec.Nodes[j].Name)
		} else {
			vmids[n.VMID] = i
		}
		if n.Cores < 1 {
			v.errf(p+".cores", "must be at least 1")
		}
		if n.MemoryMiB < 128 {
			v.errf(p+".memoryMiB", "%d MiB is too little to boot", n.MemoryMiB)
		}
		if n.SwapMiB < 0 {
			v.errf(p+".swapMiB", "must not be negative")
		}
		if n.DiskGiB < 1 {
			v.errf(p+".diskGiB", "must be at least 1")
		}
		if n.Target != TargetKVM {
			for _, f := range []string{"boot", "ignitionVariant"} {
				if v.d.Has(p + "." + f) {
					v.errf(p+"."+f, "applies to kvm nodes only; %s is %s", n.Name, n.Target)
				}
			}
		} else if n.Boot != "ignition" && v.d.Has(p+".ignitionVariant") {
			v.errf(p+".ignitionVariant", "applies only with boot: ignition")
		}
	}
	if len(c.Spec.Nodes) == 0 {
		v.errf("spec.nodes", "the cluster has no nodes")
		return
	}
	if len(c.NodesWith(RoleController)) == 0 {
		v.errf("spec.nodes", "no node has role controller; a cluster needs at least one")
	}
	etcd := c.NodesWith(RoleEtcd)
	switch {
	case len(etcd) == 0:
		v.errf("spec.nodes", "no node has role etcd; give it to dedicated nodes or stack it on the controllers")
	case len(etcd)%2 == 0:
		v.warnf("spec.nodes", "%d etcd members: an even count tolerates no more failures than %d; use an odd number", len(etcd), len(etcd)-1)
	}
	if c.Spec.APIServer.VIP == "" {
		for i, n := range c.Spec.Nodes {
			if n.Has(RoleLB) {
				v.errf(fmt.Sprintf("spec.nodes[%d].roles", i), "%s has role lb but spec.apiServer.vip is not set", n.Name)
			}
		}
	}
}

func (v *validator) binaries(o Options) {
	s := v.d.Cluster.Spec
	names := make([]string, 0, len(s.Binaries.SHA256))
	for name := range s.Binaries.SHA256 {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := "spec.binaries.sha256." + name
		want := s.Binaries.SHA256[name]
		if !sha256RE.MatchString(want) {
			v.errf(p, "%q is not a SHA-256 in lower-case hex (64 characters)", want)
			continue
		}
		if name != filepath.Base(name) || name == "." || name == ".." {
			v.errf(p, "%q must be a plain file name inside binaries.dir", name)
			continue
		}
		if s.Binaries.Mode != ModeUpstream || !o.Artifacts {
			continue
		}
		file := filepath.Join(v.d.Dir, s.Binaries.Dir, name)
		got, err := fileSHA256(file)
		switch {
		case err != nil:
			v.errf(p, "%s: %v", file, unwrapPathError(err))
		case got != want:
			v.errf(p, "%s has SHA-256 %s, the spec pins %s", file, got, want)
		}
	}
	if o.Artifacts {
		for i, img := range s.Images {
			file := filepath.Join(v.d.Dir, img)
			if _, err := os.Stat(file); err != nil {
				v.errf(fmt.Sprintf("spec.images[%d]", i), "%s: %v", file, unwrapPathError(err))
			}
		}
	}
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// FileSHA256 returns the hex SHA-256 of a file.
func fileSHA256(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func isDNSName(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, l := range strings.Split(s, ".") {
		if !dns1123Label.MatchString(l) || len(l) > 63 {
			return false
		}
	}
	return true
}
