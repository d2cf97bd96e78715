package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
	"github.com/hardway-dev/hardway/unitfile"
)

// component is one process of the control plane, started from a unit file.
type component struct {
	unit  string
	role  string
	stage Stage
	ready readyFunc
}

// components is what runs on a node with each role, in start order.
var components = []component{
	{etcd.Unit, spec.RoleEtcd, StageEtcd, etcdReady},
	{controller.APIServerUnit, spec.RoleController, StageAPIServer, apiserverReady},
	{controller.ControllerManagerUnit, spec.RoleController, StageControllers, healthzReady(10257)},
	{controller.SchedulerUnit, spec.RoleController, StageControllers, healthzReady(10259)},
}

// startStages are the control plane's start phases, in order, each with
// its name and the bound on its wait.
var startStages = []struct {
	stage   Stage
	name    string
	timeout time.Duration
}{
	{StageEtcd, "start etcd", 45 * time.Second},
	{StageAPIServer, "start kube-apiserver", 90 * time.Second},
	{StageControllers, "start controller-manager, scheduler, haproxy", 60 * time.Second},
}

// node is one node that runs something in this run.
type node struct {
	spec  spec.Node
	root  *Root
	ns    *NS
	comps []component
	units map[string]*unitfile.Unit
	argv  map[string][]string // rewritten command line per unit, binary from the bin dir first
	addrs []netip.Prefix
}

// prepare reads the units, copies the node trees to their roots, rewrites
// paths and finds the binaries.
func (v *run) prepare() (string, error) {
	fmt.Fprintf(v.o.Out, "paths: a path of the node's tree, or under /etc, /var or /run, in a unit's arguments or in the configuration files they name, gets the node's root as prefix: %s/nodes/<node>\n", v.work)
	for _, n := range v.c.Spec.Nodes {
		var comps []component
		for _, c := range components {
			if n.Has(c.role) {
				comps = append(comps, c)
			}
		}
		if len(comps) == 0 {
			continue
		}
		nd, err := v.newNode(n, comps)
		if err != nil {
			return "", err
		}
		v.nodes = append(v.nodes, nd)
		v.byName[n.Name] = nd
	}
	if len(v.c.NodesWith(spec.RoleController)) == 0 {
		return "", errors.New("the spec has no controller: nothing to verify")
	}
	var note string
	var err error
	if v.o.Boot {
		note = v.bootEndpoint()
	} else if note, err = v.planLB(); err != nil {
		return "", err
	}
	if err := v.prepareGuests(); err != nil {
		return "", err
	}
	if len(v.booting) > 0 {
		if err := preflightGuests(v.bootTargets()...); err != nil {
			return "", err
		}
		if err := v.preflightDisk(); err != nil {
			return "", err
		}
		what := "workers"
		if v.o.Boot {
			what = "nodes"
		}
		note += fmt.Sprintf("; %d %s to boot from their artifacts", len(v.booting), what)
	}
	for _, name := range slices.Sorted(maps.Keys(v.o.Skipped)) {
		note += fmt.Sprintf("; not booted: %s %s", name, v.o.Skipped[name])
	}
	return fmt.Sprintf("%d nodes; %s", len(v.nodes), note), nil
}

// artifact is the path of node's artifact a in the cluster's output
// directory. A file of the node's tree is read through nodeTree.
func (v *run) artifact(a nodefiles.Artifact, node string) string {
	return filepath.Join(v.o.Dir, a.Path(node))
}

// newNode sets up one node: its root, units and command lines.
func (v *run) newNode(n spec.Node, comps []component) (*node, error) {
	src, err := v.nodeTree(n.Name)
	if err != nil {
		return nil, err
	}
	root, err := NewRoot(src, filepath.Join(v.work, "nodes", n.Name))
	if err != nil {
		return nil, err
	}
	nd := &node{spec: n, root: root, comps: comps, units: map[string]*unitfile.Unit{}, argv: map[string][]string{}}
	nd.addrs = []netip.Prefix{mustPrefix(n.Address)}
	total := 0
	var files []string
	for _, c := range comps {
		cnt, changed, err := v.loadUnit(nd, c.unit)
		if err != nil {
			return nil, err
		}
		total += cnt
		files = append(files, changed...)
	}
	fmt.Fprintf(v.o.Out, "paths: %s: %d arguments rewritten; configuration files rewritten: %s\n", n.Name, total, listOrNone(files))
	return nd, nil
}

