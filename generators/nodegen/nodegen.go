// Package nodegen is what every role generator shares: the generation context
// (spec, PKI, derived values), the node paths, and helpers that place units,
// certificates and kubeconfigs in a tree. Role generators live in sibling packages.
package nodegen

import (
	"crypto/sha256"
	"fmt"
	"io/fs"
	"net/netip"
	"path"
	"strconv"
	"sync"

	"github.com/hardway-dev/hardway/kubeconfig"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/templates"
	"github.com/hardway-dev/hardway/tree"
)

// Paths on the nodes (the seed's upstream layout, kept for both binary modes).
const (
	KubeDir    = "/var/lib/kubernetes" // control-plane certs, kubeconfigs and configs
	EtcdDir    = "/etc/etcd"           // etcd member certs
	EtcdData   = "/var/lib/etcd"
	KubeletDir = "/var/lib/kubelet"
	ProxyDir   = "/var/lib/kube-proxy"
	CNIConfDir = "/etc/cni/net.d"
)

// Context is everything a generator may read. Generators are pure: same
// Context and node, same tree.
type Context struct {
	C        *spec.Cluster
	PKI      *pki.Bundle
	PodCIDRs map[string]netip.Prefix // worker name → pinned pod CIDR

	checked  sync.Once // Check's result, computed once
	checkErr error

	// kubeconfig.Set by name, made once: every worker asks for its own
	// row, and the set has a row per worker.
	kubeconfigsOnce sync.Once
	kubeconfigs     map[string]kubeconfig.Kubeconfig

	indexOnce sync.Once
	index     map[string]int // node name → position in spec.nodes

	view views // what View needs, made once (view.go)
}

// Index returns the position in spec.nodes of the node called name. What a
// generator asks of other nodes for every node goes through it (or another
// answer made once per Context): a search of the node list per node would
// make a cluster's generation quadratic in its nodes.
func (x *Context) Index(name string) (int, bool) {
	x.indexOnce.Do(func() { x.index = x.C.Index() })
	i, ok := x.index[name]
	return i, ok
}

// New builds a Context.
func New(c *spec.Cluster, b *pki.Bundle) *Context {
	return &Context{C: c, PKI: b, PodCIDRs: c.PodCIDRs()}
}

// File is a cluster-level output (relative to the cluster directory), such as
// manifests/ or proxmox/.
type File struct {
	Path string
	Mode fs.FileMode
	Data []byte
	Node string // the node it belongs to, if any
	Kind string // manifest kind, e.g. "manifest", "proxmox"
}

// SysextDir is where the systemd-sysext image of a node booted by Ignition
// (spec.Node.Sysext, hardway bake --format sysext) puts what it carries:
// bin/ the pinned binaries, cni/ the CNI plugins, images/ the image
// archives. systemd-sysext merges the image's /usr over the node's at boot
// (only /usr: Flatcar's /usr/local and /opt are not the image's to give).
const SysextDir = "/usr/lib/hardway"

// SysextName is the name of that image: its file on the node is
// SysextPath, and its extension-release file (which systemd-sysext
// requires) /usr/lib/extension-release.d/extension-release.<SysextName>.
const (
	SysextName = "hardway"
	SysextPath = "/var/lib/extensions/" + SysextName + ".raw"
)

// Distributed are the binaries binaries.mode packaged takes from the
// distribution's packages in the base, under /usr/bin, with the Debian 12
// package that has them ("": none; an optional tool then stays out).
// Everything else (Kubernetes, which no distribution packages at its
// release's pace: Debian 12 has only kubernetes-client 1.20) is the pinned
// release, baked under /usr/local/bin as in upstream mode.
var Distributed = map[string]string{
	"containerd":              "containerd",
	"containerd-shim-runc-v2": "containerd",
	"ctr":                     "containerd",
	"runc":                    "runc",
	"etcd":                    "etcd-server",
	"etcdctl":                 "etcd-client",
	"etcdutl":                 "",
}

// FromBase reports whether binary name comes from the base's packages rather
// than from binaries.dir: in binaries.mode packaged, the Distributed ones.
func (x *Context) FromBase(name string) bool {
	_, ok := Distributed[name]
	return ok && x.C.Spec.Binaries.Mode == spec.ModePackaged
}

// The directories of a node's binaries (Bin): the pinned files hardway
// bakes, and the distribution's packages.
const (
	PinnedBinDir = "/usr/local/bin"
	DistBinDir   = "/usr/bin"
)

// Binary is one row of a role's table of pinned files (the Binaries of its
// generator package): a file of binaries.dir the role needs, and where bake
// puts it on the node. The role's package owns the table because its units
// are what start the files; bake only installs them (in binaries.mode
// packaged, leaving out the ones the base's packages provide).
type Binary struct {
	Name     string // file name in binaries.dir, key of binaries.sha256, name on the node
	Dir      string // directory on the node: PinnedBinDir (where Bin finds it) unless what runs it looks elsewhere
	Optional bool   // an operator's tool: installed when pinned, else left out
}

