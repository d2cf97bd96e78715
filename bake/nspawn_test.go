package bake

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/tree"
	"github.com/hardway-dev/hardway/verify"
)

// The boot of a baked LXC template under systemd-nspawn, shared by the role
// tests: unpack as pct does, boot in network namespaces of the test's own,
// report what systemd did with the node's units, power off. What a role
// must reach (an endpoint, a unit state) is checked by its test.

// clientAddr is the address of the test's client namespace on the node's
// network (the spec's nodeCIDR).
const clientAddr = "10.240.0.99/24"

// reportDir is where the reporter writes, in the container.
const reportDir = "/var/tmp/hwtest"

// reportScript runs in the booted container (added to the unpacked tree by
// the test, not baked): every 2 seconds it writes the state of every unit,
// the unit files' enablement, the journal tail of each unit listed in
// journal-units, the system state and the machine id where the host reads
// them.
const reportScript = `#!/bin/sh
out=` + reportDir + `
while :; do
	systemctl show --property=Id,Result,NRestarts,ExecMainStartTimestampMonotonic,ExecMainStatus,ActiveEnterTimestampMonotonic,ConditionResult $(systemctl list-units --all --plain --no-legend --type=service | cut -d' ' -f1) >$out/results.tmp
	mv $out/results.tmp $out/results.txt
	systemctl list-units --all --no-pager --plain --no-legend >$out/units.tmp && mv $out/units.tmp $out/units.txt
	systemctl list-unit-files --no-pager --plain --no-legend >$out/files.tmp && mv $out/files.tmp $out/unit-files.txt
	for u in $(cat $out/journal-units); do
		journalctl --boot --no-pager --output=short-monotonic --lines=300 --unit=$u >$out/journal.tmp
		mv $out/journal.tmp $out/journal-$u.txt
	done
	systemctl is-system-running >$out/state.tmp; mv $out/state.tmp $out/state.txt
	cat /etc/machine-id >$out/machine-id.tmp; mv $out/machine-id.tmp $out/machine-id.txt
	sleep 2
done
`

const reportUnit = `[Unit]
Description=hardway bake test: report the units' states to the host
[Service]
ExecStart=/bin/sh ` + reportDir + `/report.sh
[Install]
WantedBy=multi-user.target
`

// lxcBoot is a template unpacked as pct does and booted with systemd-nspawn
// in a network namespace whose eth0 is a veth to a second namespace, the
// test's client, at clientAddr.
type lxcBoot struct {
	node     string
	root     string    // the unpacked tree
	nodeNS   string    // the container's network namespace (a path)
	clientNS string    // the client's network namespace (a path)
	units    []string  // the units the node's tree enables
	sshd     bool      // the base has sshd: sysprep's key generation and ssh.service run too
	console  string    // nspawn's output
	start    time.Time // when nspawn started
	nspawn   *exec.Cmd
	exited   chan struct{} // closed when nspawn has exited, with its error in err
	err      error
	stopped  bool
}

