// Package worker generates the files of the worker role: containerd and its
// CNI configuration, the kubelet and kube-proxy with their configurations and
// PKI material, kernel settings, and the first-boot import of spec.images.
package worker

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"path"
	"strings"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Unit names.
const (
	ContainerdUnit = "containerd.service"
	KubeletUnit    = "kubelet.service"
	ProxyUnit      = "kube-proxy.service"
	ImagesUnit     = "hardway-images.service"
)

// Paths and names on a worker.
const (
	// ImagesDir holds the OCI archives of spec.images, each at ImagePath;
	// bake places them there and hardway-images.service imports every file
	// in it.
	ImagesDir = "/var/lib/hardway/images"
	// CRISocket is containerd's socket, the kubelet's runtime endpoint.
	CRISocket = "/run/containerd/containerd.sock"
	// SandboxImage is the pause image of Kubernetes v1.34, pinned in
	// containerd's configuration. Air-gapped sites list its archive in spec.images.
	SandboxImage = spec.PauseImage
	// Bridge is the Linux bridge of the pods (the CNI bridge plugin's).
	Bridge = "cni0"
	// UpstreamCNIBinDir is where the upstream CNI plugins release is baked;
	// PackagedCNIBinDir is where Debian's containernetworking-plugins puts them.
	UpstreamCNIBinDir = "/opt/cni/bin"
	PackagedCNIBinDir = "/usr/lib/cni"
	// SysextCNIBinDir and SysextImagesDir are where the systemd-sysext
	// image of a worker booted by Ignition (spec.Node.Sysext) carries the
	// CNI plugins and the image archives; links in ImagesDir point at the
	// archives.
	SysextCNIBinDir = nodegen.SysextDir + "/cni"
	SysextImagesDir = nodegen.SysextDir + "/images"
)

// Binaries are the worker role's pinned files. Its units run containerd,
// ctr, the kubelet and kube-proxy, found at x.Bin(name); containerd starts
// its shim and runc, and runs the CNI plugins the generated network
// configuration uses from the CNI bin dir of the mode (UpstreamCNIBinDir
// when bake installs them); crictl is the operator's.
var Binaries = []nodegen.Binary{
	{Name: "crictl", Dir: nodegen.PinnedBinDir, Optional: true},
	{Name: "containerd", Dir: nodegen.PinnedBinDir},
	{Name: "containerd-shim-runc-v2", Dir: nodegen.PinnedBinDir},
	{Name: "ctr", Dir: nodegen.PinnedBinDir},
	{Name: "runc", Dir: nodegen.PinnedBinDir},
	{Name: "kubelet", Dir: nodegen.PinnedBinDir},
	{Name: "kube-proxy", Dir: nodegen.PinnedBinDir},
	{Name: "bridge", Dir: UpstreamCNIBinDir},
	{Name: "host-local", Dir: UpstreamCNIBinDir},
	{Name: "portmap", Dir: UpstreamCNIBinDir},
	{Name: "loopback", Dir: UpstreamCNIBinDir},
}

// file is one row of the worker's file table: a template rendered with the
// node's view to path, when the condition (nil: always) holds.
type file struct {
	path string
	tmpl string
	when func(v *view) bool
}

// files are the worker's configuration files.
//
// CNI: containerd's CRI plugin uses the first network file in
// nodegen.CNIConfDir, 10-bridge.conflist: bridge cni0 as the pods' gateway,
// host-local addresses from the node's pinned pod CIDR, and
//   - ipMasq: traffic from a pod to anything outside this node's pod CIDR
//     leaves with the node's address, so replies come straight back to the
//     node whatever routes or stateful firewalls the other side has (the
//     upstream guides' choice; the cost is that a pod on another node sees
//     the node's address, not the pod's);
//   - hairpinMode: a pod reaches itself through its own Service;
//   - portmap: hostPort.
//
// The CRI plugin sets up each pod's loopback itself; 99-loopback.conf is the
// loopback network for other CNI runtimes and tools, as the guides ship it.
var files = []file{
	{"/etc/containerd/config.toml", "worker/containerd-config.toml", nil},
	{path.Join(nodegen.CNIConfDir, "10-bridge.conflist"), "worker/10-bridge.conflist", nil},
	{path.Join(nodegen.CNIConfDir, "99-loopback.conf"), "worker/99-loopback.conf", nil},
	{path.Join(nodegen.KubeletDir, "kubelet-config.yaml"), "worker/kubelet-config.yaml", nil},
	{path.Join(nodegen.KubeletDir, "resolv.conf"), "worker/resolv.conf", nil},
	{path.Join(nodegen.ProxyDir, "kube-proxy-config.yaml"), "worker/kube-proxy-config.yaml", nil},
	{"/etc/sysctl.d/90-hardway-kubernetes.conf", "worker/sysctl.conf", nil},
	// A container may not load modules: the Proxmox host contract does.
	{"/etc/modules-load.d/hardway-kubernetes.conf", "worker/modules-load.conf", func(v *view) bool { return !v.LXC }},
	{"/etc/tmpfiles.d/hardway-kmsg.conf", "worker/kmsg.conf", func(v *view) bool { return v.LXC }},
}

