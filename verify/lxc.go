package verify

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
)

// The boot of a baked LXC template the way Proxmox VE 8 starts a container:
// the template unpacked with pct's tar flags, the container's LXC
// configuration written as pve-container's update_lxc_config writes it from
// the node's proxmox.conf (the pct options and the raw lxc.* keys), started
// by lxc-start (Debian's LXC 5.0, the LXC that pct drives) in the
// foreground, its eth0 a veth on the run's bridge. Where this machine cannot
// be a Proxmox host the differences are applied visibly and printed, never
// in a generated file.

// PctExtract are the flags pct restores a template with
// (pve-container src/PVE/LXC/Create.pm restore_archive, for zstd); the
// archive is on stdin and -C <rootfs> follows.
var PctExtract = []string{"xpf", "-", "--zstd", "--totals", "--one-file-system", "-p", "--sparse", "--numeric-owner",
	"--acls", "--xattrs", "--xattrs-include=user.*", "--xattrs-include=security.capability",
	"--warning=no-file-ignored", "--warning=no-xattr-write", "--skip-old-files", "--anchored", "--exclude", "./dev/*"}

// lxcCommonConf is what pve-container includes for every container whose
// ostype has no <ostype>.common.conf of its own (Debian's LXC has none), and
// lxcUsernsConf what it adds for an unprivileged one.
const (
	lxcCommonConf = "/usr/share/lxc/config/common.conf"
	lxcUsernsConf = "/usr/share/lxc/config/userns.conf"
)

// pveIDMap is the id map pve-container gives an unprivileged container
// without lxc.idmap keys of its own: container ids 0–65535 are host ids
// 100000–165535.
var pveIDMap = [][4]string{{"u", "0", "100000", "65536"}, {"g", "0", "100000", "65536"}}

// IDMap is the container's id map (type, container id, host id, count),
// as pve-container's parse_id_maps reads it: the raw lxc.idmap keys, else
// Proxmox's map for an unprivileged container; nil for a privileged one.
func (c *PctConf) IDMap() ([][4]string, error) {
	var out [][4]string
	for _, kv := range c.Raw {
		if kv[0] != "lxc.idmap" {
			continue
		}
		f := strings.Fields(kv[1])
		if len(f) != 4 || (f[0] != "u" && f[0] != "g") {
			return nil, fmt.Errorf("lxc.idmap %q: not \"u|g CTID HOSTID COUNT\"", kv[1])
		}
		out = append(out, [4]string{f[0], f[1], f[2], f[3]})
	}
	if out == nil && c.Options["unprivileged"] == "1" {
		out = pveIDMap
	}
	return out, nil
}

// rootIDs are the host uid and gid of the container's root under idmap.
func rootIDs(idmap [][4]string) (uid, gid int) {
	for _, m := range idmap {
		if m[1] == "0" {
			id, _ := strconv.Atoi(m[2])
			if m[0] == "u" {
				uid = id
			} else {
				gid = id
			}
		}
	}
	return uid, gid
}

// PctConf is a node's proxmox.conf: the pct options and, in order, the raw
// lxc.* keys appended to /etc/pve/lxc/<vmid>.conf.
type PctConf struct {
	Options map[string]string
	Raw     [][2]string
}

// ReadPctConf parses a proxmox.conf ("key: value" lines, # comments).
func ReadPctConf(path string) (*PctConf, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c := &PctConf{Options: map[string]string{}}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, fmt.Errorf("%s:%d: not a key: value line: %q", path, n, l)
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		if strings.HasPrefix(k, "lxc.") {
			c.Raw = append(c.Raw, [2]string{k, v})
		} else {
			c.Options[k] = v
		}
	}
	return c, sc.Err()
}

// netOptions parses a pct net<N> option (name=eth0,bridge=vmbr0,...).
func netOptions(s string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(s, ",") {
		k, v, _ := strings.Cut(kv, "=")
		out[k] = v
	}
	return out
}

// lxcHost is what of this machine changes a container's configuration.
type lxcHost struct {
	cgroupV1 bool   // the devices controller is cgroup v1 (Proxmox VE 8 hosts are pure cgroup v2)
	upScript string // attaches a veth's host side to the bridge (Proxmox: lxcnetaddbr)
}