// Bin is the path of a binary on node n: /usr/local/bin for a pinned file
// (hardway bakes it there: every binary in upstream mode, Kubernetes in
// packaged mode), /usr/bin for one the distribution's packages provide
// (FromBase), SysextDir/bin on a node booted by Ignition (its sysext image
// carries the pinned files).
func (x *Context) Bin(n spec.Node, name string) string {
	switch {
	case n.Sysext():
		return SysextDir + "/bin/" + name
	case x.FromBase(name):
		return path.Join(DistBinDir, name)
	}
	return path.Join(PinnedBinDir, name)
}

// Render renders a template under templates/files.
func (x *Context) Render(name string, data any) []byte { return templates.MustRender(name, data) }

// Unit renders a systemd unit into /etc/systemd/system/<name> and enables it
// for multi-user.target.
func (x *Context) Unit(t *tree.Tree, name, tmpl string, data any) {
	t.File(tree.UnitFile(name), 0o644, x.Render(tmpl, data))
	t.Enable(name, "multi-user.target")
}

// CACert places the certificate of CA ca at p.
func (x *Context) CACert(t *tree.Tree, p, ca string) {
	t.File(p, 0o644, x.PKI.Get(ca).CertPEM)
}

// Pair places a pki pair as <base>.crt (0644) and <base>.key (0600) in dir.
func (x *Context) Pair(t *tree.Tree, dir, name, base string) {
	p := x.PKI.Get(name)
	t.File(path.Join(dir, base+".crt"), 0o644, p.CertPEM)
	t.Secret(path.Join(dir, base+".key"), p.KeyPEM)
}

// Kubeconfig places kubeconfig row name at p (0600), pointing at server
// (empty: the row's own server). Callers name a row of kubeconfig.Set by its
// constant: another name is a bug in hardway, and panics with its stack.
func (x *Context) Kubeconfig(t *tree.Tree, p, name, server string) {
	x.kubeconfigsOnce.Do(func() {
		x.kubeconfigs = map[string]kubeconfig.Kubeconfig{}
		for _, k := range kubeconfig.Set(x.C) {
			x.kubeconfigs[k.Name] = k
		}
	})
	k, ok := x.kubeconfigs[name]
	if !ok {
		panic("nodegen: no kubeconfig " + name)
	}
	if server == "" {
		server = k.URL(x.C)
	}
	t.Secret(p, kubeconfig.Render(x.C, x.PKI, k, server))
}

// PVEPreset is the preset file pve-container writes at every start of a
// Debian 12+ container (PVE::LXC::Setup::Debian setup_init, through Base.pm
// setup_systemd_preset), with "disable systemd-networkd.service" because
// Debian containers use ifupdown there. systemd applies presets at a first
// boot (an empty /etc/machine-id, as bake leaves it); whether that disables
// an enabled unit depends on systemd's first-boot preset mode. A
// .pve-ignore marker keeps the file out.
const PVEPreset = "/etc/systemd/system-preset/00-pve.preset"

// NetworkFile is the network configuration file of a node whose tree
// manages its network: a systemd-networkd file, but on Fedora CoreOS, whose
// network is NetworkManager's, a NetworkManager keyfile. On LXC it has the
// name Proxmox would write (eth0.network), guarded by a .pve-ignore marker so
// Proxmox leaves it alone.
func (x *Context) NetworkFile(n spec.Node) string { return x.NICFile(n, 0) }

// NICFile is the network file of node n's interface net<i>: NetworkFile for
// the first; eth<i>.network on LXC and 10-hardway-eth<i>.network on KVM for
// the others (nodes booted by Ignition have no others).
func (x *Context) NICFile(n spec.Node, i int) string {
	eth := "eth" + strconv.Itoa(i)
	switch {
	case n.Target == spec.TargetLXC:
		return "/etc/systemd/network/" + eth + ".network"
	case NetworkManager(n):
		return "/etc/NetworkManager/system-connections/hardway.nmconnection"
	case i > 0:
		return "/etc/systemd/network/10-hardway-" + eth + ".network"
	}
	return "/etc/systemd/network/10-hardway.network"
}

// NetworkManager reports whether node n's network is NetworkManager's:
// Fedora CoreOS (Ignition variant fcos). Flatcar, Debian and the LXC nodes
// use systemd-networkd.
func NetworkManager(n spec.Node) bool {
	return n.BootsByIgnition() && n.Ignition == spec.IgnitionFCOS
}

// MAC is the node's deterministic Ethernet address: a locally administered
// unicast address (02:...) derived from the cluster and node names. The
// Proxmox config pins it on net0 and the NoCloud network-config matches it,
// so the guest's interface is found whatever the kernel names it.
func (x *Context) MAC(n spec.Node) string { return x.NICMAC(n, 0) }

// NICMAC is the deterministic Ethernet address of node n's interface
// net<i> (spec.Cluster.NICs): MAC for net0, and for the others one derived
// the same way from the cluster, node and interface names.
func (x *Context) NICMAC(n spec.Node, i int) string {
	id := x.C.Metadata.Name + "/" + n.Name
	if i > 0 {
		id += "/eth" + strconv.Itoa(i)
	}
	h := sha256.Sum256([]byte(id))
	return fmt.Sprintf("02:%02x:%02x:%02x:%02x:%02x", h[0], h[1], h[2], h[3], h[4])
}
