package nodegen

import (
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

// A worker's outputs do not depend on the other workers (issue #14): its
// /etc/hosts names the API endpoint and itself, its routes go through the
// node network's gateway, and its certificates and kubeconfigs are its
// own. So a worker can be generated from a view of the cluster that holds
// only the nodes any worker may need (Shared) and itself: the same bytes as
// from the whole cluster (clusterdir's TestViewsGiveTheSameBytes checks it
// on every example), and what the worker's outputs are made from can be
// named without the rest. That is what lets a rerun after adding a worker
// skip every other worker: their views did not change.

// views is what a Context makes once for View.
type views struct {
	once     sync.Once
	shared   []int            // positions in spec.nodes of the nodes every view holds
	isShared []bool           // by position in spec.nodes
	rows     map[string][]int // positions in the PKI plan of each node's rows ("": of no node)
}

// Viewed reports whether node n is generated from View(n): a node whose
// only role is worker. Every other node may name any node (the gateway
// lists them all) and is generated from the whole cluster.
func Viewed(n spec.Node) bool {
	return len(n.Roles) > 0 && !slices.ContainsFunc(n.Roles, func(r string) bool { return r != spec.RoleWorker })
}

// Shared returns the nodes every view holds, in spec order: every node that
// is not Viewed (the etcd members, controllers, load balancers and gateway
// a worker's files may name), and every worker that apiServer.extraSANs
// names by its name or FQDN (the hosts line of the API endpoint leaves out
// names that are a node's: see common.hostsAPI).
func (x *Context) Shared() []spec.Node {
	x.makeViews()
	out := make([]spec.Node, len(x.view.shared))
	for i, at := range x.view.shared {
		out[i] = x.C.Spec.Nodes[at]
	}
	return out
}

func (x *Context) makeViews() {
	x.view.once.Do(func() {
		c := x.C
		named := map[string]bool{}
		for _, s := range c.Spec.APIServer.ExtraSANs {
			named[s] = true
			if short, ok := strings.CutSuffix(s, "."+c.Spec.Domain); ok {
				named[short] = true
			}
		}
		x.view.rows = map[string][]int{}
		for i, row := range x.PKI.Plan {
			x.view.rows[row.Node] = append(x.view.rows[row.Node], i)
		}
		x.view.isShared = make([]bool, len(c.Spec.Nodes))
		for i, n := range c.Spec.Nodes {
			if !Viewed(n) || named[n.Name] {
				x.view.shared = append(x.view.shared, i)
				x.view.isShared[i] = true
			}
		}
	})
}

// Rows returns the rows of the PKI plan that belong to node (pki.Cert.Node),
// or to no node with node "", in plan order.
func (x *Context) Rows(node string) []pki.Cert {
	x.makeViews()
	out := make([]pki.Cert, len(x.view.rows[node]))
	for i, at := range x.view.rows[node] {
		out[i] = x.PKI.Plan[at]
	}
	return out
}

// View returns the Context node n is generated from: the whole one unless
// n is Viewed; then a copy of the cluster whose nodes are the Shared ones
// and n, in spec order, with their pod CIDRs (the whole cluster's: a pod
// CIDR is a worker's position among all workers), and a PKI bundle of the
// rows of no node and of those nodes. The view's Check is the whole
// cluster's.
func (x *Context) View(n spec.Node) *Context {
	if !Viewed(n) {
		return x
	}
	x.makeViews()
	self, ok := x.Index(n.Name)
	if !ok || x.view.isShared[self] {
		return x
	}
	c := *x.C
	c.Spec.Nodes = make([]spec.Node, 0, len(x.view.shared)+1)
	at, _ := slices.BinarySearch(x.view.shared, self)
	for _, i := range x.view.shared[:at] {
		c.Spec.Nodes = append(c.Spec.Nodes, x.C.Spec.Nodes[i])
	}
	c.Spec.Nodes = append(c.Spec.Nodes, n)
	for _, i := range x.view.shared[at:] {
		c.Spec.Nodes = append(c.Spec.Nodes, x.C.Spec.Nodes[i])
	}
	v := &Context{C: &c, PodCIDRs: map[string]netip.Prefix{}}
	rows := slices.Clone(x.view.rows[""])
	for _, m := range c.Spec.Nodes {
		if p, ok := x.PodCIDRs[m.Name]; ok {
			v.PodCIDRs[m.Name] = p
		}
		rows = append(rows, x.view.rows[m.Name]...)
	}
	slices.Sort(rows) // plan order
	b := *x.PKI
	b.Plan, b.Pairs, b.Changes = make([]pki.Cert, len(rows)), make(map[string]*pki.Pair, len(rows)), nil
	for i, at := range rows {
		row := x.PKI.Plan[at]
		b.Plan[i] = row
		if p, ok := x.PKI.Pairs[row.Name]; ok {
			b.Pairs[row.Name] = p
		}
	}
	v.PKI = &b
	v.checked.Do(func() { v.checkErr = x.Check() })
	return v
}