// loadUnit parses a node's unit and prepares its command line; it returns
// how many node paths the arguments named and the configuration files rewritten.
func (v *run) loadUnit(nd *node, unit string) (int, []string, error) {
	p, err := v.nodeTree(nd.spec.Name, tree.UnitFile(unit))
	if err != nil {
		return 0, nil, err
	}
	u, err := unitfile.Read(p)
	if err != nil {
		return 0, nil, fmt.Errorf("node %s: %w", nd.spec.Name, err)
	}
	cmd, err := u.ExecStart()
	if err != nil {
		return 0, nil, fmt.Errorf("node %s: %w", nd.spec.Name, err)
	}
	argv, paths, files, err := v.command(nd, cmd)
	if err != nil {
		return 0, nil, fmt.Errorf("node %s: %s: %w", nd.spec.Name, unit, err)
	}
	nd.units[unit] = u
	nd.argv[unit] = argv
	return len(paths), files, nil
}

// command turns a unit's command into the argv verify runs: the binary from
// the bin dirs, the node's paths under its root, and the configuration files
// those paths name rewritten the same way. It returns the argv, the node
// paths it names and the files rewritten.
func (v *run) command(nd *node, c unitfile.Command) ([]string, []string, []string, error) {
	bin, err := v.binary(c.Argv[0])
	if err != nil {
		return nil, nil, nil, err
	}
	argv, paths := nd.root.Argv(c.Argv)
	argv[0] = bin
	files, err := nd.root.RewriteFiles(paths)
	if err != nil {
		return nil, nil, nil, err
	}
	return argv, paths, files, nil
}

// lookHAProxy finds Debian's HAProxy (a variable for tests).
var lookHAProxy = func() (string, error) { return exec.LookPath("haproxy") }

// hostTools may come from the build machine when the bin dirs lack them:
// they are the base system's, not the cluster's pinned binaries.
var hostTools = map[string]bool{"touch": true, "rm": true, "mkdir": true, "true": true}