// lxcConfig writes the LXC configuration pve-container's update_lxc_config
// writes for a privileged container from c, with rootfs as its root, and
// returns it with the differences this host forces, each a line to print.
func lxcConfig(vmid string, c *PctConf, rootfs string, h lxcHost) (string, []string, error) {
	idmap, err := c.IDMap()
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	var diffs []string
	set := func(k, v string) { fmt.Fprintf(&b, "%s = %s\n", k, v) }
	set("lxc.cgroup.relative", "0")
	set("lxc.cgroup.dir.monitor", "lxc.monitor/"+vmid)
	set("lxc.cgroup.dir.container", "lxc/"+vmid)
	set("lxc.cgroup.dir.container.inner", "ns")
	set("lxc.arch", cmp.Or(c.Options["arch"], "amd64"))
	set("lxc.include", lxcCommonConf)
	if idmap != nil {
		set("lxc.include", lxcUsernsConf)
	}
	// Proxmox's generated AppArmor profile; the raw keys below replace it.
	// This machine has no AppArmor: LXC skips the profile either way.
	set("lxc.apparmor.profile", "generated")
	set("lxc.monitor.unshare", "1")
	if idmap != nil {
		// pve-container: an unprivileged container gets sys:mixed (the
		// systemd container interface), and Proxmox's id map unless the
		// raw keys carry their own.
		set("lxc.mount.auto", "sys:mixed")
		if !slices.ContainsFunc(c.Raw, func(kv [2]string) bool { return kv[0] == "lxc.idmap" }) {
			for _, m := range idmap {
				set("lxc.idmap", strings.Join(m[:], " "))
			}
		}
	}
	set("lxc.console.path", "none")
	set("lxc.tty.max", "2")
	// Debian's LXC 5.0.2 fails to create /dev/lxc/tty<N> with common.conf's
	// lxc.tty.dir = lxc and no console; Proxmox's lxc-pve does not.
	set("lxc.tty.dir", "")
	diffs = append(diffs, "lxc.tty.dir = (empty): Debian's LXC 5.0.2 cannot create common.conf's /dev/lxc/tty<N> without a console")
	set("lxc.environment", "TERM=linux")
	set("lxc.uts.name", cmp.Or(c.Options["hostname"], "CT"+vmid))
	if h.cgroupV1 {
		diffs = append(diffs, fmt.Sprintf("memory %s MiB, swap %s MiB not limited: Proxmox sets them with lxc.cgroup2.memory.*, and this host's memory controller is cgroup v1", c.Options["memory"], c.Options["swap"]))
	}
	set("lxc.rootfs.path", "dir:"+rootfs)
	for i := 0; i < 10; i++ {
		v, ok := c.Options["net"+strconv.Itoa(i)]
		if !ok {
			continue
		}
		d := netOptions(v)
		p := fmt.Sprintf("lxc.net.%d.", i)
		set(p+"type", "veth")
		set(p+"veth.pair", fmt.Sprintf("veth%si%d", vmid, i))
		if d["hwaddr"] != "" {
			set(p+"hwaddr", d["hwaddr"])
		}
		if d["name"] != "" {
			set(p+"name", d["name"])
		}
		set(p+"mtu", cmp.Or(d["mtu"], "1500"))
		set(p+"script.up", h.upScript)
		diffs = append(diffs, fmt.Sprintf("net%d: bridge %s is the run's bridge br0, in the hub namespace", i, d["bridge"]))
	}
	if h.cgroupV1 {
		// systemd in a container mounts the cgroup v1 controllers itself
		// when the container keeps CAP_SYS_ADMIN (LXC leaves it to them
		// then), and it mounts cpu and cpuacct joined, which fails where
		// the host has them as separate hierarchies; the kubelet then
		// finds no cpu controller. LXC mounts each of the container's
		// hierarchies instead. A Proxmox VE 8 host is pure cgroup v2.
		set("lxc.mount.auto", "cgroup:rw:force")
		diffs = append(diffs, "lxc.mount.auto = cgroup:rw:force: this host's cgroup v1 controllers (cpu and cpuacct apart) are mounted by LXC, not by systemd in the container")
	}
	for _, kv := range c.Raw {
		k := kv[0]
		if h.cgroupV1 && strings.HasPrefix(k, "lxc.cgroup2.devices.") {
			v1 := "lxc.cgroup." + strings.TrimPrefix(k, "lxc.cgroup2.")
			diffs = append(diffs, fmt.Sprintf("%s: %s is %s = %s: this host's devices controller is cgroup v1", k, kv[1], v1, kv[1]))
			k = v1
		}
		set(k, kv[1])
	}
	return b.String(), diffs, nil
}