// bootLXC unpacks template (baked for node) as pct does and boots it. The
// container is powered off, and its namespaces removed, when the test ends
// if stop was not called before.
func bootLXC(t *testing.T, x *nodegen.Context, template, node string) *lxcBoot {
	t.Helper()
	b := &lxcBoot{node: node, root: filepath.Join(t.TempDir(), "root")}
	if err := os.Mkdir(b.root, 0o755); err != nil {
		t.Fatal(err)
	}
	extract := exec.Command("tar", append(verify.PctExtract, "-C", b.root)...)
	f, err := os.Open(template)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extract.Stdin = f
	if out, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("tar (as pct): %v\n%s", err, out)
	}
	if id, _ := os.ReadFile(b.path("etc/machine-id")); len(id) != 0 {
		t.Errorf("/etc/machine-id holds %q, want it empty", id)
	}
	tr, err := treeOf(x, node)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range tr.Units() {
		b.units = append(b.units, u.Name)
	}
	b.sshd = exists(b.path("usr/sbin/sshd"))
	addReporter(t, b.root, b.reported())

	// CAP_NET_ADMIN in its own namespace, as a Proxmox container has it:
	// systemd-networkd (ConditionCapability=CAP_NET_ADMIN) configures eth0.
	args := []string{"--boot", "--register=no", "--keep-unit", "--capability=CAP_NET_ADMIN", "-D", b.root}

	tag := fmt.Sprintf("hwbake-%s-%d-", node, os.Getpid())
	b.nodeNS = netns(t, tag+"n")
	b.clientNS = netns(t, tag+"c")
	run(t, "ip", "-n", tag+"n", "link", "add", "eth0", "type", "veth", "peer", "name", "hwc0", "netns", tag+"c")
	run(t, "ip", "-n", tag+"c", "addr", "add", clientAddr, "dev", "hwc0")
	run(t, "ip", "-n", tag+"c", "link", "set", "hwc0", "up")
	run(t, "ip", "-n", tag+"c", "link", "set", "lo", "up")

	console, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer console.Close() // nspawn has its own descriptor
	b.console = console.Name()
	b.nspawn = exec.Command("systemd-nspawn", append(args, "--network-namespace-path="+b.nodeNS)...)
	b.nspawn.Stdout, b.nspawn.Stderr = console, console
	b.start = time.Now()
	if err := b.nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	b.exited = make(chan struct{})
	go func() { b.err = b.nspawn.Wait(); close(b.exited) }()
	// Registered after netns: runs before the namespaces are removed.
	t.Cleanup(func() {
		b.stop(t)
		if t.Failed() {
			out, _ := os.ReadFile(b.console)
			t.Logf("console:\n%s", tailLines(stripANSI(string(out)), 60))
		}
	})
	return b
}

// path is p (relative) in the container's tree.
func (b *lxcBoot) path(p string) string { return filepath.Join(b.root, p) }

// since is the time since nspawn started.
func (b *lxcBoot) since() time.Duration { return time.Since(b.start) }

// reported are the units the report shows: the node's, and sshd's when the
// base has it.
func (b *lxcBoot) reported() []string {
	units := append([]string(nil), b.units...)
	if b.sshd {
		units = append(units, rootfs.SSHKeygenUnit, "ssh.service")
	}
	return units
}

// baseUnits are the units enabled in the container (linked from a target's
// .wants or .requires directory in /etc) that the report does not show
// already, but the reporter's own: the base's packages enabled them.
func (b *lxcBoot) baseUnits() []string {
	shown := map[string]bool{"hwtest-report.service": true}
	for _, u := range b.reported() {
		shown[u] = true
	}
	var out []string
	for _, dir := range []string{"*.wants", "*.requires"} {
		links, _ := filepath.Glob(b.path(path.Join("etc/systemd/system", dir, "*")))
		for _, l := range links {
			if u := filepath.Base(l); !shown[u] {
				shown[u] = true
				out = append(out, u)
			}
		}
	}
	slices.Sort(out)
	return out
}

// stop powers the container off: SIGTERM makes nspawn ask the container's
// systemd to power off; nspawn is killed (by its PID) if it has not exited
// within 120 seconds. Stopping twice does nothing.
func (b *lxcBoot) stop(t *testing.T) {
	if b.stopped {
		return
	}
	b.stopped = true
	t0 := time.Now()
	b.nspawn.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.exited:
		t.Logf("container powered off in %s (%v)", time.Since(t0).Round(time.Millisecond), b.err)
	case <-time.After(120 * time.Second):
		t.Errorf("container did not stop within 120s of SIGTERM; killing nspawn (pid %d)", b.nspawn.Process.Pid)
		b.nspawn.Process.Kill()
		<-b.exited
	}
}