// unit is one row of the worker's unit table, enabled for wantedBy.
type unit struct {
	name, tmpl, wantedBy string
	when                 func(v *view) bool
}

// units are the worker's systemd units. In packaged mode containerd's unit
// is the distribution's (see enableVendor).
var units = []unit{
	{ContainerdUnit, "worker/containerd.service", "multi-user.target", func(v *view) bool { return v.Upstream }},
	{KubeletUnit, "worker/kubelet.service", "multi-user.target", nil},
	{ProxyUnit, "worker/kube-proxy.service", "multi-user.target", nil},
	// Wanted by the kubelet, which waits for it (Before=kubelet.service).
	{ImagesUnit, "worker/hardway-images.service", KubeletUnit, func(v *view) bool { return len(v.Images) > 0 }},
}

// Generate adds the worker role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	v, err := newView(x, n)
	if err != nil {
		return err
	}
	placePKI(x, n, t)
	for _, f := range files {
		if f.when == nil || f.when(v) {
			t.File(f.path, 0o644, x.Render(f.tmpl, v))
		}
	}
	for _, u := range units {
		if u.when == nil || u.when(v) {
			t.File(tree.UnitFile(u.name), 0o644, x.Render(u.tmpl, v))
			t.Enable(u.name, u.wantedBy)
		}
	}
	if n.Sysext() {
		for _, p := range v.Images {
			t.Symlink(p, path.Join(SysextImagesDir, path.Base(p)))
		}
	}
	if !v.Upstream {
		t.Enable(ContainerdUnit, "multi-user.target") // the package's unit, linked from tree.VendorUnitDir
		t.File(path.Join(tree.UnitDir, ContainerdUnit+".d", "10-hardway.conf"), 0o644, x.Render("worker/containerd-dropin.conf", v))
		// pkgs.k8s.io's kubeadm package adds this drop-in to the kubelet,
		// replacing its command line by kubeadm's; hardway's kubelet.service
		// is complete, so the drop-in is masked.
		t.Symlink(path.Join(tree.UnitDir, KubeletUnit+".d", "10-kubeadm.conf"), "/dev/null")
	}
	return nil
}

// placePKI places the kubelet's certificate, key and client CA, and the
// kubelet and kube-proxy kubeconfigs (through the API endpoint: the VIP, else
// the first controller). A worker gets no CA key.
func placePKI(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	// kubelet-<node> is the kubelet's client identity and serving certificate.
	x.Pair(t, nodegen.KubeletDir, "kubelet-"+n.Name, "kubelet")
	// Verifies the clients of the kubelet API (kube-apiserver).
	x.CACert(t, path.Join(nodegen.KubeletDir, "ca.crt"), pki.CA)
	x.Kubeconfig(t, path.Join(nodegen.KubeletDir, "kubeconfig"), "kubelet-"+n.Name, "")
	x.Kubeconfig(t, path.Join(nodegen.ProxyDir, "kubeconfig"), "kube-proxy", "")
}

// view is what every worker template reads: the decisions for one node.
type view struct {
	Name     string
	IP       string
	LXC      bool
	Upstream bool
	Mode     string
	Bin      map[string]string // binary name → path on the node

	KubeletDir, ProxyDir, CNIConfDir, CNIBinDir string
	CRISocket, SandboxImage, Bridge             string

	PodCIDR        string // this node's, pinned
	ClusterPodCIDR string // spec network.podCIDR
	ClusterDNS     string
	ClusterDomain  string
	Domain         string
	Nameservers    []string

	Swap    bool
	SwapMiB int
	Labels  string
	Taints  []taint

	ImagesDir   string
	Images      []string // archive paths on the node (ImagePath)
	ImagesStamp string
}

// taint is a taint the kubelet registers the node with.
type taint struct{ Key, Effect string }

// maxNameservers is the resolver's limit (glibc MAXNS); the kubelet drops
// further nameservers with a warning event.
const maxNameservers = 3

