package verify

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/spec"
)

// Workers booted from their baked LXC templates (Options.Templates) join the
// control plane verify runs. The hub then plays the Proxmox host of the
// cluster's host contract: it takes network.gateway when that is not a
// node's address, forwards between the node network's members, and holds
// the routes to the workers' pod CIDRs of proxmox/interfaces.d/hardway. The
// control-plane namespaces get the routes of their node's network file
// (its Gateway= and [Route] sections), as systemd-networkd would set them.

// hostInterfacesFile is the host contract's network file in the cluster directory.
const hostInterfacesFile = "proxmox/interfaces.d/hardway"

// prepareWorkers checks the nodes of Options.Templates: LXC workers with
// nothing else to run here, each with its template and proxmox.conf.
func (v *run) prepareWorkers() error {
	for _, name := range slices.Sorted(maps.Keys(v.o.Templates)) {
		n, ok := v.c.Node(name)
		switch {
		case !ok:
			return fmt.Errorf("template for %s: no such node in the spec", name)
		case !n.Has(spec.RoleWorker):
			return fmt.Errorf("template for %s: the node is not a worker", name)
		case n.Target != spec.TargetLXC:
			return fmt.Errorf("template for %s: the node has target %s; only LXC templates boot here", name, n.Target)
		case v.byName[name] != nil:
			return fmt.Errorf("template for %s: the node also runs control-plane components, which verify starts as processes", name)
		}
		if _, err := os.Stat(v.o.Templates[name]); err != nil {
			return fmt.Errorf("template for %s: %w", name, err)
		}
		if _, err := os.Stat(filepath.Join(v.o.Dir, "nodes", name, "proxmox.conf")); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		v.workers = append(v.workers, n)
	}
	if len(v.workers) == 0 {
		return nil
	}
	if gw := v.c.Spec.Network.Gateway; gw != "" {
		for _, n := range v.c.Spec.Nodes {
			if n.IP().String() == gw {
				return fmt.Errorf("network.gateway %s is node %s, which does not run here: boot workers with the Proxmox host as gateway", gw, n.Name)
			}
		}
	}
	return nil
}

// hostNetwork makes the hub the Proxmox host (see above) and routes the
// control-plane namespaces as their network files say.
func (v *run) hostNetwork(ctx context.Context) (string, error) {
	hub := v.net.Hub
	var notes []string
	if gw := v.c.Spec.Network.Gateway; gw != "" {
		p := netip.PrefixFrom(netip.MustParseAddr(gw), mustPrefix(v.c.Spec.Network.NodeCIDR).Bits())
		if err := ip(ctx, "-n", hub.Name, "addr", "add", p.String(), "dev", "br0"); err != nil {
			return "", err
		}
		notes = append(notes, "gateway "+gw)
	}
	if err := hub.Do(func() error { return os.WriteFile("/proc/sys/net/ipv4/ip_forward", []byte("1\n"), 0o644) }); err != nil {
		return "", fmt.Errorf("ip_forward in the hub: %w", err)
	}
	routes, bridge, err := hostRoutes(filepath.Join(v.o.Dir, hostInterfacesFile))
	if err != nil {
		return "", err
	}
	for _, r := range routes {
		if err := ip(ctx, append([]string{"-n", hub.Name, "route", "replace"}, append(r, "dev", "br0")...)...); err != nil {
			return "", err
		}
	}
	notes = append(notes, fmt.Sprintf("%d routes of %s (dev %s is br0)", len(routes), hostInterfacesFile, bridge))
	n := 0
	for _, nd := range v.nodes {
		rs, err := networkRoutes(filepath.Join(v.o.Dir, "nodes", nd.spec.Name, "rootfs/etc/systemd/network/eth0.network"))
		if err != nil {
			return "", fmt.Errorf("node %s: %w", nd.spec.Name, err)
		}
		for _, r := range rs {
			if err := ip(ctx, append([]string{"-n", nd.ns.Name, "route", "replace"}, append(r, "dev", "eth0")...)...); err != nil {
				return "", fmt.Errorf("node %s: %w", nd.spec.Name, err)
			}
			n++
		}
	}
	notes = append(notes, fmt.Sprintf("%d routes of the control-plane nodes' network files", n))
	return "hub as the Proxmox host: " + strings.Join(notes, "; "), nil
}

// hostRoutes reads the "post-up ip route replace DST via GW dev BRIDGE"
// lines of the host's interfaces file: each route's "DST via GW", and the bridge.
func hostRoutes(path string) ([][]string, string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, "", err
	}
	defer f.Close()
	var out [][]string
	bridge := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		w := strings.Fields(sc.Text())
		if len(w) == 9 && w[0] == "post-up" && w[1] == "ip" && w[2] == "route" && w[3] == "replace" && w[5] == "via" && w[7] == "dev" {
			out = append(out, []string{w[4], "via", w[6]})
			bridge = w[8]
		}
	}
	return out, bridge, sc.Err()
}

// networkRoutes reads a systemd-networkd file's routes: Gateway= of
// [Network] as the default route, and each [Route]'s Destination= via its
// Gateway=.
func networkRoutes(path string) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	section, dst := "", ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "[") {
			section, dst = l, ""
			continue
		}
		k, val, ok := strings.Cut(l, "=")
		if !ok || strings.HasPrefix(l, "#") {
			continue
		}
		switch {
		case section == "[Network]" && k == "Gateway":
			out = append(out, []string{"default", "via", val})
		case section == "[Route]" && k == "Destination":
			dst = val
		case section == "[Route]" && k == "Gateway" && dst != "":
			out = append(out, []string{dst, "via", val})
		}
	}
	return out, sc.Err()
}