// report waits until the container's systemd has settled (see waitReport),
// logs the state of every unit the node enables, and checks what holds on
// every node: those units are loaded and enabled, sshd's units ran and made
// a host key, and a machine id was generated at boot. Units in any other
// state than active or finished get their journal tail logged.
func (b *lxcBoot) report(t *testing.T, timeout time.Duration) *unitReport {
	t.Helper()
	units := b.reported()
	r := b.waitReport(t, units, timeout)
	t.Logf("%s: system state %s %s after nspawn started; the units it enables:", b.node, r.system, b.since().Round(time.Second))
	for _, u := range units {
		t.Logf("  %-40s %s", u, r.state(u))
	}
	if base := b.baseUnits(); len(base) > 0 {
		t.Logf("%s: the units the base enables:", b.node)
		for _, u := range base {
			t.Logf("  %-40s %s", u, r.state(u))
		}
	}
	for _, u := range b.units {
		if r.load[u] != "loaded" || r.file[u] != "enabled" {
			t.Errorf("%s: load state %q, unit file %q; want loaded and enabled", u, r.load[u], r.file[u])
		}
	}
	for _, u := range units {
		switch r.state(u) {
		case "active running", "active exited", "inactive dead (result success)":
		default:
			t.Logf("journal of %s:\n%s", u, indent(tailLines(b.journal(u), 40)))
		}
	}
	if b.sshd {
		want := map[string]string{rootfs.SSHKeygenUnit: "active exited", "ssh.service": "active running"}
		for u, s := range want {
			if r.state(u) != s {
				t.Errorf("%s is %q, want %s", u, r.state(u), s)
			}
		}
		if !exists(b.path("etc/ssh/ssh_host_ed25519_key")) {
			t.Error("no SSH host key generated at boot")
		}
	}
	if id, _ := os.ReadFile(b.path(reportDir + "/machine-id.txt")); len(strings.TrimSpace(string(id))) != 32 {
		t.Errorf("machine id in the container: %q, want one generated at boot", id)
	}
	return r
}

// journal is the journal tail of unit (300 lines) from the last report.
func (b *lxcBoot) journal(unit string) string {
	out, err := os.ReadFile(b.path(reportDir + "/journal-" + unit + ".txt"))
	if err != nil {
		return "(no journal: " + err.Error() + ")"
	}
	return strings.TrimRight(string(out), "\n")
}