// binary finds an executable by its base name in the bin dirs.
func (v *run) binary(path string) (string, error) {
	base := filepath.Base(path)
	for _, d := range v.o.BinDirs {
		p := filepath.Join(d, base)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if hostTools[base] {
		if p, err := exec.LookPath(base); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found in the bin dirs %v (build the pinned binaries with `make tools` and pass --bin-dir bin/tools)", base, v.o.BinDirs)
}

// planLB decides where the VIP lives: on the first lb node's namespace with
// HAProxy running the generated configuration, or, without HAProxy or its
// configuration, on the first controller's namespace.
func (v *run) planLB() (string, error) {
	first := v.byName[v.c.NodesWith(spec.RoleController)[0].Name]
	port := v.apiPort(first)
	if v.c.Spec.APIServer.VIP == "" {
		v.endpoint = netip.AddrPortFrom(first.spec.IP(), port)
		return fmt.Sprintf("no VIP: the API endpoint is %s (first controller)", first.spec.Name), nil
	}
	vip := netip.MustParseAddr(v.c.Spec.APIServer.VIP)
	v.endpoint = netip.AddrPortFrom(vip, port)
	vipPrefix := netip.PrefixFrom(vip, mustPrefix(v.c.Spec.Network.NodeCIDR).Bits())
	lbs := v.c.NodesWith(spec.RoleLB)
	var why string
	haproxy, herr := lookHAProxy()
	switch {
	case len(lbs) == 0:
		why = "the spec has no lb node"
	case herr != nil:
		why = "haproxy is not installed (apt-get install haproxy)"
	default:
		cfg, err := v.nodeTree(lbs[0].Name, lb.HAProxyConfig)
		if err != nil {
			return "", err
		}
		if _, err := os.Stat(cfg); err != nil {
			why = fmt.Sprintf("%s has no %s", lbs[0].Name, lb.HAProxyConfig)
			break
		}
		if err := v.newLB(lbs[0], haproxy, vipPrefix); err != nil {
			return "", err
		}
		v.vipVia = "through haproxy on " + lbs[0].Name
		return fmt.Sprintf("VIP %s on %s, HAProxy (%s) with the generated %s", vip, lbs[0].Name, haproxy, lb.HAProxyConfig), nil
	}
	first.addrs = append(first.addrs, vipPrefix)
	v.vipVia = "held by " + first.spec.Name + ": " + why
	return fmt.Sprintf("VIP %s held by %s's namespace, checked through the first controller: %s", vip, first.spec.Name, why), nil
}

// newLB prepares the lb node: its root with haproxy.cfg path-rewritten, the
// directories the configuration names, the haproxy command line and the VIP
// as a second address. An lb stacked on a controller shares its namespace.
func (v *run) newLB(n spec.Node, haproxy string, vip netip.Prefix) error {
	nd, stacked := v.byName[n.Name]
	if !stacked {
		src, err := v.nodeTree(n.Name)
		if err != nil {
			return err
		}
		root, err := NewRoot(src, filepath.Join(v.work, "nodes", n.Name))
		if err != nil {
			return err
		}
		nd = &node{spec: n, root: root, units: map[string]*unitfile.Unit{}, argv: map[string][]string{}, addrs: []netip.Prefix{mustPrefix(n.Address)}}
	}
	files, err := nd.root.RewriteFiles([]string{lb.HAProxyConfig})
	if err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	cfg := nd.root.Path(lb.HAProxyConfig)
	if err := haproxyDirs(cfg, nd.root.Dir); err != nil {
		return fmt.Errorf("node %s: %w", n.Name, err)
	}
	fmt.Fprintf(v.o.Out, "paths: %s: configuration files rewritten: %s\n", n.Name, listOrNone(files))
	// -db: stay in the foreground, one process, so that its PID is the one we stop.
	nd.argv[lb.HAProxyUnit] = []string{haproxy, "-db", "-f", cfg}
	nd.addrs = append(nd.addrs, vip)
	v.lb = nd
	if !stacked {
		v.nodes = append(v.nodes, nd)
		v.byName[n.Name] = nd
	}
	return nil
}

// haproxyDirs creates the directories the rewritten configuration names under
// the root: the chroot, and the parents of sockets and pid files.
func haproxyDirs(cfg, root string) error {
	f, err := os.Open(cfg)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		for i, w := range fields {
			if !strings.HasPrefix(w, root+"/") {
				continue
			}
			dir := filepath.Dir(w)
			if i > 0 && fields[0] == "chroot" {
				dir = w
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
		}
	}
	return sc.Err()
}

// clientAddr picks the hub's address: the highest address of nodeCIDR that
// no node, VIP, gateway or resolver uses.
func (v *run) clientAddr() (netip.Prefix, error) {
	p := mustPrefix(v.c.Spec.Network.NodeCIDR)
	used := map[netip.Addr]bool{}
	for _, n := range v.c.Spec.Nodes {
		used[n.IP()] = true
	}
	for _, s := range append([]string{v.c.Spec.APIServer.VIP, v.c.Spec.Network.Gateway}, v.c.Spec.Network.DNS...) {
		if a, err := netip.ParseAddr(s); err == nil {
			used[a] = true
		}
	}
	a := lastAddr(p).Prev() // not the broadcast address
	for ; a.IsValid() && p.Contains(a) && a != p.Addr(); a = a.Prev() {
		if !used[a] {
			return netip.PrefixFrom(a, p.Bits()), nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("no free address in %s for the checks' client", p)
}

// lastAddr is the highest address of p.
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// network creates the namespaces.
func (v *run) network(ctx context.Context) (string, error) {
	client, err := v.clientAddr()
	if err != nil {
		return "", err
	}
	var members []Member
	for _, nd := range v.nodes {
		if !v.o.Boot { // booted nodes have their own namespaces
			members = append(members, Member{Node: nd.spec.Name, Addrs: nd.addrs})
		}
	}
	if v.net, err = NewNetwork(ctx, v.log, runPrefix(), client, members); err != nil {
		return "", err
	}
	for _, nd := range v.nodes {
		nd.ns = v.net.Nodes[nd.spec.Name]
	}
	detail := fmt.Sprintf("hub %s with client address %s, %d node namespaces", v.net.Hub.Name, client.Addr(), len(members))
	if len(v.booting) > 0 {
		host, err := v.hostNetwork(ctx)
		if err != nil {
			return "", err
		}
		detail += "; " + host
	}
	return detail, nil
}

// mustPrefix parses a validated address with prefix length.
func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}

func listOrNone(xs []string) string {
	if len(xs) == 0 {
		return "none"
	}
	return strings.Join(xs, ", ")
}
