// Package pki describes the cluster's certificates as one table (Plan), and
// issues, loads, checks and renews them. The pki directory is state:
// existing CAs and keys are kept; leaves are re-issued only when their identity changes.
package pki

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/hardway-dev/hardway/spec"
)

// CA names (also their file base names).
const (
	CA           = "ca"
	EtcdCA       = "etcd/ca"
	FrontProxyCA = "front-proxy-ca"
)

// Cert is one row of the plan: a certificate, its key and who signs it.
// File names follow kubeadm: <Name>.crt and <Name>.key under the pki directory.
type Cert struct {
	Name   string // file base name, e.g. "apiserver" or "etcd/peer-etcd1"
	CA     string // the signing CA's Name; empty for a CA (self-signed)
	CN     string
	O      []string
	Server bool // ExtKeyUsageServerAuth
	Client bool // ExtKeyUsageClientAuth
	DNS    []string
	IPs    []netip.Addr
	Node   string // the node the certificate belongs to, if any
	Doc    string // what the certificate is for
}

// IsCA reports whether the row is a certificate authority.
func (c Cert) IsCA() bool { return c.CA == "" }

// Plan returns every certificate of the cluster, CAs first, in a stable order.
// It is the single table read by generate, check, renew and the docs.
func Plan(c *spec.Cluster) []Cert {
	localhost := netip.MustParseAddr("127.0.0.1")
	loopback6 := netip.MustParseAddr("::1")
	plan := []Cert{
		{Name: CA, CN: "kubernetes", Doc: "cluster CA: signs API server, kubelet and client certificates"},
		{Name: EtcdCA, CN: "etcd-ca", Doc: "etcd CA: signs etcd server, peer and client certificates"},
		{Name: FrontProxyCA, CN: "front-proxy-ca", Doc: "front-proxy CA: signs the aggregation layer's client certificate"},

		{Name: "apiserver", CA: CA, CN: "kube-apiserver", Server: true, DNS: apiServerDNS(c), IPs: apiServerIPs(c),
			Doc: "kube-apiserver serving certificate, shared by all controllers"},
		{Name: "apiserver-kubelet-client", CA: CA, CN: "kube-apiserver-kubelet-client", Client: true,
			Doc: "kube-apiserver's identity towards kubelets (bound to system:kube-apiserver-to-kubelet)"},
		{Name: "apiserver-etcd-client", CA: EtcdCA, CN: "kube-apiserver-etcd-client", Client: true,
			Doc: "kube-apiserver's identity towards etcd"},
		{Name: "etcd/healthcheck-client", CA: EtcdCA, CN: "kube-etcd-healthcheck-client", Client: true,
			Doc: "etcd client for health checks and operators (etcdctl on the gateway)"},
		{Name: "front-proxy-client", CA: FrontProxyCA, CN: "front-proxy-client", Client: true,
			Doc: "kube-apiserver's identity towards aggregated API servers"},
		{Name: "admin", CA: CA, CN: "kubernetes-admin", O: []string{"kubeadm:cluster-admins"}, Client: true,
			Doc: "admin kubeconfig; cluster-admin through the kubeadm:cluster-admins binding"},
		{Name: "super-admin", CA: CA, CN: "kubernetes-super-admin", O: []string{"system:masters"}, Client: true,
			Doc: "break-glass super-admin kubeconfig; system:masters bypasses RBAC"},
		{Name: "kube-controller-manager", CA: CA, CN: "system:kube-controller-manager", Client: true,
			Doc: "kube-controller-manager kubeconfig"},
		{Name: "kube-scheduler", CA: CA, CN: "system:kube-scheduler", Client: true,
			Doc: "kube-scheduler kubeconfig"},
		{Name: "kube-proxy", CA: CA, CN: "system:kube-proxy", O: []string{"system:node-proxier"}, Client: true,
			Doc: "kube-proxy kubeconfig"},
	}
	for _, n := range c.NodesWith(spec.RoleEtcd) {
		dns := []string{n.Name, c.FQDN(n), "localhost"}
		ips := []netip.Addr{n.IP(), localhost, loopback6}
		plan = append(plan,
			Cert{Name: "etcd/server-" + n.Name, CA: EtcdCA, CN: n.Name, Server: true, Client: true, DNS: dns, IPs: ips, Node: n.Name,
				Doc: "etcd serving certificate of " + n.Name},
			Cert{Name: "etcd/peer-" + n.Name, CA: EtcdCA, CN: n.Name, Server: true, Client: true, DNS: dns, IPs: ips, Node: n.Name,
				Doc: "etcd peer certificate of " + n.Name})
	}
	for _, n := range c.NodesWith(spec.RoleWorker) {
		plan = append(plan, Cert{Name: "kubelet-" + n.Name, CA: CA, CN: "system:node:" + n.Name, O: []string{"system:nodes"},
			Server: true, Client: true, DNS: []string{n.Name, c.FQDN(n)}, IPs: []netip.Addr{n.IP()}, Node: n.Name,
			Doc: "kubelet of " + n.Name + ": client identity (Node authorizer) and serving certificate"})
	}
	return plan
}

// SAKey is the base name of the service-account signing key pair (sa.key, sa.pub).
const SAKey = "sa"

func apiServerDNS(c *spec.Cluster) []string {
	dns := []string{"kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc." + c.Spec.ClusterDomain, "localhost"}
	for _, n := range c.NodesWith(spec.RoleController) {
		dns = append(dns, n.Name, c.FQDN(n))
	}
	for _, s := range c.Spec.APIServer.ExtraSANs {
		if _, err := netip.ParseAddr(s); err != nil {
			dns = append(dns, s)
		}
	}
	return uniq(dns)
}

func apiServerIPs(c *spec.Cluster) []netip.Addr {
	ips := []netip.Addr{c.FirstServiceIP(), netip.MustParseAddr("127.0.0.1")}
	for _, n := range c.NodesWith(spec.RoleController) {
		ips = append(ips, n.IP())
	}
	if c.Spec.APIServer.VIP != "" {
		ips = append(ips, c.APIHost())
	}
	for _, s := range c.Spec.APIServer.ExtraSANs {
		if a, err := netip.ParseAddr(s); err == nil {
			ips = append(ips, a)
		}
	}
	return uniq(ips)
}

func uniq[T comparable](in []T) []T {
	var out []T
	for _, v := range in {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// Find returns the plan row called name.
func Find(plan []Cert, name string) (Cert, error) {
	for _, c := range plan {
		if c.Name == name {
			return c, nil
		}
	}
	return Cert{}, fmt.Errorf("no certificate called %q in this cluster's plan", name)
}
