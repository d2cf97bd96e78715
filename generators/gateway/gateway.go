// Package gateway generates the files of the gateway role: the SSH bastion,
// and the admin tools' configuration (kubectl's admin kubeconfig, etcdctl's
// endpoints and client certificate). The cluster's hosts file comes from common.
package gateway

import (
	"net/netip"
	"path"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Paths on gateway nodes.
const (
	SSHDropIn  = "/etc/ssh/sshd_config.d/hardway-bastion.conf"
	Kubeconfig = "/root/.kube/config"
	EtcdctlEnv = "/etc/profile.d/hardway-etcdctl.sh"
	// EtcdClient is the base name of etcdctl's client pair in nodegen.EtcdDir.
	EtcdClient = "healthcheck-client"
)

// Binaries are the gateway role's pinned files: the admin tools it
// configures (Kubeconfig, EtcdctlEnv). No unit runs them, so a gateway
// without them pinned is still a bastion.
var Binaries = []nodegen.Binary{
	{Name: "kubectl", Dir: nodegen.PinnedBinDir, Optional: true},
	{Name: "etcdctl", Dir: nodegen.PinnedBinDir, Optional: true},
}

// etcdClientPort is etcd's client port (--listen-client-urls).
const etcdClientPort = 2379

// Generate adds the gateway role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	t.File(SSHDropIn, 0o644, x.Render("gateway/sshd-bastion.conf", map[string]any{
		"Node":    n.Name,
		"Cluster": x.C.Metadata.Name,
		"FQDN":    x.C.FQDN(n),
		"Port":    x.C.Spec.SSH.BastionPort,
	}))
	// kubectl's default kubeconfig; /root and ~/.kube stay private.
	t.Dir("/root", 0o700)
	t.Dir(path.Dir(Kubeconfig), 0o700)
	x.Kubeconfig(t, Kubeconfig, "admin", x.C.APIServerURL())
	etcdctl(x, n, t)
	return nil
}

// etcdctl points etcdctl at every etcd member and places the etcd CA and the
// healthcheck-client pair (an etcd client certificate) it authenticates with.
func etcdctl(x *nodegen.Context, n spec.Node, t *tree.Tree) {
	var endpoints []string
	for _, m := range x.C.NodesWith(spec.RoleEtcd) {
		endpoints = append(endpoints, "https://"+netip.AddrPortFrom(m.IP(), etcdClientPort).String())
	}
	if len(endpoints) == 0 {
		return
	}
	ca := path.Join(nodegen.EtcdDir, "ca.crt")
	x.CACert(t, ca, pki.EtcdCA)
	x.Pair(t, nodegen.EtcdDir, "etcd/"+EtcdClient, EtcdClient)
	t.File(EtcdctlEnv, 0o644, x.Render("gateway/etcdctl.sh", map[string]any{
		"Node":      n.Name,
		"Cluster":   x.C.Metadata.Name,
		"Endpoints": endpoints,
		"CACert":    ca,
		"Cert":      path.Join(nodegen.EtcdDir, EtcdClient+".crt"),
		"Key":       path.Join(nodegen.EtcdDir, EtcdClient+".key"),
	}))
}
