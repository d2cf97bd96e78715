// Package etcd generates the files of the etcd role: the member's TLS
// material under nodegen.EtcdDir, its data directory and etcd.service. It also
// exports the member URLs that kube-apiserver (generators/controller) dials.
package etcd

import (
	"net/netip"
	"path"
	"strings"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// etcd's IANA-assigned ports.
const (
	ClientPort = 2379
	PeerPort   = 2380
)

// Unit is the name of the etcd unit.
const Unit = "etcd.service"

// Binaries are the etcd role's pinned files: Unit runs etcd; etcdctl and
// etcdutl are the operator's tools on the member.
var Binaries = []nodegen.Binary{
	{Name: "etcd", Dir: nodegen.PinnedBinDir},
	{Name: "etcdctl", Dir: nodegen.PinnedBinDir, Optional: true},
	{Name: "etcdutl", Dir: nodegen.PinnedBinDir, Optional: true},
}

// url is https://<a>:<port> (IPv6 addresses in brackets).
func url(a netip.Addr, port int) string {
	return "https://" + netip.AddrPortFrom(a, uint16(port)).String()
}

// ClientURL is the client URL of the member at a.
func ClientURL(a netip.Addr) string { return url(a, ClientPort) }

// PeerURL is the peer URL of the member at a.
func PeerURL(a netip.Addr) string { return url(a, PeerPort) }

// ClientURLs returns the client URL of every etcd member, in spec order.
func ClientURLs(c *spec.Cluster) []string {
	var out []string
	for _, n := range c.NodesWith(spec.RoleEtcd) {
		out = append(out, ClientURL(n.IP()))
	}
	return out
}

// InitialCluster is etcd's --initial-cluster: name=peerURL for every etcd
// member of the spec, in spec order. The member name is the node name, which
// is also the CN of its server and peer certificates.
func InitialCluster(c *spec.Cluster) string {
	var out []string
	for _, n := range c.NodesWith(spec.RoleEtcd) {
		out = append(out, n.Name+"="+PeerURL(n.IP()))
	}
	return strings.Join(out, ",")
}

// unit is the data of templates/files/etcd/etcd.service.
type unit struct {
	Bin            string
	Name           string
	Dir            string // certificates
	DataDir        string
	ClientURLs     string // where the member listens for clients
	AdvertiseURL   string // the client URL it announces
	PeerURL        string
	InitialCluster string
	Token          string
}

// Generate adds the etcd role's files for node n to t.
func Generate(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	// Only the member's own pairs and the etcd CA certificate: the etcd CA
	// key stays in pki/ on the build machine.
	x.CACert(t, path.Join(nodegen.EtcdDir, "ca.crt"), pki.EtcdCA)
	x.Pair(t, nodegen.EtcdDir, "etcd/server-"+n.Name, "server")
	x.Pair(t, nodegen.EtcdDir, "etcd/peer-"+n.Name, "peer")
	// 0700: the data holds every Secret of the cluster (encrypted) and all
	// other objects in clear; etcd warns about a more open data dir.
	t.Dir(nodegen.EtcdData, 0o700)

	ip := n.IP()
	x.Unit(t, Unit, "etcd/etcd.service", unit{
		Bin:     x.Bin(n, "etcd"),
		Name:    n.Name,
		Dir:     nodegen.EtcdDir,
		DataDir: nodegen.EtcdData,
		// The node address for the other members and the controllers,
		// loopback for etcdctl on the node itself.
		ClientURLs:     ClientURL(ip) + "," + ClientURL(netip.MustParseAddr("127.0.0.1")),
		AdvertiseURL:   ClientURL(ip),
		PeerURL:        PeerURL(ip),
		InitialCluster: InitialCluster(x.C),
		Token:          x.C.Metadata.Name,
	})
	return nil
}
