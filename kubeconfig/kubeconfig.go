// Package kubeconfig describes the cluster's kubeconfigs as one table and
// renders them with embedded certificates.
package kubeconfig

import (
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/templates"
)

// Server says which API endpoint a kubeconfig targets.
type Server int

const (
	// Local is the apiserver on the same controller (https://127.0.0.1:<port>).
	Local Server = iota
	// API is the cluster endpoint: the VIP, else the first controller.
	API
)

// Kubeconfig is one row of the set.
type Kubeconfig struct {
	Name   string // file base name: kubeconfigs/<Name>.kubeconfig
	Cert   string // the pki plan row holding the client certificate
	Server Server
	Node   string // the node it belongs to, if any
	Doc    string
}

// Set returns every kubeconfig of the cluster, in a stable order.
func Set(c *spec.Cluster) []Kubeconfig {
	set := []Kubeconfig{
		{Name: "admin", Cert: "admin", Server: Local, Doc: "cluster-admin on a controller (kubeadm:cluster-admins)"},
		{Name: "admin-api", Cert: "admin", Server: API, Doc: "the same cluster-admin from anywhere that reaches the node network (the gateway, an operator's workstation): through the API VIP, else the first controller"},
		{Name: "super-admin", Cert: "super-admin", Server: Local, Doc: "break-glass system:masters on a controller"},
		{Name: "kube-controller-manager", Cert: "kube-controller-manager", Server: Local, Doc: "kube-controller-manager"},
		{Name: "kube-scheduler", Cert: "kube-scheduler", Server: Local, Doc: "kube-scheduler"},
		{Name: "kube-proxy", Cert: "kube-proxy", Server: API, Doc: "kube-proxy on every worker"},
	}
	for _, n := range c.NodesWith(spec.RoleWorker) {
		set = append(set, Kubeconfig{Name: "kubelet-" + n.Name, Cert: "kubelet-" + n.Name, Server: API, Node: n.Name, Doc: "kubelet of " + n.Name})
	}
	return set
}

// URL returns the server URL of a row.
func (k Kubeconfig) URL(c *spec.Cluster) string {
	if k.Server == Local {
		return c.LocalAPIServerURL()
	}
	return c.APIServerURL()
}

// Render returns the kubeconfig for row k pointing at server (use k.URL(c)
// for the row's own endpoint).
func Render(c *spec.Cluster, b *pki.Bundle, k Kubeconfig, server string) []byte {
	p := b.Get(k.Cert)
	return templates.MustRender("pki/kubeconfig.yaml", map[string]any{
		"Cluster": c.Metadata.Name,
		"Server":  server,
		"User":    p.Cert.CN,
		"CA":      b.Get(p.Cert.CA).CertPEM,
		"Cert":    p.CertPEM,
		"Key":     p.KeyPEM,
	})
}

// EncryptionConfig renders the EncryptionConfiguration for kube-apiserver.
func EncryptionConfig(c *spec.Cluster, b *pki.Bundle) []byte {
	return templates.MustRender("pki/encryption-config.yaml", map[string]any{
		"Provider": c.Spec.Encryption.Provider,
		"Key":      b.EncryptionKey,
	})
}