// pctSetup writes what pct's prestart hook writes into the root of a
// Debian 12 container with the options of c (PVE::LXC::Setup::Debian):
// /etc/hostname, /etc/resolv.conf and the first-boot preset that disables
// systemd-networkd (Base.pm setup_systemd_preset), each skipped, as
// ct_is_file_ignored does, when the node's tree has the file's .pve-ignore
// marker. /etc/hosts and the network configuration are the tree's, behind
// their markers.
func pctSetup(root string, c *PctConf) error {
	idmap, err := c.IDMap()
	if err != nil {
		return err
	}
	uid, gid := rootIDs(idmap)
	write := func(file, data string) error {
		p := filepath.Join(root, file)
		if _, err := os.Stat(filepath.Join(filepath.Dir(p), ".pve-ignore."+filepath.Base(p))); err == nil {
			return nil
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		_ = os.Remove(p) // resolv.conf is a symlink into /run in some bases
		if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
			return err
		}
		// ct_reset_ownership: the container's root owns what pct writes.
		return os.Lchown(p, uid, gid)
	}
	if h := c.Options["hostname"]; h != "" {
		if err := write("etc/hostname", h+"\n"); err != nil {
			return err
		}
	}
	var resolv strings.Builder
	if d := c.Options["searchdomain"]; d != "" {
		fmt.Fprintf(&resolv, "search %s\n", strings.Join(strings.Fields(d), " "))
	}
	for _, ns := range strings.Fields(c.Options["nameserver"]) {
		fmt.Fprintf(&resolv, "nameserver %s\n", ns)
	}
	if err := write("etc/resolv.conf", resolv.String()); err != nil {
		return err
	}
	return write(nodegen.PVEPreset, "# Added by PVE at create-time for first-boot configuration.\n"+
		"enable container-getty@.service\ndisable getty@.service\ndisable sys-kernel-config.mount\n"+
		"disable sys-kernel-debug.mount\ndisable systemd-networkd.service\n")
}

// extractTemplate unpacks an LXC template into root as pct does: for an
// unprivileged container (idmap), tar runs in a user namespace with the
// container's id map (lxc-usernsexec, pve-container's userns_command), so
// that the files belong to the container's ids on the host.
func extractTemplate(ctx context.Context, template, root string, idmap [][4]string) error {
	f, err := os.Open(template)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	argv := append([]string{"tar"}, PctExtract...)
	if idmap != nil {
		uid, gid := rootIDs(idmap)
		if err := os.Chown(root, uid, gid); err != nil {
			return err
		}
		userns := []string{"lxc-usernsexec"}
		for _, m := range idmap {
			userns = append(userns, "-m", strings.Join(m[:], ":"))
		}
		argv = append(append(userns, "--"), argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], append(argv[1:], "-C", root)...)
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("tar with pct's flags: %v: %s", err, lastLine(string(out)))
	}
	return nil
}

// capSysResource is CAP_SYS_RESOURCE's bit in a capability set.
const capSysResource = 24

// hostHasCapSysResource reports whether this process may keep
// CAP_SYS_RESOURCE (its bounding set has it). Without it no process here,
// root or not, can lower an oom_score_adj, which runc does for every pod
// sandbox the kubelet starts (-998).
func hostHasCapSysResource() bool {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return true
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "CapBnd:"); ok {
			bnd, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64)
			return err != nil || bnd&(1<<capSysResource) != 0
		}
	}
	return true
}

