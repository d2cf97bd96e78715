package verify

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Boot mode (Options.Boot): every node of the spec boots from the artifact
// it ships as (an LXC template under lxc-start, a KVM image under qemu, see
// worker.go), at its own address on the run's bridge, and nothing runs as
// a process of verify's. The hub stays the Proxmox host (the gateway when
// it is not a node, the host's routes to the pod CIDRs) and the client the
// checks speak from: what an operator's machine on the node network sees.

// bootRoleOrder is the order guests start in, as create-nodes.sh --start
// starts them: what others need first.
var bootRoleOrder = []string{spec.RoleGateway, spec.RoleLB, spec.RoleEtcd, spec.RoleController, spec.RoleWorker}

// bootOrder sorts nodes by the first of their roles in bootRoleOrder,
// keeping the spec's order among equals.
func bootOrder(nodes []spec.Node) []spec.Node {
	rank := func(n spec.Node) int {
		for i, r := range bootRoleOrder {
			if n.Has(r) {
				return i
			}
		}
		return len(bootRoleOrder)
	}
	out := slices.Clone(nodes)
	slices.SortStableFunc(out, func(a, b spec.Node) int { return rank(a) - rank(b) })
	return out
}

// bootEndpoint sets the API endpoint of a booted cluster: the VIP, which the
// lb nodes hold, else the first controller.
func (v *run) bootEndpoint() string {
	first := v.byName[v.c.NodesWith(spec.RoleController)[0].Name]
	port := v.apiPort(first)
	if vip := v.c.Spec.APIServer.VIP; vip != "" {
		v.endpoint = netip.AddrPortFrom(netip.MustParseAddr(vip), port)
		v.vipVia = "held by an lb node"
		return fmt.Sprintf("every node boots from its artifact; the API at the VIP %s", v.endpoint)
	}
	v.endpoint = netip.AddrPortFrom(first.spec.IP(), port)
	return fmt.Sprintf("every node boots from its artifact; no VIP: the API at %s (first controller)", v.endpoint)
}

// bootAll boots every node once the network is up.
func (v *run) bootAll(ctx context.Context) {
	if v.failed || ctx.Err() != nil {
		v.skip("boot nodes", "an earlier phase failed or verify was interrupted")
		return
	}
	if err := v.phase("boot nodes", func() (string, error) { return v.bootGuests(ctx) }); err != nil {
		v.failed = true
	}
}

// workerGuests are the booted guests with the worker role.
func (v *run) workerGuests() []guest { return v.guestsWith(spec.RoleWorker) }

// guestsWith are the booted guests with role r.
func (v *run) guestsWith(r string) []guest {
	var out []guest
	for _, g := range v.guests {
		if n, ok := v.c.Node(g.info().name); ok && n.Has(r) {
			out = append(out, g)
		}
	}
	return out
}

// names are the guests' node names.
func names(gs []guest) []string {
	var out []string
	for _, g := range gs {
		out = append(out, g.info().name)
	}
	return out
}

// clientNS is where the worker rows reach pods and run kubectl from, and
// its name: the first controller's namespace when the control plane runs as
// processes, the hub (the Proxmox host) when every node is booted.
func (v *run) clientNS() (*NS, string) {
	if v.o.Boot {
		return v.net.Hub, "the hub (the Proxmox host)"
	}
	nd := v.firstController()
	return nd.ns, nd.spec.Name
}

// bootChecks are the rows of a booted cluster before the worker rows: the
// nodes, then the control plane's rows that speak to it over the network.
var bootChecks = []check{
	{"every node booted, every unit active", checkBooted},
	{"etcd members healthy over TLS", checkEtcd},
	{"the VIP on exactly one lb; API through it", checkVIP},
	{"admin and super-admin kubeconfigs", checkAdmins},
	{"Secrets encrypted at rest", checkEncryption},
	{"kubernetes service endpoints", checkService},
}

