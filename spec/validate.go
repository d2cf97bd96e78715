package spec

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net/netip"
	"os"
	"path"
	"path/filepath"
	"slices"
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

// fieldRules is the rule of every string of the spec that is not an enum:
// nothing a spec says reaches a file, a unit, a script or a path unchecked.
// Keys are field paths with [] for any list item, .* for any map value and
// .(key) for any map key. The other fields are checked while parsing, by
// their tags in types.go: the enums (apiVersion, kind, pki.algorithm,
// encryption.provider, binaries.mode, nodes[].roles, target, boot,
// ignitionVariant, roleImage) and every integer's range (ports, vmid, sizes,
// podCIDRMaskSize). TestFieldRules keeps the table complete; the reference
// (docs/spec.md) prints each rule.
var fieldRules = map[string]rule{
	"metadata.name":                     ruleDNSLabel,
	"spec.kubernetesVersion":            ruleKubernetesVersion,
	"spec.domain":                       ruleDNSName,
	"spec.clusterDomain":                ruleDNSName,
	"spec.network.nodeCIDR":             ruleCIDR,
	"spec.network.gateway":              ruleIP,
	"spec.network.dns[]":                ruleIP,
	"spec.network.podCIDR":              ruleCIDR,
	"spec.network.serviceCIDR":          ruleCIDR,
	"spec.network.clusterDNS":           ruleIP,
	"spec.apiServer.vip":                optional(ruleIP),
	"spec.apiServer.extraSANs[]":        ruleSAN,
	"spec.pki.caValidity":               ruleDuration,
	"spec.pki.certValidity":             ruleDuration,
	"spec.binaries.dir":                 ruleDir,
	"spec.binaries.sha256.(key)":        ruleFileName,
	"spec.binaries.sha256.*":            ruleSHA256,
	"spec.images[]":                     ruleImage,
	"spec.ssh.authorizedKeys[]":         ruleSSHKey,
	"spec.proxmox.bridge":               ruleBridge,
	"spec.proxmox.storage":              ruleStorage,
	"spec.proxmox.templateStorage":      ruleStorage,
	"spec.proxmox.snippetsStorage":      ruleStorage,
	"spec.ignition.url":                 optional(ruleURL),
	"spec.ignition.images.(key)":        ruleIgnitionVariant,
	"spec.ignition.images.*":            ruleDiskImage,
	"spec.nodes[].name":                 ruleDNSLabel,
	"spec.nodes[].address":              ruleAddress,
	"spec.nodes[].interfaces[].bridge":  ruleBridge,
	"spec.nodes[].interfaces[].address": ruleAddress,
	"spec.nodes[].interfaces[].gateway": optional(ruleIP),
}

// Validate applies defaults and checks the document's meaning. The returned
// Issues hold errors and warnings, sorted by position; use Errors() to decide.
func (d *Document) Validate(o Options) Issues {
	zeros := d.explicitZeros()
	ApplyDefaults(d.Cluster)
	v := &validator{d: d}
	v.reportDefaulted(zeros)
	v.bad = v.checkFields()
	v.run(o)
	v.acknowledge()
	v.is.sort()
	return v.is
}

type validator struct {
	d   *Document
	is  Issues
	bad map[string]bool // paths whose value broke its fieldRules rule
}

func (v *validator) errf(path, format string, args ...any) {
	v.is = append(v.is, v.d.at(path, format, args...))
}

// warnf reports a warning that a spec cannot acknowledge (see warn).
func (v *validator) warnf(path, format string, args ...any) {
	v.warn("", path, format, args...)
}

// prefix and addr parse values that fieldRules checked; ok is false when
// the check failed (and was reported).
func prefix(s string) (netip.Prefix, bool) {
	p, err := netip.ParsePrefix(s)
	return p, err == nil && p.Masked() == p
}

// addr parses an IP address. An IPv6 zone (fe80::1%eth0) is refused: it is
// free text that would reach config files, and no address of a cluster
// needs one.
func addr(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Zone() == ""
}

// reserved names the address of p that no host may take that a is, or "".
func reserved(p netip.Prefix, a netip.Addr) string {
	switch {
	case a == p.Addr():
		return "the network address"
	case a == broadcast(p):
		return "the broadcast address"
	}
	return ""
}

// broadcast is the last address of an IPv4 prefix up to /30; IPv6, /31 and
// /32 have none (the zero Addr).
func broadcast(p netip.Prefix) netip.Addr {
	if !p.Addr().Is4() || p.Bits() > 30 {
		return netip.Addr{}
	}
	b := p.Addr().As4()
	u := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], u)
	return netip.AddrFrom4(b)
}