// restrictOOMScoreAdj adds containerd's restrict_oom_score_adj to the CRI
// runtime table of the containerd configuration under root: containerd
// then never asks runc for an oom_score_adj below its own. The table is the
// one of config version 3 (containerd 2.x) or 2.
func restrictOOMScoreAdj(root string) error {
	p := filepath.Join(root, "etc/containerd/config.toml")
	data, err := os.ReadFile(p)
	if err != nil {
		return err
	}
	for _, table := range []string{"[plugins.'io.containerd.cri.v1.runtime']\n", "[plugins.\"io.containerd.grpc.v1.cri\"]\n"} {
		if i := bytes.Index(data, []byte(table)); i >= 0 {
			at := i + len(table)
			out := append(append(append([]byte(nil), data[:at]...), "  restrict_oom_score_adj = true # hardway verify: this host has no CAP_SYS_RESOURCE\n"...), data[at:]...)
			return os.WriteFile(p, out, 0o644)
		}
	}
	return fmt.Errorf("%s: no CRI runtime table to add restrict_oom_score_adj to", p)
}

// hostCgroupV1 reports whether this machine's devices controller is cgroup v1.
func hostCgroupV1() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup/devices", &st) == nil && st.Type == unix.CGROUP_SUPER_MAGIC
}

// container is one booted LXC container; lxc-start -F is its process.
type container struct {
	booted
	lxcPath string // lxc-start -P
	hub     *NS    // where lxc-start runs: its command socket is there
	cgroup  string // lxc.cgroup.dir.container, below each hierarchy
}

// peakMemory is the peak of the container's memory cgroup: cgroup v1's
// memory.max_usage_in_bytes, else cgroup v2's memory.peak.
func (c *container) peakMemory() (uint64, error) {
	for _, f := range []string{
		filepath.Join("/sys/fs/cgroup/memory", c.cgroup, "memory.max_usage_in_bytes"),
		filepath.Join("/sys/fs/cgroup", c.cgroup, "memory.peak"),
	} {
		if b, err := os.ReadFile(f); err == nil {
			return strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		}
	}
	return 0, fmt.Errorf("%s: no memory cgroup %s with a peak", c.name, c.cgroup)
}