// startWorkers boots the workers once the control plane is bootstrapped.
func (v *run) startWorkers(ctx context.Context) {
	if v.failed || v.bootstrapped != nil || ctx.Err() != nil {
		v.skip("boot workers", "the control plane is not bootstrapped")
		return
	}
	_ = v.phase("boot workers", func() (string, error) { return v.bootWorkers(ctx) })
}

// bootWorkers unpacks and starts every worker's template.
func (v *run) bootWorkers(ctx context.Context) (string, error) {
	lxcPath := filepath.Join(v.work, "lxc")
	if err := os.MkdirAll(lxcPath, 0o700); err != nil {
		return "", err
	}
	up := filepath.Join(lxcPath, "net-up")
	// lxc.net.N.script.up gets: name, "net", "up", "veth", the host side.
	if err := os.WriteFile(up, []byte("#!/bin/sh\n# As Proxmox's lxcnetaddbr: the host side of the veth joins the bridge.\nexec ip link set dev \"$5\" master br0 up\n"), 0o755); err != nil {
		return "", err
	}
	h := lxcHost{cgroupV1: hostCgroupV1(), upScript: up}
	var names []string
	for _, n := range v.workers {
		c, err := v.bootWorker(ctx, n, lxcPath, h)
		if err != nil {
			return "", fmt.Errorf("node %s: %w", n.Name, err)
		}
		v.containers = append(v.containers, c)
		names = append(names, fmt.Sprintf("%s (lxc-start pid %d)", n.Name, c.proc.PID))
	}
	return strings.Join(names, ", ") + " started", nil
}

// bootWorker unpacks one template as pct does and starts the container.
func (v *run) bootWorker(ctx context.Context, n spec.Node, lxcPath string, h lxcHost) (*container, error) {
	conf, err := ReadPctConf(filepath.Join(v.o.Dir, "nodes", n.Name, "proxmox.conf"))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(lxcPath, n.Name)
	root := filepath.Join(dir, "rootfs")
	start := time.Now()
	if err := extractTemplate(ctx, v.o.Templates[n.Name], root); err != nil {
		return nil, err
	}
	if err := pctSetup(root, conf); err != nil {
		return nil, err
	}
	var forced []string
	if !hostHasCapSysResource() {
		if err := restrictOOMScoreAdj(root); err != nil {
			return nil, err
		}
		forced = append(forced, "/etc/containerd/config.toml: restrict_oom_score_adj = true added to the unpacked copy: this host's processes have no CAP_SYS_RESOURCE, so runc cannot lower a pod sandbox's oom_score_adj (a Proxmox host and the container keep it)")
	}
	cfg, diffs, err := lxcConfig(fmt.Sprint(n.VMID), conf, root, h)
	if err != nil {
		return nil, err
	}
	diffs = append(diffs, forced...)
	cfgPath := filepath.Join(dir, "config")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		return nil, err
	}
	fmt.Fprintf(v.o.Out, "lxc: %s: %s unpacked with pct's tar flags in %s; LXC configuration %s from proxmox.conf as pve-container writes it; differences on this host:\n", n.Name, filepath.Base(v.o.Templates[n.Name]), time.Since(start).Round(time.Millisecond), cfgPath)
	for _, d := range diffs {
		fmt.Fprintf(v.o.Out, "lxc: %s:   %s\n", n.Name, d)
	}
	// lxc-start runs in the hub's network namespace (where the bridge and
	// its command socket are) and nothing else of it: with `ip netns exec`,
	// the new /sys would hide the cgroup mounts. It is stopped by
	// stopWorkers, through the container's init.
	cmd := nsCommand(context.Background(), v.net.Hub, "lxc-start", "-F", "-n", n.Name, "-P", lxcPath, "-f", cfgPath,
		"-o", v.logPath(n.Name, "lxc"), "-l", "INFO")
	p, err := v.procs.Start(n.Name+"/lxc-start", 4, cmd, v.logPath(n.Name, "console"))
	if err != nil {
		return nil, err
	}
	return &container{name: n.Name, lxcPath: lxcPath, hub: v.net.Hub, proc: p, started: time.Now()}, nil
}

// stopWorkers powers every container off before the control plane stops.
func (v *run) stopWorkers() error {
	var errs []error
	for _, c := range v.containers {
		errs = append(errs, c.poweroff(90*time.Second))
	}
	return errors.Join(errs...)
}

// workerUnits are the units whose journals a failing worker row shows.
var workerUnits = []string{worker.ImagesUnit, worker.ContainerdUnit, worker.KubeletUnit, worker.ProxyUnit}

// withJournals adds to err, for each booted worker, the tail of its units' journals.
func (v *run) withJournals(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	// The row's context has usually run out: the journals get their own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	var b strings.Builder
	for _, c := range v.containers {
		for _, u := range workerUnits {
			fmt.Fprintf(&b, "\n  node %s, unit %s:\n%s", c.name, u, indent(c.journal(ctx, u, 15)))
		}
	}
	return fmt.Errorf("%w%s", err, b.String())
}