// lastChecks end the rows of a booted cluster: the operator's way in,
// then the failovers, each of which stops a node for good.
var lastChecks = []check{
	{"the gateway: SSH bastion, kubectl there, ssh -J", checkGateway},
	{"failover: the lb holding the VIP stops", checkVIPFailover},
	{"failover: the leading controller stops", checkControllerFailover},
}

// nodeBootTimeout bounds the first row, which waits for every node.
const nodeBootTimeout = 10 * time.Minute

// runBootRows runs the rows of a booted cluster: the nodes and control
// plane's, the workers' when the spec has workers, then lastChecks.
func (v *run) runBootRows(ctx context.Context) {
	skip := ""
	if len(v.guests) == 0 {
		skip = "not run: no node booted"
	}
	boot := nodeBootTimeout
	if slices.Contains(v.bootTargets(), spec.TargetKVM) {
		boot = vmBootTimeout
	}
	v.runRows(ctx, bootChecks[:1], boot, skip)
	v.runRows(ctx, bootChecks[1:], rowTimeout, skip)
	if len(v.c.NodesWith(spec.RoleWorker)) > 0 {
		_, row := v.workerTimeouts()
		v.runRows(ctx, workerChecks, row, skip)
	}
	v.runRows(ctx, lastChecks[:1], rowTimeout, skip)
	v.runRows(ctx, lastChecks[1:], failoverTimeout, skip)
}

// checkBooted: systemd on every node reaches "running": every unit the
// node enables is active, none failed; then the API answers /readyz at its
// endpoint. A node that ends "degraded" fails the row with its failed
// units and their journals.
func checkBooted(ctx context.Context, v *run) (string, error) {
	var details []string
	for _, g := range v.guests {
		b := g.info()
		var state string
		err := poll(ctx, 2*time.Second, func() error {
			out, _ := g.run(ctx, "systemctl", "is-system-running")
			state = strings.TrimSpace(out)
			switch state {
			case "running":
				return nil
			case "degraded":
				failed, _ := g.run(ctx, "systemctl", "list-units", "--failed", "--plain", "--no-legend")
				var units []string
				for _, l := range strings.Split(strings.TrimSpace(failed), "\n") {
					if f := strings.Fields(l); len(f) > 0 {
						units = append(units, f[0])
					}
				}
				var j strings.Builder
				for _, u := range units {
					fmt.Fprintf(&j, "\n  unit %s:\n%s", u, indent(g.journal(ctx, u, 15)))
				}
				return permanentError{fmt.Errorf("node %s is degraded: failed %s%s", b.name, strings.Join(units, ", "), j.String())}
			}
			return fmt.Errorf("node %s: systemd is %q", b.name, state)
		})
		if err != nil {
			return "", err
		}
		detail := fmt.Sprintf("%s %s", b.name, round(time.Since(b.started)))
		has, err := v.hasBootstrap(b.name)
		if err != nil {
			return "", err
		}
		if has {
			if err := bootstrapped(ctx, g); err != nil {
				return "", err
			}
			detail += fmt.Sprintf(" (%s done after %s)", controller.BootstrapUnit, round(time.Since(b.started)))
		}
		details = append(details, detail)
	}
	// Units active is not the API ready: its post-start hooks (the
	// bootstrap RBAC roles, the default namespaces) may still run.
	if err := v.apiReady(ctx, v.endpoint); err != nil {
		return "", err
	}
	return fmt.Sprintf("%d nodes running, after their start: %s; https://%s/readyz ok", len(v.guests), strings.Join(details, ", "), v.endpoint), nil
}

// checkVIP: with a VIP, exactly one lb node holds it (keepalived), and the
// API answers through it and on every controller with the bundle's CA
// (checkAPIServers).
func checkVIP(ctx context.Context, v *run) (string, error) {
	detail := ""
	if vip := v.c.Spec.APIServer.VIP; vip != "" {
		holder, err := v.vipHolder(ctx)
		if err != nil {
			return "", err
		}
		detail = fmt.Sprintf("VIP %s on %s; ", vip, holder.info().name)
	}
	api, err := checkAPIServers(ctx, v)
	return detail + api, err
}