// indent indents lines for a log.
func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// addReporter installs the report unit in an unpacked tree; it writes the
// journal tail of each of units.
func addReporter(t *testing.T, root string, units []string) {
	dir := filepath.Join(root, reportDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "etc/systemd/system/hwtest-report.service")
	files := map[string]string{
		filepath.Join(dir, "report.sh"):     reportScript,
		unit:                                reportUnit,
		filepath.Join(dir, "journal-units"): strings.Join(units, "\n") + "\n",
	}
	for p, data := range files {
		if err := os.WriteFile(p, []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	wants := filepath.Join(root, "etc/systemd/system/multi-user.target.wants")
	if err := os.MkdirAll(wants, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/systemd/system/hwtest-report.service", filepath.Join(wants, "hwtest-report.service")); err != nil {
		t.Fatal(err)
	}
}

// unitReport is the reporter's last report.
type unitReport struct {
	system string                       // systemctl is-system-running
	units  map[string][]string          // list-units columns after the name: LOAD ACTIVE SUB
	load   map[string]string            // LOAD of each unit
	file   map[string]string            // the unit file's state (enabled, static...)
	props  map[string]map[string]string // systemctl show properties of each service
}

// state is "ACTIVE SUB" of unit, with the result of the last run of an
// inactive service (a oneshot that finished) or its failed condition; "not
// loaded" for a unit systemd does not know.
func (r *unitReport) state(unit string) string {
	f, ok := r.units[unit]
	if !ok || len(f) < 3 {
		return "not loaded"
	}
	s := f[1] + " " + f[2]
	switch p := r.props[unit]; {
	case f[1] != "inactive":
	case p["ConditionResult"] == "no":
		s += " (condition failed)"
	case p["Result"] != "":
		s += " (result " + p["Result"] + ")"
	}
	return s
}

// crashLoop is the number of automatic restarts after which a service that
// is waiting to be restarted again (activating auto-restart) is taken as
// settled: it fails every time, and waiting longer changes nothing.
const crashLoop = 3

// steady is how long a service that was restarted must stay active to be
// taken as settled: longer than a RestartSec and a failing start.
const steady = 15 * time.Second

// waitReport waits until the container's systemd has finished starting up
// and none of units is still changing state, and returns the report. A
// service that was restarted has settled once it has stayed active for
// steady, or once it is crash-looping.
func (b *lxcBoot) waitReport(t *testing.T, units []string, timeout time.Duration) *unitReport {
	dir := b.path(reportDir)
	deadline := time.Now().Add(timeout)
	for {
		select {
		case <-b.exited:
			t.Fatalf("the container stopped %s after nspawn started (%v)", b.since().Round(time.Millisecond), b.err)
		default:
		}
		st, _ := os.ReadFile(filepath.Join(dir, "state.txt"))
		state := strings.TrimSpace(string(st))
		list, err := os.ReadFile(filepath.Join(dir, "units.txt"))
		results, _ := os.ReadFile(filepath.Join(dir, "results.txt"))
		files, _ := os.ReadFile(filepath.Join(dir, "unit-files.txt"))
		r := parseReport(state, string(list), string(results), string(files))
		settled := state == "running" || state == "degraded"
		for _, u := range units {
			if !r.settled(u) {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("no unit report from the container: %v", err)
			}
			if state != "running" {
				t.Logf("failed units:\n%s", failed(string(list)))
			}
			return r
		}
		time.Sleep(time.Second)
	}
}

// settled says whether unit is done changing state (see waitReport).
func (r *unitReport) settled(unit string) bool {
	f, p := r.units[unit], r.props[unit]
	if len(f) < 3 {
		return true
	}
	restarts, _ := strconv.Atoi(p["NRestarts"])
	switch {
	case f[1] == "activating" && f[2] == "auto-restart":
		return restarts >= crashLoop
	case f[1] == "activating" || f[1] == "deactivating" || f[1] == "reloading":
		return false
	case f[1] == "active" && restarts > 0:
		// CLOCK_MONOTONIC is the host's and the container's.
		var now unix.Timespec
		since, err := strconv.ParseInt(p["ActiveEnterTimestampMonotonic"], 10, 64)
		if err != nil || unix.ClockGettime(unix.CLOCK_MONOTONIC, &now) != nil {
			return false
		}
		return time.Duration(now.Nano()-since*1000) >= steady
	}
	return true
}

// parseReport reads the reporter's files: `systemctl list-units --plain
// --no-legend`, `systemctl show` of the services (one block of properties
// each, in any order) and `systemctl list-unit-files --plain --no-legend`.
func parseReport(system, list, results, files string) *unitReport {
	r := &unitReport{system: system, units: map[string][]string{}, load: map[string]string{},
		file: map[string]string{}, props: map[string]map[string]string{}}
	for _, block := range strings.Split(results, "\n\n") {
		p := map[string]string{}
		for _, l := range strings.Split(block, "\n") {
			if k, v, ok := strings.Cut(l, "="); ok {
				p[k] = v
			}
		}
		if p["Id"] != "" {
			r.props[p["Id"]] = p
		}
	}
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			r.units[f[0]] = f[1:4]
			r.load[f[0]] = f[1]
		}
	}
	for _, l := range strings.Split(files, "\n") {
		if f := strings.Fields(l); len(f) >= 2 {
			r.file[f[0]] = f[1]
		}
	}
	return r
}

// failed returns the report lines of failed units.
func failed(report string) string {
	var out []string
	for _, l := range strings.Split(report, "\n") {
		if f := strings.Fields(l); len(f) >= 3 && f[2] == "failed" {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

func treeOf(x *nodegen.Context, node string) (*tree.Tree, error) {
	jobs, err := Jobs(x, FormatLXC, node, "")
	if err != nil {
		return nil, err
	}
	return jobs[0].Tree, nil
}

var ansi = regexp.MustCompile(`\x1b\[[0-9;?]*[A-Za-z]`)

func stripANSI(s string) string { return ansi.ReplaceAllString(s, "") }

func tailLines(s string, n int) string {
	l := strings.Split(s, "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, "\n")
}
