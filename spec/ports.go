package spec

import (
	"fmt"
	"strings"
)

// listener is a TCP port range a node's service listens on: one row of the
// role → ports table. A node holds every row of each of its roles.
type listener struct {
	role    string // the role that brings it; "" for every node
	notRole string // ...except the nodes holding this role
	what    string
	lo, hi  int
	field   string // the spec field that sets the port, "" if fixed
}

func (l listener) on(n Node) bool {
	return (l.role == "" || n.Has(l.role)) && (l.notRole == "" || !n.Has(l.notRole))
}

func (l listener) String() string {
	if l.lo != l.hi {
		return fmt.Sprintf("%s (%d-%d)", l.what, l.lo, l.hi)
	}
	return l.what
}

// listeners is what each role listens on (TCP, on any address: a loopback
// listener clashes with kube-apiserver's 0.0.0.0 as much as another).
// The fixed ports are the components' defaults, which the generated
// configurations keep.
func listeners(s *ClusterSpec) []listener {
	api, bastion := s.APIServer.Port, s.SSH.BastionPort
	return []listener{
		{role: RoleEtcd, what: "etcd (clients)", lo: 2379, hi: 2379},
		{role: RoleEtcd, what: "etcd (peers)", lo: 2380, hi: 2380},
		{role: RoleController, what: "kube-apiserver", lo: api, hi: api, field: "spec.apiServer.port"},
		{role: RoleController, what: "kube-controller-manager", lo: 10257, hi: 10257},
		{role: RoleController, what: "kube-scheduler", lo: 10259, hi: 10259},
		{role: RoleWorker, what: "the kubelet", lo: 10250, hi: 10250},
		{role: RoleWorker, what: "the kubelet (healthz)", lo: 10248, hi: 10248},
		{role: RoleWorker, what: "kube-proxy (metrics)", lo: 10249, hi: 10249},
		{role: RoleWorker, what: "kube-proxy (healthz)", lo: 10256, hi: 10256},
		{role: RoleWorker, what: "NodePort services", lo: 30000, hi: 32767},
		{role: RoleLB, what: "HAProxy", lo: api, hi: api, field: "spec.apiServer.port"},
		{role: RoleGateway, what: "the bastion's sshd", lo: bastion, hi: bastion, field: "spec.ssh.bastionPort"},
		// The gateway's sshd listens on bastionPort only.
		{notRole: RoleGateway, what: "sshd", lo: 22, hi: 22},
	}
}

// portClash is two listeners of the same node on one port.
type portClash struct {
	a, b  listener
	port  int
	nodes []string
}

// ports reports two services of one node on the same port. A clash of a
// port the spec sets is reported once at that field, naming the nodes; a
// clash of two roles (both fixed, or both on the same field) at each node's roles.
func (v *validator) ports() {
	s := &v.d.Cluster.Spec
	ls := listeners(s)
	var clashes []*portClash
	byKey := map[string]*portClash{}
	for i, n := range s.Nodes {
		for a := range ls {
			for b := a + 1; b < len(ls); b++ {
				la, lb := ls[a], ls[b]
				if !la.on(n) || !lb.on(n) || la.hi < lb.lo || lb.hi < la.lo {
					continue
				}
				port := max(la.lo, lb.lo)
				if la.field == lb.field {
					v.errf(fmt.Sprintf("spec.nodes[%d].roles", i), "%s cannot be both %s and %s: %s and %s would both listen on port %d",
						n.Name, la.role, lb.role, la, lb, port)
					continue
				}
				key := fmt.Sprint(a, b)
				c := byKey[key]
				if c == nil {
					c = &portClash{a: la, b: lb, port: port}
					byKey[key] = c
					clashes = append(clashes, c)
				}
				c.nodes = append(c.nodes, n.Name)
			}
		}
	}
	for _, c := range clashes {
		// Report at a field the file sets, if it sets one of them.
		x, y := c.b, c.a
		if x.field == "" || (y.field != "" && !v.d.Has(x.field) && v.d.Has(y.field)) {
			x, y = y, x
		}
		v.errf(x.field, "%s and %s would both listen on port %d on %s", x, y, c.port, nodeList(c.nodes))
	}
}

// nodeList names the first nodes of a list and counts the rest.
func nodeList(names []string) string {
	const show = 3
	if len(names) <= show {
		return strings.Join(names, ", ")
	}
	return fmt.Sprintf("%s and %d more", strings.Join(names[:show], ", "), len(names)-show)
}
