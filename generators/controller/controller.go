// Package controller generates the files of the controller role:
// kube-apiserver, kube-controller-manager and kube-scheduler as systemd
// units with their PKI material and configs under nodegen.KubeDir, and, on the
// first controller, the one-shot unit that applies the bootstrap manifests.
package controller

import (
	"path"
	"strings"

	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/kubeconfig"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Unit names.
const (
	APIServerUnit         = "kube-apiserver.service"
	ControllerManagerUnit = "kube-controller-manager.service"
	SchedulerUnit         = "kube-scheduler.service"
)

// Binaries are the controller role's pinned files: its units run the three
// components, and the first controller's bootstrap unit applies the
// manifests with kubectl.
var Binaries = []nodegen.Binary{
	{Name: "kube-apiserver", Dir: nodegen.PinnedBinDir},
	{Name: "kube-controller-manager", Dir: nodegen.PinnedBinDir},
	{Name: "kube-scheduler", Dir: nodegen.PinnedBinDir},
	{Name: "kubectl", Dir: nodegen.PinnedBinDir},
}

// pairs are the certificates and keys every controller holds, as pki row →
// file base name under nodegen.KubeDir.
var pairs = []struct{ row, base string }{
	// The cluster CA: its certificate authenticates clients and kubelets; its
	// key lets kube-controller-manager sign CSRs (cluster signing). It goes
	// to controllers only.
	{pki.CA, "ca"},
	{"apiserver", "apiserver"},
	{"apiserver-kubelet-client", "apiserver-kubelet-client"},
	{"apiserver-etcd-client", "apiserver-etcd-client"},
	{"front-proxy-client", "front-proxy-client"},
}

// caCerts are the other CAs whose certificate (never the key) a controller
// needs, as CA → file base name under nodegen.KubeDir.
var caCerts = []struct{ ca, base string }{
	{pki.EtcdCA, "etcd-ca"},              // verifies the etcd members
	{pki.FrontProxyCA, "front-proxy-ca"}, // verifies the aggregation layer's client
}

// kubeconfigs are the kubeconfig rows placed as <name>.kubeconfig under nodegen.KubeDir.
var kubeconfigs = []string{"kube-controller-manager", "kube-scheduler"}

// nodePortRange is kube-apiserver's default NodePort range, written out so
// that the unit shows which ports services may take on the workers.
const nodePortRange = "30000-32767"

// Generate adds the controller role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	placePKI(x, t)
	for _, k := range kubeconfigs {
		// The local apiserver: each controller's components keep working
		// when the load balancers or the other controllers are down.
		x.Kubeconfig(t, path.Join(nodegen.KubeDir, k+".kubeconfig"), k, x.C.LocalAPIServerURL())
	}
	t.File(path.Join(nodegen.KubeDir, "kube-scheduler.yaml"), 0o644,
		x.Render("controller/kube-scheduler.yaml", struct{ Kubeconfig string }{path.Join(nodegen.KubeDir, "kube-scheduler.kubeconfig")}))

	x.Unit(t, APIServerUnit, "controller/kube-apiserver.service", apiServer(x, n))
	x.Unit(t, ControllerManagerUnit, "controller/kube-controller-manager.service", controllerManager(x, n))
	x.Unit(t, SchedulerUnit, "controller/kube-scheduler.service", component{Bin: x.Bin(n, "kube-scheduler"), Dir: nodegen.KubeDir})

	if first, _ := x.C.First(spec.RoleController); first.Name == n.Name {
		return bootstrap(x, n, t)
	}
	return nil
}

// placePKI places the controller's certificates, keys, service-account key
// pair and encryption configuration.
func placePKI(x *nodegen.Context, t *tree.Tree) {
	for _, p := range pairs {
		x.Pair(t, nodegen.KubeDir, p.row, p.base)
	}
	for _, c := range caCerts {
		x.CACert(t, path.Join(nodegen.KubeDir, c.base+".crt"), c.ca)
	}
	// sa.key signs service-account tokens (kube-apiserver) and legacy token
	// secrets (kube-controller-manager); sa.pub verifies them.
	t.Secret(path.Join(nodegen.KubeDir, pki.SAKey+".key"), x.PKI.SAKeyPEM)
	t.File(path.Join(nodegen.KubeDir, pki.SAKey+".pub"), 0o644, x.PKI.SAPubPEM)
	t.Secret(path.Join(nodegen.KubeDir, "encryption-config.yaml"), kubeconfig.EncryptionConfig(x.C, x.PKI))
}

// component is the data every control-plane unit template gets.
type component struct {
	Bin string // the binary
	Dir string // nodegen.KubeDir
}

// apiServerData is the data of the kube-apiserver unit.
type apiServerData struct {
	component
	IP            string
	Port          int
	EtcdServers   string
	EtcdUnit      string // the local etcd unit when etcd is stacked on this node
	ServiceCIDR   string
	NodePortRange string
	Issuer        string
}

func apiServer(x *nodegen.Context, n spec.Node) apiServerData {
	return apiServerData{
		component:     component{Bin: x.Bin(n, "kube-apiserver"), Dir: nodegen.KubeDir},
		IP:            n.IP().String(),
		Port:          x.C.Spec.APIServer.Port,
		EtcdServers:   strings.Join(etcd.ClientURLs(x.C), ","),
		EtcdUnit:      etcdUnit(n),
		ServiceCIDR:   x.C.Spec.Network.ServiceCIDR,
		NodePortRange: nodePortRange,
		Issuer:        ServiceAccountIssuer(x.C),
	}
}

// etcdUnit is the etcd unit of a stacked controller, else "".
func etcdUnit(n spec.Node) string {
	if n.Has(spec.RoleEtcd) {
		return etcd.Unit
	}
	return ""
}

// ServiceAccountIssuer is the iss claim of service-account tokens, kubeadm's
// choice: the in-cluster name of the API.
func ServiceAccountIssuer(c *spec.Cluster) string {
	return "https://kubernetes.default.svc." + c.Spec.ClusterDomain
}

// controllerManagerData is the data of the kube-controller-manager unit.
type controllerManagerData struct {
	component
	ClusterName string
	PodCIDR     string
	ServiceCIDR string
}

func controllerManager(x *nodegen.Context, n spec.Node) controllerManagerData {
	return controllerManagerData{
		component:   component{Bin: x.Bin(n, "kube-controller-manager"), Dir: nodegen.KubeDir},
		ClusterName: x.C.Metadata.Name,
		PodCIDR:     x.C.Spec.Network.PodCIDR,
		ServiceCIDR: x.C.Spec.Network.ServiceCIDR,
	}
}