// vipHolder waits until exactly one running lb node holds the VIP, and
// returns it.
func (v *run) vipHolder(ctx context.Context) (guest, error) {
	vip := v.c.Spec.APIServer.VIP
	var holders []guest
	err := poll(ctx, 250*time.Millisecond, func() error {
		holders = holders[:0]
		for _, g := range v.guestsWith(spec.RoleLB) {
			if done, _ := g.info().proc.Exited(); done {
				continue
			}
			addrs, err := g.run(ctx, "ip", "-o", "-4", "addr", "show")
			if err != nil {
				return fmt.Errorf("%s: %w", g.info().name, err)
			}
			if strings.Contains(addrs, " "+vip+"/") {
				holders = append(holders, g)
			}
		}
		if len(holders) != 1 {
			return fmt.Errorf("VIP %s held by %d lb nodes (%s), want exactly one", vip, len(holders), listOrNone(names(holders)))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return holders[0], nil
}

// recordPeaks notes every running guest's peak memory so far, before a
// failover row stops some of them (a stopped container's cgroup is gone).
func (v *run) recordPeaks() {
	for _, g := range v.guests {
		v.peak(g)
	}
}

// peak is a guest's peak memory: the higher of what it reports now and what
// recordPeaks noted, or, once it is stopped, what was noted.
func (v *run) peak(g guest) (uint64, error) {
	if v.peaks == nil {
		v.peaks = map[string]uint64{}
	}
	name := g.info().name
	p, err := g.peakMemory()
	noted, ok := v.peaks[name]
	switch {
	case err == nil:
		v.peaks[name] = max(noted, p)
	case ok:
		err = nil
	}
	return v.peaks[name], err
}

// peakMemory sums every booted guest's peak memory: an upper bound of the
// cluster's peak, since the nodes need not peak at once. A guest stopped
// by a failover row counts with its peak before it stopped.
func (v *run) peakMemory() (string, error) {
	var total uint64
	var parts []string
	for _, g := range v.guests {
		p, err := v.peak(g)
		if err != nil { // a measurement: it fails nothing
			parts = append(parts, fmt.Sprintf("%s unknown (%v)", g.info().name, err))
			continue
		}
		total += p
		parts = append(parts, fmt.Sprintf("%s %d", g.info().name, p>>20))
	}
	return fmt.Sprintf("%d MiB, the sum of each node's peak (MiB): %s", total>>20, strings.Join(parts, ", ")), nil
}

// bootstrapUnit is the generated bootstrap unit file of node (only the
// first controller's tree has one).
func (v *run) bootstrapUnit(node string) (string, error) {
	return v.nodeTree(node, tree.UnitFile(controller.BootstrapUnit))
}

// hasBootstrap says whether node's tree carries the bootstrap unit.
func (v *run) hasBootstrap(node string) (bool, error) {
	p, err := v.bootstrapUnit(node)
	if err != nil {
		return false, err
	}
	_, err = os.Stat(p)
	return err == nil, nil
}

// bootstrapped waits until the bootstrap unit has applied the cluster's
// manifests (its guard file exists). systemd calls the system running while
// that one-shot job still retries (Restart=on-failure, until the API
// answers), and what it applies (the admin's RBAC binding, CoreDNS) is what
// the later rows use; a unit that gave up (failed) ends the wait.
func bootstrapped(ctx context.Context, g guest) error {
	name := g.info().name
	return poll(ctx, 2*time.Second, func() error {
		if _, err := g.run(ctx, "test", "-e", controller.BootstrapGuard); err == nil {
			return nil
		}
		state, _ := g.run(ctx, "systemctl", "is-failed", controller.BootstrapUnit)
		if strings.TrimSpace(state) == "failed" {
			return permanentError{fmt.Errorf("node %s: %s failed:\n%s", name, controller.BootstrapUnit, indent(g.journal(ctx, controller.BootstrapUnit, 15)))}
		}
		return fmt.Errorf("node %s: %s has not applied the manifests yet (no %s)", name, controller.BootstrapUnit, controller.BootstrapGuard)
	})
}
