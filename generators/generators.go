// Package generators turns a validated spec and its PKI into one file tree
// per node (role generators in sub-packages) and the cluster-level files.
package generators

import (
	"fmt"

	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/gateway"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/generators/manifests"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// A role generator adds its role's files for one node.
type roleGen func(*nodegen.Context, spec.Node, *tree.Tree) error

// roles maps each role to its generator; "" runs on every node. Order is
// the order of generation (it does not change the tree, which is sorted).
var roles = []struct {
	role string
	gen  roleGen
}{
	{"", common.Generate},
	{spec.RoleEtcd, etcd.Generate},
	{spec.RoleController, controller.Generate},
	{spec.RoleWorker, worker.Generate},
	{spec.RoleLB, lb.Generate},
	{spec.RoleGateway, gateway.Generate},
}

// Node returns the file tree of node n, as its outputs deliver it with
// their seed or config beside it (overlay.tar, LXC template, NoCloud
// user-data, Ignition). A spec that nodegen.Check refuses gives no tree, nor
// does a tree that tree.Check refuses (two generators writing one path
// differently, say).
func Node(x *nodegen.Context, n spec.Node) (*tree.Tree, error) {
	return node(x, n, false)
}

// Image returns the file tree baked into node n's own disk image, which
// boots with no seed: Node's tree and, for a node whose seed would carry its
// network (cloud-init's network-config, !TreeManagesNetwork), the network
// file that the tree of every other node carries (common.Network).
func Image(x *nodegen.Context, n spec.Node) (*tree.Tree, error) {
	return node(x, n, true)
}

// node is Node's tree, or Image's when image is set.
func node(x *nodegen.Context, n spec.Node, image bool) (*tree.Tree, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	t := tree.New(n.Name)
	for _, r := range roles {
		if r.role != "" && !n.Has(r.role) {
			continue
		}
		if err := r.gen(x, n, t); err != nil {
			return nil, fmt.Errorf("node %s, role %s: %w", n.Name, name(r.role), err)
		}
	}
	if image && !n.TreeManagesNetwork() {
		common.Network(x, n, t)
	}
	common.Ready(x, n, t) // last: it waits for the services of every role
	if err := t.Check(); err != nil {
		return nil, err
	}
	return t, nil
}

func name(role string) string {
	if role == "" {
		return "common"
	}
	return role
}

// Nodes returns every node's tree, in spec order.
func Nodes(x *nodegen.Context) ([]*tree.Tree, error) {
	var out []*tree.Tree
	for _, n := range x.C.Spec.Nodes {
		t, err := Node(x, n)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

// Cluster returns the cluster-level files: manifests/ and the Proxmox host
// contract (proxmox/; each node's proxmox.conf is proxmox.Conf's, made
// as it is written). A spec that nodegen.Check refuses gives none.
func Cluster(x *nodegen.Context) ([]nodegen.File, error) {
	if err := x.Check(); err != nil {
		return nil, err
	}
	m, err := manifests.Files(x)
	if err != nil {
		return nil, err
	}
	p, err := proxmox.HostFiles(x)
	if err != nil {
		return nil, err
	}
	return append(m, p...), nil
}