func (v *validator) run(o Options) {
	c := v.d.Cluster
	s := &c.Spec

	// Network.
	n := s.Network
	nodeNet, okNode := prefix(n.NodeCIDR)
	podNet, okPod := prefix(n.PodCIDR)
	svcNet, okSvc := prefix(n.ServiceCIDR)
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
	gw, okGW := addr(n.Gateway)
	if okGW && okNode {
		switch {
		case !nodeNet.Contains(gw):
			v.errf("spec.network.gateway", "%s is outside nodeCIDR %s", gw, nodeNet)
		case reserved(nodeNet, gw) != "":
			v.errf("spec.network.gateway", "%s is %s of nodeCIDR %s", gw, reserved(nodeNet, gw), nodeNet)
		}
	}
	if okSvc {
		if dnsIP, ok := addr(n.ClusterDNS); ok {
			switch {
			case !svcNet.Contains(dnsIP):
				v.errf("spec.network.clusterDNS", "%s is outside serviceCIDR %s", dnsIP, svcNet)
			case reserved(svcNet, dnsIP) != "":
				v.errf("spec.network.clusterDNS", "%s is %s of serviceCIDR %s", dnsIP, reserved(svcNet, dnsIP), svcNet)
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
	var vip netip.Addr
	if s.APIServer.VIP != "" {
		if ip, ok := addr(s.APIServer.VIP); ok {
			vip = ip
			switch {
			case !okNode:
			case !nodeNet.Contains(ip):
				v.errf("spec.apiServer.vip", "%s is outside nodeCIDR %s", ip, nodeNet)
			case reserved(nodeNet, ip) != "":
				v.errf("spec.apiServer.vip", "%s is %s of nodeCIDR %s", ip, reserved(nodeNet, ip), nodeNet)
			case okGW && ip == gw:
				v.errf("spec.apiServer.vip", "%s is network.gateway, the Proxmox host's address on the bridge", ip)
			}
		}
		if len(c.NodesWith(RoleLB)) == 0 {
			v.errf("spec.apiServer.vip", "a VIP needs at least one node with role lb to hold it")
		}
	}

	// PKI.
	caV, okCA := v.validity("spec.pki.caValidity", s.PKI.CAValidity)
	leafV, okLeaf := v.validity("spec.pki.certValidity", s.PKI.CertValidity)
	if okCA && okLeaf && leafV > caV {
		v.errf("spec.pki.certValidity", "%s outlives the CAs (caValidity %s); a leaf cannot be valid longer than its CA", s.PKI.CertValidity, s.PKI.CAValidity)
	}

	v.nodes(nodeNet, okNode, gw, vip)
	v.ports()
	v.binaries(o)
	v.images(o)
}

// Certificate lifetimes: below minValidity (1h, as the message says)
// nothing works for long enough to be useful; below warnValidity the
// certificates need renewing that often.
const (
	minValidity  = time.Hour
	warnValidity = 30 * 24 * time.Hour
)

func isPositiveDuration(s string) bool {
	d, err := time.ParseDuration(s)
	return err == nil && d > 0
}

// validity returns a lifetime that fieldRules checked, reporting one too short.
func (v *validator) validity(path, s string) (time.Duration, bool) {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, false
	}
	switch {
	case d < minValidity:
		v.errf(path, "%s is shorter than 1h: certificates would expire before the cluster is up", s)
		return 0, false
	case d < warnValidity:
		v.warn(WarnShortValidity, path, "%s is less than 30 days (720h): the certificates need renewing (hardway certs renew) that often", s)
	}
	return d, true
}

// roleImage checks node n's roleImage (at path p): a role image serves KVM
// nodes booted by cloud-init, and carries the binaries of the roles of the
// nodes that have its role, n's among them only if n has it.
func (v *validator) roleImage(p string, n Node) {
	switch {
	case n.RoleImage == "":
	case n.Target != TargetKVM:
		v.errf(p+".roleImage", "applies to kvm nodes only; %s is %s (an LXC node boots from its own template)", n.Name, n.Target)
	case n.BootsByIgnition():
		v.errf(p+".roleImage", "applies only with boot: cloud-init; %s boots by Ignition, from its distribution's image", n.Name)
	case !n.Has(n.RoleImage):
		v.errf(p+".roleImage", "%s is not one of %s's roles (%s): the %s role image is baked for the nodes with that role", n.RoleImage, n.Name, strings.Join(n.Roles, ", "), n.RoleImage)
	}
}

func (v *validator) nodes(nodeNet netip.Prefix, okNode bool, gw, vip netip.Addr) {
	c := v.d.Cluster
	names := map[string]int{}
	addrs := map[netip.Addr]int{}
	vmids := map[int]int{}
	extra := map[netip.Addr]string{} // interfaces' addresses: their node
	for i, n := range c.Spec.Nodes {
		p := fmt.Sprintf("spec.nodes[%d]", i)
		if !v.bad[p+".name"] {
			if j, dup := names[n.Name]; dup {
				v.errf(p+".name", "%q is already the name of spec.nodes[%d]", n.Name, j)
			} else {
				names[n.Name] = i
			}
			if fqdn := c.FQDN(n); len(fqdn) > 253 && !v.bad["spec.domain"] {
				v.errf(p+".name", "the FQDN %s.<domain> is %d characters; a DNS name has at most 253", n.Name, len(fqdn))
			}
		}
		if len(n.Roles) == 0 {
			v.errf(p+".roles", "a node needs at least one role")
		}
		seenRole := map[string]bool{}
		for k, r := range n.Roles {
			if seenRole[r] {
				v.errf(fmt.Sprintf("%s.roles[%d]", p, k), "role %q is listed twice", r)
			}
			seenRole[r] = true
		}
		if pfx, err := netip.ParsePrefix(n.Address); err == nil && okNode {
			ip := pfx.Addr()
			switch {
			case !nodeNet.Contains(ip):
				v.errf(p+".address", "%s is outside nodeCIDR %s", ip, nodeNet)
			case pfx.Bits() != nodeNet.Bits():
				v.errf(p+".address", "prefix length /%d differs from nodeCIDR's /%d", pfx.Bits(), nodeNet.Bits())
			case reserved(nodeNet, ip) != "":
				v.errf(p+".address", "%s is %s of nodeCIDR %s", ip, reserved(nodeNet, ip), nodeNet)
			case ip == gw:
				v.errf(p+".address", "%s is network.gateway, the Proxmox host's address on the bridge", ip)
			case ip == vip:
				v.errf(p+".address", "%s is the API VIP; a node cannot own it", ip)
			case addrs[ip] > 0:
				v.errf(p+".address", "%s is used by %s too", ip, c.Spec.Nodes[addrs[ip]-1].Name)
			}
			if addrs[ip] == 0 {
				addrs[ip] = i + 1
			}
		}
		v.interfaces(p, n, nodeNet, okNode, extra)
		if j, dup := vmids[n.VMID]; dup {
			v.errf(p+".vmid", "%d is used by %s too", n.VMID, c.Spec.Nodes[j].Name)
		} else {
			vmids[n.VMID] = i
		}
		if n.Target != TargetKVM {
			for _, f := range []string{"boot", "ignitionVariant"} {
				if v.d.Has(p + "." + f) {
					v.errf(p+"."+f, "applies to kvm nodes only; %s is %s", n.Name, n.Target)
				}
			}
		} else if !n.BootsByIgnition() && v.d.Has(p+".ignitionVariant") {
			v.errf(p+".ignitionVariant", "applies only with boot: ignition")
		}
		v.roleImage(p, n)
		v.ignitionNode(p, n)
		if n.Target == TargetKVM && n.SwapMiB > 0 {
			v.errf(p+".swapMiB", "applies to lxc nodes only (a container's swap limit); %s is kvm, whose swap is the guest's own", n.Name)
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
		v.warn(WarnEvenEtcd, "spec.nodes", "%d etcd members: an even count tolerates no more failures than %d; use an odd number", len(etcd), len(etcd)-1)
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
	if !o.Artifacts || v.bad["spec.binaries.dir"] {
		return
	}
	names := make([]string, 0, len(s.Binaries.SHA256))
	for name := range s.Binaries.SHA256 {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := join("spec.binaries.sha256", name)
		if v.bad[p] {
			continue
		}
		want := s.Binaries.SHA256[name]
		file := filepath.Join(v.d.BinariesDir(), name)
		got, err := fileSHA256(file)
		switch {
		case err != nil:
			v.errf(p, "%s: %v", file, unwrapPathError(err))
		case got != want:
			v.errf(p, "%s has SHA-256 %s, the spec pins %s", file, got, want)
		}
	}
}

// images checks that the image archives have distinct file names (they
// share one directory on the workers) and, with o.Artifacts, exist and
// name the images a cluster with workers needs (requiredImages).
func (v *validator) images(o Options) {
	seen := map[string]int{}
	// The references the archives name; known once every one was read.
	refs, known := map[string]bool{}, o.Artifacts
	for i, img := range v.d.Cluster.Spec.Images {
		p := fmt.Sprintf("spec.images[%d]", i)
		if v.bad[p] {
			known = false
			continue
		}
		base := path.Base(img)
		if j, dup := seen[base]; dup {
			v.errf(p, "%s is also the file name of spec.images[%d]; the workers keep them in one directory", base, j)
			known = false
			continue
		}
		seen[base] = i
		if !o.Artifacts {
			continue
		}
		file := filepath.Join(v.d.Dir, img)
		err := regularFile(file)
		if errors.Is(err, fs.ErrNotExist) {
			// Not built yet: generate does not need it, bake refuses
			// to make a worker without it.
			v.warnf(p, "%s: no such file yet: bake needs it for the workers (`make images` builds the archives hardway's references name)", file)
			known = false
			continue
		}
		var names []string
		if err == nil {
			names, err = ArchiveRefs(file)
		}
		if err != nil {
			v.errf(p, "%s: %v", file, unwrapPathError(err))
			known = false
			continue
		}
		for _, r := range names {
			refs[r] = true
		}
	}
	v.requiredImages(refs, known)
}

// regularFile checks that path is a regular file (not a FIFO or a device,
// which would block or never end a read).
func regularFile(file string) error {
	fi, err := os.Stat(file)
	if err != nil {
		return unwrapPathError(err)
	}
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("not a regular file (%s)", fileKind(fi.Mode()))
	}
	return nil
}

func unwrapPathError(err error) error {
	if pe, ok := err.(*os.PathError); ok {
		return pe.Err
	}
	return err
}

// fileSHA256 returns the hex SHA-256 of a regular file.
func fileSHA256(path string) (string, error) {
	if err := regularFile(path); err != nil {
		return "", err
	}
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

// maxInterfaces bounds a node's interfaces beyond the first: net1 to net9.
const maxInterfaces = 9

// interfaces checks node n's interfaces beyond the first, at path p. Each
// is on a bridge of its own, in a network apart from nodeCIDR and from the
// node's other interfaces (a route there would be ambiguous), at an address
// no other interface has; at most one has a gateway, the node's default
// route. Ignition nodes take none: their network file holds one interface.
func (v *validator) interfaces(p string, n Node, nodeNet netip.Prefix, okNode bool, seen map[netip.Addr]string) {
	if len(n.Interfaces) == 0 {
		return
	}
	if n.BootsByIgnition() {
		v.errf(p+".interfaces", "%s boots by Ignition, whose network hardway writes for one interface; extra interfaces need boot: cloud-init or target: lxc", n.Name)
	}
	if len(n.Interfaces) > maxInterfaces {
		v.errf(p+".interfaces", "%d interfaces; at most %d beyond the first (net1 to net%d)", len(n.Interfaces), maxInterfaces, maxInterfaces)
	}
	bridges := map[string]string{v.d.Cluster.Spec.Proxmox.Bridge: "spec.proxmox.bridge, the node's first interface"}
	nets := map[string]netip.Prefix{}
	gateway := ""
	for k, f := range n.Interfaces {
		q := fmt.Sprintf("%s.interfaces[%d]", p, k)
		if !v.bad[q+".bridge"] {
			if was, dup := bridges[f.Bridge]; dup {
				v.errf(q+".bridge", "%s is already the bridge of %s; each interface has a bridge of its own", f.Bridge, was)
			} else {
				bridges[f.Bridge] = fmt.Sprintf("interfaces[%d]", k)
			}
		}
		pfx, err := netip.ParsePrefix(f.Address)
		if v.bad[q+".address"] || err != nil {
			continue
		}
		ip, net := pfx.Addr(), pfx.Masked()
		other := ""
		for _, name := range slices.Sorted(maps.Keys(nets)) {
			if nets[name].Overlaps(net) {
				other = name
				break
			}
		}
		switch {
		case okNode && net.Overlaps(nodeNet):
			v.errf(q+".address", "%s overlaps nodeCIDR %s; the node's address there is spec.nodes[].address", net, nodeNet)
		case other != "":
			v.errf(q+".address", "%s overlaps %s's %s; each interface has a network of its own", net, other, nets[other])
		case reserved(net, ip) != "":
			v.errf(q+".address", "%s is %s of %s", ip, reserved(net, ip), net)
		case seen[ip] != "":
			v.errf(q+".address", "%s is used by an interface of %s too", ip, seen[ip])
		}
		nets[fmt.Sprintf("interfaces[%d]", k)] = net
		if seen[ip] == "" {
			seen[ip] = n.Name
		}
		if f.Gateway == "" || v.bad[q+".gateway"] {
			continue
		}
		g, _ := addr(f.Gateway)
		switch {
		case gateway != "":
			v.errf(q+".gateway", "%s already has its default route through %s; only one interface of a node has a gateway", n.Name, gateway)
		case !net.Contains(g):
			v.errf(q+".gateway", "%s is outside the interface's network %s", g, net)
		case g == ip:
			v.errf(q+".gateway", "%s is the interface's own address", g)
		}
		if gateway == "" {
			gateway = fmt.Sprintf("interfaces[%d]", k)
		}
	}
}