// newView makes the decisions for node n from the spec.
func newView(x *nodegen.Context, n spec.Node) (*view, error) {
	s := x.C.Spec
	pod, ok := x.PodCIDRs[n.Name]
	if !ok {
		return nil, fmt.Errorf("no pod CIDR for %s in network.podCIDR %s", n.Name, s.Network.PodCIDR)
	}
	images, err := imagePaths(s.Images)
	if err != nil {
		return nil, err
	}
	v := &view{
		Name:     n.Name,
		IP:       n.IP().String(),
		LXC:      n.Target == spec.TargetLXC,
		Upstream: s.Binaries.Mode != spec.ModePackaged,
		Mode:     s.Binaries.Mode,
		Bin:      map[string]string{},

		KubeletDir: nodegen.KubeletDir, ProxyDir: nodegen.ProxyDir, CNIConfDir: nodegen.CNIConfDir,
		CRISocket: CRISocket, SandboxImage: SandboxImage, Bridge: Bridge,

		PodCIDR:        pod.String(),
		ClusterPodCIDR: s.Network.PodCIDR,
		ClusterDNS:     s.Network.ClusterDNS,
		ClusterDomain:  s.ClusterDomain,
		Domain:         s.Domain,
		Nameservers:    s.Network.DNS[:min(len(s.Network.DNS), maxNameservers)],

		// swapMiB is an LXC container's swap limit, which the kubelet sees
		// in the container's /proc/swaps (lxcfs).
		Swap:    n.SwapMiB > 0,
		SwapMiB: n.SwapMiB,
		Labels:  strings.Join(labels(n), ","),
		Taints:  taints(n),

		ImagesDir:   ImagesDir,
		Images:      images,
		ImagesStamp: stamp(images),
	}
	switch {
	case n.Sysext():
		v.CNIBinDir = SysextCNIBinDir
	case v.Upstream:
		v.CNIBinDir = UpstreamCNIBinDir
	default:
		v.CNIBinDir = PackagedCNIBinDir
	}
	// The required files at x.Bin only: no unit may run an optional one,
	// which may be absent (a template naming it renders an empty path).
	for _, b := range Binaries {
		if b.Dir == nodegen.PinnedBinDir && !b.Optional {
			v.Bin[b.Name] = x.Bin(n, b.Name)
		}
	}
	return v, nil
}

// labels are the node labels the kubelet registers: node.kubernetes.io/<role>
// for each role of the node, the namespace a kubelet may set. The
// node-role.kubernetes.io/<role> labels kubectl shows as ROLES need an
// administrator's credentials (the bootstrap manifests).
func labels(n spec.Node) []string {
	out := make([]string, 0, len(n.Roles))
	for _, r := range n.Roles {
		out = append(out, "node.kubernetes.io/"+r+"=")
	}
	return out
}

// taints keeps ordinary pods off a worker that is also a controller, with
// the taint kubeadm uses (so tolerations written for kubeadm clusters apply).
func taints(n spec.Node) []taint {
	if n.Has(spec.RoleController) {
		return []taint{{Key: "node-role.kubernetes.io/control-plane", Effect: "NoSchedule"}}
	}
	return nil
}

// ImagePath is where bake places the archive of spec image p on a worker:
// ImagesDir/<the base name of p> when that is a plain name (nodegen.IsWord),
// else ImagesDir/image-<digest of p>.tar, so that no path on the node is
// made of unchecked text.
func ImagePath(p string) string {
	name := path.Base(p)
	if !nodegen.IsWord(name) {
		h := sha256.Sum256([]byte(p))
		name = "image-" + hex.EncodeToString(h[:8]) + ".tar"
	}
	return path.Join(ImagesDir, name)
}

// imagePaths returns the node paths of the spec's image archives, which must
// have distinct base names.
func imagePaths(images []string) ([]string, error) {
	out := make([]string, 0, len(images))
	seen := map[string]string{}
	for _, p := range images {
		np := ImagePath(p)
		if other, dup := seen[np]; dup {
			return nil, fmt.Errorf("spec.images: %s and %s would both be %s on the workers; give them distinct file names", other, p, np)
		}
		seen[np] = p
		out = append(out, np)
	}
	return out, nil
}

// stamp is the file hardway-images.service leaves once it has imported the
// archives at paths; its name changes with the set.
func stamp(paths []string) string {
	h := sha256.Sum256([]byte(strings.Join(paths, "\n")))
	return path.Join(ImagesDir, ".imported-"+hex.EncodeToString(h[:6]))
}