// initPID asks lxc-start for the container's init (its PID 1) through the
// command socket, which lives in the hub's network namespace.
func (c *container) initPID(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := nsCommand(ctx, c.hub, "lxc-info", "-n", c.name, "-P", c.lxcPath, "-pH").Output()
	if err != nil {
		return 0, fmt.Errorf("lxc-info %s: %w", c.name, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(out)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("lxc-info %s: no init PID (%q)", c.name, out)
	}
	return pid, nil
}

// exec runs a command inside the container (all its namespaces) and
// returns its output.
func (c *container) exec(ctx context.Context, argv ...string) (string, error) {
	pid, err := c.initPID(ctx)
	if err != nil {
		return "", err
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", append([]string{"-t", strconv.Itoa(pid), "-a", "--"}, argv...)...).CombinedOutput()
	return string(out), err
}

// enter is a shell in the container, as `pct enter` opens one.
func (c *container) enter() string {
	pid, err := c.initPID(context.Background())
	if err != nil {
		return fmt.Sprintf("(no init: %v)", err)
	}
	return fmt.Sprintf("nsenter -t %d -a bash", pid)
}

// run runs a command in the container.
func (c *container) run(ctx context.Context, argv ...string) (string, error) {
	out, err := c.exec(ctx, argv...)
	if err != nil {
		return out, fmt.Errorf("%s: %v: %s", strings.Join(argv, " "), err, lastLine(out))
	}
	return out, nil
}

// journal is the tail of a unit's journal in the container.
func (c *container) journal(ctx context.Context, unit string, lines int) string {
	out, err := c.exec(ctx, "journalctl", "--no-pager", "-o", "short-monotonic", "-n", strconv.Itoa(lines), "-u", unit)
	if err != nil {
		return fmt.Sprintf("(journal of %s: %v: %s)", unit, err, lastLine(out))
	}
	return strings.TrimRight(out, "\n")
}

// poweroff asks the container's systemd to power off (SIGRTMIN+4, what
// `pct shutdown` ends up sending through lxc-stop) and waits for lxc-start
// to exit; after timeout it kills the container's init by its PID, which
// takes every process of the container with it.
func (c *container) poweroff(timeout time.Duration) error {
	if done, _ := c.proc.Exited(); done {
		return nil
	}
	pid, err := c.initPID(context.Background())
	if err != nil {
		return err
	}
	const sigRTMin = 34 // glibc's SIGRTMIN, the one systemd counts from
	if err := unix.Kill(pid, unix.Signal(sigRTMin+4)); err != nil {
		return fmt.Errorf("poweroff %s (init pid %d): %w", c.name, pid, err)
	}
	select {
	case <-c.proc.done:
		return nil
	case <-time.After(timeout):
	}
	_ = unix.Kill(pid, unix.SIGKILL)
	select {
	case <-c.proc.done:
		return fmt.Errorf("%s did not power off within %s: its init (pid %d) was killed", c.name, timeout, pid)
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s: lxc-start (pid %d) still runs after its init was killed", c.name, c.proc.PID)
	}
}

// sweepCgroups removes the cgroups (lxc.cgroup.dir.container and .monitor,
// in every hierarchy) that a run killed before its teardown left for a
// container, deepest first. A cgroup tree with any process in it belongs to
// a running container and stays whole (lxc-start then reports the name in
// use).
func sweepCgroups(vmid string) []string {
	var roots []string
	for _, rel := range []string{"lxc/" + vmid, "lxc.monitor/" + vmid} {
		for _, pattern := range []string{filepath.Join("/sys/fs/cgroup", rel), filepath.Join("/sys/fs/cgroup", "*", rel)} {
			m, _ := filepath.Glob(pattern)
			roots = append(roots, m...)
		}
	}
	var removed []string
	for _, root := range roots {
		var dirs []string
		populated := false
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
				procs, _ := os.ReadFile(filepath.Join(p, "cgroup.procs"))
				populated = populated || len(bytes.TrimSpace(procs)) > 0
			}
			return nil
		})
		if populated { // a container runs there: not a killed run's
			continue
		}
		slices.Reverse(dirs) // children before their parents
		for _, d := range dirs {
			if os.Remove(d) == nil && d == root {
				removed = append(removed, d)
			}
		}
	}
	return removed
}

// kubeletImagefsFree is the kubelet's default hard eviction threshold for
// its image file system, imagefs.available<15% (nodefs.available<10% is
// the looser one). The generated KubeletConfiguration keeps the defaults.
const kubeletImagefsFree = 0.15

// diskHeadroom is what booting the containers takes from the work
// directory's file system on top: their unpacked roots and the images
// containerd imports.
const diskHeadroom = 8 << 30

// preflightDisk checks, before anything boots, that an LXC worker's kubelet
// will not see disk pressure. A container's root is unpacked on the work
// directory's file system and the kubelet measures that file system, the
// host's: below its threshold the worker reports DiskPressure, taints itself
// and the smoke pods' rows fail for a reason that is not the cluster's. On
// Proxmox each container's root is its own volume, so this is a fact of
// this host, not of the spec.
func (v *run) preflightDisk() error {
	if !slices.ContainsFunc(v.booting, func(n spec.Node) bool {
		return n.Target == spec.TargetLXC && n.Has(spec.RoleWorker)
	}) {
		return nil
	}
	var st unix.Statfs_t
	if err := unix.Statfs(v.work, &st); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}
	size, avail := int64(st.Blocks)*st.Bsize, int64(st.Bavail)*st.Bsize
	need := int64(float64(size)*kubeletImagefsFree) + diskHeadroom
	if avail < need {
		return fmt.Errorf("the work directory %s is on a file system with %d GiB of %d GiB free: the LXC workers' kubelets see that file system and report DiskPressure under %.0f%% free; free %d GiB more or give --work-dir on another file system",
			v.work, avail>>30, size>>30, kubeletImagefsFree*100, (need-avail+1<<30-1)>>30)
	}
	return nil
}
