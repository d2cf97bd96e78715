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
	"sync"
	"time"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// Workers booted from their baked artifacts (Options.Artifacts: LXC
// templates under lxc-start, KVM images under qemu) join the control plane
// verify runs. The hub then plays the Proxmox host of the
// cluster's host contract: it takes network.gateway when that is not a
// node's address, forwards between the node network's members, and holds
// the routes to the workers' pod CIDRs of proxmox/interfaces.d/hardway. The
// control-plane namespaces get the routes of their node's network file
// (its Gateway= and [Route] sections), as systemd-networkd would set them.

// hostInterfacesFile is the host contract's network file in the cluster directory.
const hostInterfacesFile = "proxmox/interfaces.d/hardway"

// prepareGuests checks the nodes of Options.Artifacts: workers with
// nothing else to run here (every node of the spec with Options.Boot),
// each with its artifact and proxmox.conf.
func (v *run) prepareGuests() error {
	if v.o.Boot {
		for _, n := range v.c.Spec.Nodes {
			_, skipped := v.o.Skipped[n.Name]
			if v.o.Artifacts[n.Name] == "" && !skipped {
				return fmt.Errorf("node %s: no artifact to boot", n.Name)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(v.o.Artifacts)) {
		n, ok := v.c.Node(name)
		switch {
		case !ok:
			return fmt.Errorf("artifact for %s: no such node in the spec", name)
		case v.o.Boot:
		case !n.Has(spec.RoleWorker):
			return fmt.Errorf("artifact for %s: the node is not a worker", name)
		case v.byName[name] != nil:
			return fmt.Errorf("artifact for %s: the node also runs control-plane components, which verify starts as processes", name)
		}
		if _, err := os.Stat(v.o.Artifacts[name]); err != nil {
			return fmt.Errorf("artifact for %s: %w", name, err)
		}
		if _, err := os.Stat(v.artifact(nodefiles.ProxmoxConf, name)); err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		v.booting = append(v.booting, n)
	}
	if len(v.booting) == 0 {
		return nil
	}
	if gw := v.c.Spec.Network.Gateway; gw != "" && !v.o.Boot {
		for _, n := range v.c.Spec.Nodes {
			if n.IP().String() == gw {
				return fmt.Errorf("network.gateway %s is node %s, which does not run here: boot workers with the Proxmox host as gateway", gw, n.Name)
			}
		}
	}
	return nil
}

// bootTargets are the targets of the nodes to boot, each once.
func (v *run) bootTargets() []string {
	var out []string
	for _, n := range v.booting {
		if !slices.Contains(out, n.Target) {
			out = append(out, n.Target)
		}
	}
	return out
}

// hostNetwork makes the hub the Proxmox host (see above) and routes the
// control-plane namespaces as their network files say.
func (v *run) hostNetwork(ctx context.Context) (string, error) {
	hub := v.net.Hub
	var notes []string
	if gw := v.c.Spec.Network.Gateway; gw != "" && !v.gatewayIsNode() {
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
	if v.o.Boot {
		return "hub as the Proxmox host: " + strings.Join(notes, "; "), nil
	}
	n := 0
	for _, nd := range v.nodes {
		p, err := v.nodeTree(nd.spec.Name, "etc/systemd/network/eth0.network")
		if err != nil {
			return "", err
		}
		rs, err := networkRoutes(p)
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

// gatewayIsNode reports whether network.gateway is a node of the spec.
func (v *run) gatewayIsNode() bool {
	gw := v.c.Spec.Network.Gateway
	return slices.ContainsFunc(v.c.Spec.Nodes, func(n spec.Node) bool { return n.IP().String() == gw })
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
	_ = v.phase("boot workers", func() (string, error) { return v.bootGuests(ctx) })
}

// booted is what every booted worker has.
type booted struct {
	name    string
	via     string    // what boots it: lxc-start or qemu
	proc    *Proc     // that process
	started time.Time // when it started
}

// guest is a booted worker: a container or a VM.
type guest interface {
	info() *booted
	// journal is the tail of a unit's journal on the worker.
	journal(ctx context.Context, unit string, lines int) string
	// run runs a command on the guest and returns its output; a non-zero
	// exit is an error.
	run(ctx context.Context, argv ...string) (string, error)
	// poweroff shuts the worker down as Proxmox does, and makes sure its
	// process ends (killed after timeout).
	poweroff(timeout time.Duration) error
	// peakMemory is the most memory the guest has used so far, in bytes.
	peakMemory() (uint64, error)
	// enter is the command that opens a shell on the guest, for --keep.
	enter() string
}

func (b *booted) info() *booted { return b }

// bootGuests starts every node to boot from its artifact: containers first
// (they boot in seconds), then VMs.
func (v *run) bootGuests(ctx context.Context) (string, error) {
	dir := filepath.Join(v.work, "guests")
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return "", err
	}
	// lxc.net.N.script.up gets: name, "net", "up", "veth", the host side;
	// qemu's script= gets the tap.
	lxcUp, qemuUp := filepath.Join(dir, "lxc-net-up"), filepath.Join(dir, "qemu-net-up")
	for p, arg := range map[string]string{lxcUp: "$5", qemuUp: "$1"} {
		script := "#!/bin/sh\n# As Proxmox's lxcnetaddbr and pve-bridge: the host side of the link joins the bridge.\nexec ip link set dev \"" + arg + "\" master br0 up\n"
		if err := os.WriteFile(p, []byte(script), 0o755); err != nil {
			return "", err
		}
	}
	vms := 0
	for _, n := range v.booting {
		if n.Target == spec.TargetKVM {
			vms++
		}
	}
	lh, vh := lxcHost{cgroupV1: hostCgroupV1(), upScript: lxcUp}, kvmHost(qemuUp, vms)
	var names []string
	for _, target := range []string{spec.TargetLXC, spec.TargetKVM} {
		for _, n := range bootOrder(v.booting) {
			if n.Target != target {
				continue
			}
			var g guest
			var err error
			if target == spec.TargetLXC {
				g, err = v.bootContainer(ctx, n, dir, lh)
			} else {
				g, err = v.bootVM(n, dir, vh)
			}
			if err != nil {
				return "", fmt.Errorf("node %s: %w", n.Name, err)
			}
			v.guests = append(v.guests, g)
			b := g.info()
			names = append(names, fmt.Sprintf("%s (%s pid %d)", n.Name, b.via, b.proc.PID))
		}
	}
	return strings.Join(names, ", ") + " started", nil
}

// bootContainer unpacks one template as pct does and starts the container.
func (v *run) bootContainer(ctx context.Context, n spec.Node, lxcPath string, h lxcHost) (*container, error) {
	conf, err := ReadPctConf(v.artifact(nodefiles.ProxmoxConf, n.Name))
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(lxcPath, n.Name)
	root := filepath.Join(dir, "rootfs")
	idmap, err := conf.IDMap()
	if err != nil {
		return nil, err
	}
	if idmap != nil {
		// The container's root (a host uid) must reach its rootfs, as
		// it reaches /var/lib/lxc/<vmid>/rootfs on Proxmox.
		if err := os.MkdirAll(dir, 0o711); err != nil {
			return nil, err
		}
		if err := traversable(dir); err != nil {
			return nil, fmt.Errorf("an unprivileged container's root must reach its rootfs: %w (give the work directory's parents o+x)", err)
		}
	}
	if swept := sweepCgroups(fmt.Sprint(n.VMID)); len(swept) > 0 {
		v.log.Info("removed the empty cgroups of a killed run's container", "node", n.Name, "cgroups", swept)
	}
	start := time.Now()
	if err := extractTemplate(ctx, v.o.Artifacts[n.Name], root, idmap); err != nil {
		return nil, err
	}
	if err := pctSetup(root, conf); err != nil {
		return nil, err
	}
	var forced []string
	if n.Has(spec.RoleWorker) && !hostHasCapSysResource() {
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
	fmt.Fprintf(v.o.Out, "lxc: %s: %s unpacked with pct's tar flags in %s; LXC configuration %s from proxmox.conf as pve-container writes it; differences on this host:\n", n.Name, filepath.Base(v.o.Artifacts[n.Name]), time.Since(start).Round(time.Millisecond), cfgPath)
	for _, d := range diffs {
		fmt.Fprintf(v.o.Out, "lxc: %s:   %s\n", n.Name, d)
	}
	// lxc-start runs in the hub's network namespace (where the bridge and
	// its command socket are) and nothing else of it: with `ip netns exec`,
	// the new /sys would hide the cgroup mounts. It is stopped by
	// stopGuests, through the container's init.
	cmd := nsCommand(context.Background(), v.net.Hub, "lxc-start", "-F", "-n", n.Name, "-P", lxcPath, "-f", cfgPath,
		"-o", v.logPath(n.Name, "lxc"), "-l", "INFO")
	p, err := v.procs.Start(n.Name+"/lxc-start", StageGuests, cmd, v.logPath(n.Name, "console"))
	if err != nil {
		return nil, err
	}
	return &container{booted: booted{name: n.Name, via: "lxc-start", proc: p, started: time.Now()}, lxcPath: lxcPath, hub: v.net.Hub, cgroup: "lxc/" + fmt.Sprint(n.VMID)}, nil
}

// bootVM starts qemu with the node's image, its NoCloud seed when generate
// wrote one, and the devices of its proxmox.conf.
func (v *run) bootVM(n spec.Node, dir string, h vmHost) (*vm, error) {
	conf, err := ReadPctConf(v.artifact(nodefiles.ProxmoxConf, n.Name))
	if err != nil {
		return nil, err
	}
	vmDir := filepath.Join(dir, n.Name)
	if err := os.MkdirAll(vmDir, 0o700); err != nil {
		return nil, err
	}
	f := qemuFiles{image: v.o.Artifacts[n.Name], vars: filepath.Join(vmDir, "OVMF_VARS.fd"),
		serial: v.logPath(n.Name, "console"), agent: filepath.Join(vmDir, "qga.sock")}
	if seed := v.artifact(nodefiles.SeedISO, n.Name); conf.Options["ide2"] != "" {
		if _, err := os.Stat(seed); err != nil {
			return nil, fmt.Errorf("the cloudinit drive's seed: %w", err)
		}
		f.seed = seed
	}
	if err := rootfs.CopyFile(OVMFVars, f.vars); err != nil {
		return nil, fmt.Errorf("UEFI variable store: %w (apt-get install ovmf)", err)
	}
	args, diffs, err := qemuArgs(fmt.Sprint(n.VMID), conf, f, h)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(v.o.Out, "qemu: %s: %s with the devices of proxmox.conf as qemu-server makes them; differences on this host:\n", n.Name, filepath.Base(f.image))
	for _, d := range diffs {
		fmt.Fprintf(v.o.Out, "qemu: %s:   %s\n", n.Name, d)
	}
	// qemu runs in the hub's network namespace, where the bridge is: its
	// tap is created there. Stopped by stopGuests, through the agent.
	cmd := nsCommand(context.Background(), v.net.Hub, "qemu-system-x86_64", args...)
	p, err := v.procs.Start(n.Name+"/qemu", StageGuests, cmd, v.logPath(n.Name, "qemu"))
	if err != nil {
		return nil, err
	}
	return &vm{booted: booted{name: n.Name, via: "qemu", proc: p, started: time.Now()}, agent: qga(f.agent), serial: f.serial}, nil
}

// traversable checks that every directory from / to dir lets others pass.
func traversable(dir string) error {
	for d := dir; ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err != nil {
			return err
		}
		if st.Mode().Perm()&0o001 == 0 {
			return fmt.Errorf("%s is mode %s", d, st.Mode().Perm())
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// stopGuests powers every booted node off, all at once, before the control
// plane stops.
func (v *run) stopGuests() error {
	errs := make([]error, len(v.guests))
	var wg sync.WaitGroup
	for i, g := range v.guests {
		wg.Go(func() { errs[i] = g.poweroff(90 * time.Second) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// workerUnits are the units whose journals a failing worker row shows.
var workerUnits = []string{worker.ImagesUnit, worker.ContainerdUnit, worker.KubeletUnit, worker.ProxyUnit}

// withJournals adds to err, for each booted worker, the tail of its units'
// journals, and for each booted controller its API server's, which every
// such row goes through (a restart there explains refused connections).
func (v *run) withJournals(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	// The row's context has usually run out: the journals get their own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
	defer cancel()
	var b strings.Builder
	show := func(gs []guest, units ...string) {
		for _, g := range gs {
			for _, u := range units {
				fmt.Fprintf(&b, "\n  node %s, unit %s:\n%s", g.info().name, u, indent(g.journal(ctx, u, 15)))
			}
		}
	}
	show(v.workerGuests(), workerUnits...)
	show(v.guestsWith(spec.RoleController), controller.APIServerUnit)
	return fmt.Errorf("%w%s", err, b.String())
}
