package bake

import (
	"archive/tar"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// pctExtract are the flags pct restores a template with
// (pve-container src/PVE/LXC/Create.pm restore_archive, for zstd).
var pctExtract = []string{"xpf", "-", "--zstd", "--totals", "--one-file-system", "-p", "--sparse", "--numeric-owner",
	"--acls", "--xattrs", "--xattrs-include=user.*", "--xattrs-include=security.capability",
	"--warning=no-file-ignored", "--warning=no-xattr-write", "--skip-old-files", "--anchored", "--exclude", "./dev/*"}

// TestLXCTemplate bakes cp1 (controller + etcd, the only etcd member) from a
// real Debian base with the real etcd and Kubernetes binaries, checks the
// template with GNU tar as pct would, bakes it again to compare bytes, and
// boots it with systemd-nspawn in network namespaces of its own.
func TestLXCTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("bakes and boots a real template")
	}
	need(t, "tar", "zstd", "systemd-nspawn", "ip")
	bins := map[string]string{}
	for _, b := range controllerBins {
		bins[b] = realBin(t, b)
	}
	doc := testSpec(t, spec.ModeUpstream, bins, nil)
	x, _ := generated(t, doc)
	base := realBase(t)
	out := t.TempDir()
	start := time.Now()
	res, err := bakeOne(t, context.Background(), x, doc, base, out, "cp1")
	if err != nil {
		t.Fatal(err)
	}
	st := res[0].Stats
	t.Logf("baked %s in %s: %d members, %.0f MB content, %.0f MB zstd", filepath.Base(res[0].Path),
		time.Since(start).Round(time.Millisecond), st.Members, float64(st.Bytes)/1e6, float64(fileSize(t, res[0].Path))/1e6)

	t.Run("pct rules with GNU tar", func(t *testing.T) { checkWithGNUTar(t, res[0].Path) })
	t.Run("sha256sum", func(t *testing.T) {
		cmd := exec.Command("sha256sum", "-c", filepath.Base(res[0].Path)+".sha256")
		cmd.Dir = out
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sha256sum -c: %v\n%s", err, b)
		}
	})
	t.Run("reproducible", func(t *testing.T) {
		again, err := bakeOne(t, context.Background(), x, doc, base, t.TempDir(), "cp1")
		if err != nil {
			t.Fatal(err)
		}
		if again[0].SHA256 != res[0].SHA256 {
			t.Fatalf("two bakes of the same inputs differ: %s and %s", res[0].SHA256, again[0].SHA256)
		}
	})
	t.Run("boot", func(t *testing.T) { boot(t, x, res[0].Path, "cp1") })
}

func fileSize(t testing.TB, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Size()
}

// checkWithGNUTar lists a template with GNU tar and checks pct's rules: an
// sbin entry, at least 10 members, nothing below /dev, numeric owners, and
// no extended attribute but user.* and security.capability.
func checkWithGNUTar(t *testing.T, file string) {
	list := run(t, "tar", "-tv", "--zstd", "-f", file)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	owner := regexp.MustCompile(`^\S+ (\d+)/(\d+) `)
	sbin := false
	for _, l := range lines {
		f := strings.Fields(l)
		if len(f) < 6 {
			t.Fatalf("unexpected listing line %q", l)
		}
		name := f[5]
		switch {
		case name == "./sbin" || name == "./sbin/":
			sbin = true
		case strings.HasPrefix(name, "./dev/") && name != "./dev/":
			t.Errorf("member below /dev: %s", l)
		case !strings.HasPrefix(name, "./"):
			t.Errorf("member not ./-prefixed: %s", l)
		}
		if !owner.MatchString(l) {
			t.Errorf("owner not numeric: %s", l)
		}
	}
	if !sbin || len(lines) < pctMinMembers {
		t.Errorf("sbin entry %v, %d members", sbin, len(lines))
	}
	xl := run(t, "tar", "--xattrs", "--xattrs-include=*", "-tvv", "--zstd", "-f", file)
	xattr := regexp.MustCompile(`^\s+x: \d+ (\S+)`)
	n := 0
	for _, l := range strings.Split(xl, "\n") {
		if m := xattr.FindStringSubmatch(l); m != nil {
			n++
			if !lxcXattr(m[1]) {
				t.Errorf("xattr %s survives", m[1])
			}
		}
	}
	t.Logf("GNU tar: %d members, ./sbin present, nothing below ./dev/, %d xattrs (user.* or security.capability)", len(lines), n)
}

// reportScript runs in the booted container (added to the unpacked tree by
// the test, not baked): every 2 seconds it writes the state of every unit,
// the system state and the machine id where the host reads them.
const reportScript = `#!/bin/sh
out=/var/tmp/hwtest
while :; do
	systemctl show --property=Id,Result $(systemctl list-units --all --plain --no-legend --type=service | cut -d' ' -f1) >$out/results.tmp
	mv $out/results.tmp $out/results.txt
	systemctl list-units --all --no-pager --plain --no-legend >$out/units.tmp && mv $out/units.tmp $out/units.txt
	systemctl is-system-running >$out/state.tmp; mv $out/state.tmp $out/state.txt
	cat /etc/machine-id >$out/machine-id.txt
	sleep 2
done
`

const reportUnit = `[Unit]
Description=hardway bake test: report the units' states to the host
[Service]
ExecStart=/bin/sh /var/tmp/hwtest/report.sh
[Install]
WantedBy=multi-user.target
`

// boot unpacks a template as pct does and boots it with systemd-nspawn in a
// network namespace whose eth0 is a veth to a second namespace, the test's
// client, at 10.240.0.99. It waits for etcd's /health and kube-apiserver's
// /readyz over TLS from the client, then reports every enabled unit's state.
func boot(t *testing.T, x *gen.Context, template, node string) {
	root := filepath.Join(t.TempDir(), "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	extract := exec.Command("tar", append(pctExtract, "-C", root)...)
	f, err := os.Open(template)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	extract.Stdin = f
	if b, err := extract.CombinedOutput(); err != nil {
		t.Fatalf("tar (as pct): %v\n%s", err, b)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/machine-id")); len(b) != 0 {
		t.Errorf("/etc/machine-id holds %q, want it empty", b)
	}
	addReporter(t, root)

	tag := fmt.Sprintf("hwbake%d", os.Getpid())
	nodeNS := netns(t, tag+"n")
	clientNS := netns(t, tag+"c")
	run(t, "ip", "-n", tag+"n", "link", "add", "eth0", "type", "veth", "peer", "name", "hwc0", "netns", tag+"c")
	run(t, "ip", "-n", tag+"c", "addr", "add", "10.240.0.99/24", "dev", "hwc0")
	run(t, "ip", "-n", tag+"c", "link", "set", "hwc0", "up")
	run(t, "ip", "-n", tag+"c", "link", "set", "lo", "up")

	console, err := os.Create(filepath.Join(t.TempDir(), "console.log"))
	if err != nil {
		t.Fatal(err)
	}
	// CAP_NET_ADMIN in its own namespace, as a Proxmox container has it:
	// systemd-networkd (ConditionCapability=CAP_NET_ADMIN) configures eth0.
	nspawn := exec.Command("systemd-nspawn", "--boot", "--register=no", "--keep-unit", "--capability=CAP_NET_ADMIN",
		"-D", root, "--network-namespace-path="+nodeNS)
	nspawn.Stdout, nspawn.Stderr = console, console
	start := time.Now()
	if err := nspawn.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- nspawn.Wait() }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		// SIGTERM makes nspawn ask the container's systemd to power off.
		t0 := time.Now()
		nspawn.Process.Signal(syscall.SIGTERM)
		select {
		case err := <-exited:
			t.Logf("container powered off in %s (%v)", time.Since(t0).Round(time.Millisecond), err)
		case <-time.After(120 * time.Second):
			t.Errorf("container did not stop within 120s of SIGTERM; killing nspawn (pid %d)", nspawn.Process.Pid)
			nspawn.Process.Kill()
			<-exited
		}
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(console.Name())
			t.Logf("console:\n%s", tailLines(stripANSI(string(b)), 60))
		}
	})

	client := tlsClient(t, clientNS, x, "etcd/ca", "etcd/healthcheck-client")
	ip := mustNode(t, x, node).IP().String()
	body := waitHTTP(t, client, "https://"+ip+":2379/health", `"health":"true"`, 240*time.Second)
	t.Logf("etcd healthy %s after nspawn started: %s", time.Since(start).Round(time.Millisecond), strings.TrimSpace(body))
	admin := tlsClient(t, clientNS, x, "ca", "super-admin")
	waitHTTP(t, admin, "https://"+ip+":6443/readyz", "ok", 300*time.Second)
	t.Logf("kube-apiserver ready %s after nspawn started", time.Since(start).Round(time.Millisecond))

	tr, err := treeOf(x, node)
	if err != nil {
		t.Fatal(err)
	}
	var units []string
	for _, u := range tr.Units() {
		units = append(units, u.Name)
	}
	// With sshd in the base, sysprep's key generation and sshd itself.
	sshd := exists(filepath.Join(root, "usr/sbin/sshd"))
	if sshd {
		units = append(units, rootfs.SSHKeygenUnit, "ssh.service")
	}
	states, system := waitReport(t, root, units, 240*time.Second)
	t.Logf("%s: system state %s %s after nspawn started; the units it enables:", node, system, time.Since(start).Round(time.Second))
	for _, u := range units {
		s, ok := states[u]
		if !ok {
			s = "not loaded"
		}
		t.Logf("  %-40s %s", u, s)
	}
	want := map[string]string{"etcd.service": "active running", "kube-apiserver.service": "active running"}
	if sshd {
		want[rootfs.SSHKeygenUnit] = "active exited"
		want["ssh.service"] = "active running"
		if !exists(filepath.Join(root, "etc/ssh/ssh_host_ed25519_key")) {
			t.Error("no SSH host key generated at boot")
		}
	}
	for u, s := range want {
		if states[u] != s {
			t.Errorf("%s is %q, want %s", u, states[u], s)
		}
	}
	if id, _ := os.ReadFile(filepath.Join(root, "var/tmp/hwtest/machine-id.txt")); len(strings.TrimSpace(string(id))) != 32 {
		t.Errorf("machine id in the container: %q, want one generated at boot", id)
	}
	stop()
}

// addReporter installs the report unit in an unpacked tree.
func addReporter(t *testing.T, root string) {
	dir := filepath.Join(root, "var/tmp/hwtest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unit := filepath.Join(root, "etc/systemd/system/hwtest-report.service")
	for p, data := range map[string]string{filepath.Join(dir, "report.sh"): reportScript, unit: reportUnit} {
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

// waitReport waits until the container's systemd has finished starting up
// and none of units is still changing state, and returns "ACTIVE SUB" by
// unit, and the system state.
func waitReport(t *testing.T, root string, units []string, timeout time.Duration) (map[string]string, string) {
	dir := filepath.Join(root, "var/tmp/hwtest")
	deadline := time.Now().Add(timeout)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "state.txt"))
		state := strings.TrimSpace(string(b))
		report, err := os.ReadFile(filepath.Join(dir, "units.txt"))
		results, _ := os.ReadFile(filepath.Join(dir, "results.txt"))
		states := parseUnits(string(report), string(results))
		settled := state == "running" || state == "degraded"
		for _, u := range units {
			if a := strings.Fields(states[u]); len(a) > 0 && (a[0] == "activating" || a[0] == "deactivating" || a[0] == "reloading") {
				settled = false
			}
		}
		if settled || time.Now().After(deadline) {
			if err != nil {
				t.Fatalf("no unit report from the container: %v", err)
			}
			if state != "running" {
				t.Logf("failed units:\n%s", failed(string(report)))
			}
			return states, state
		}
		time.Sleep(time.Second)
	}
}

// parseUnits reads `systemctl list-units --plain --no-legend` into
// "ACTIVE SUB" by unit, with the result of the last run of an inactive
// service (a oneshot that finished) from `systemctl show -p Id,Result`.
func parseUnits(report, results string) map[string]string {
	result := map[string]string{}
	for _, block := range strings.Split(results, "\n\n") { // one unit each, properties in any order
		var id, r string
		for _, l := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(l, "Id="); ok {
				id = v
			} else if v, ok := strings.CutPrefix(l, "Result="); ok {
				r = v
			}
		}
		result[id] = r
	}
	states := map[string]string{}
	for _, l := range strings.Split(report, "\n") {
		if f := strings.Fields(l); len(f) >= 4 {
			states[f[0]] = f[2] + " " + f[3]
			if r := result[f[0]]; f[2] == "inactive" && r != "" {
				states[f[0]] += " (result " + r + ")"
			}
		}
	}
	return states
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

func treeOf(x *gen.Context, node string) (*tree.Tree, error) {
	jobs, err := Jobs(x, FormatLXC, node, "")
	if err != nil {
		return nil, err
	}
	return jobs[0].Tree, nil
}

func mustNode(t *testing.T, x *gen.Context, name string) spec.Node {
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s", name)
	}
	return n
}

// tlsClient is an HTTPS client that dials from the network namespace at ns
// with the PKI pair name, trusting the CA ca.
func tlsClient(t *testing.T, ns string, x *gen.Context, ca, name string) *http.Client {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(x.PKI.Get(ca).CertPEM) {
		t.Fatalf("no CA %s", ca)
	}
	p := x.PKI.Get(name)
	pair, err := tls.X509KeyPair(p.CertPEM, p.KeyPEM)
	if err != nil {
		t.Fatal(err)
	}
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:     dialIn(ns),
			TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{pair}},
		},
	}
}

// waitHTTP polls url until its body contains want.
func waitHTTP(t *testing.T, c *http.Client, url, want string, timeout time.Duration) string {
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		resp, err := c.Get(url)
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK && strings.Contains(string(b), want) {
				return string(b)
			}
			last = fmt.Sprintf("%s: %s", resp.Status, b)
		} else {
			last = err.Error()
		}
		time.Sleep(time.Second)
	}
	t.Fatalf("%s not ready after %s: %s", url, timeout, last)
	return ""
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

// TestBakeFullDisk bakes into a 4 MiB tmpfs a template that needs more: the
// error says so and no file is left behind.
func TestBakeFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	need(t, "mount", "umount")
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, controllerBins...), nil)
	x, _ := generated(t, doc)
	noise := make([]byte, 16<<20) // incompressible
	rand.Read(noise)
	base := buildBase(t, []member{{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./var/noise", Mode: 0o644}, data: string(noise)}})
	out := t.TempDir()
	run(t, "mount", "-t", "tmpfs", "-o", "size=4m", "hwbake-test", out)
	t.Cleanup(func() { run(t, "umount", out) })
	_, err := bakeOne(t, context.Background(), x, doc, base, out, "cp1")
	if err == nil || !strings.Contains(err.Error(), "no space left on device") {
		t.Fatalf("err = %v, want no space left on device", err)
	}
	t.Log(err)
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("full output dir holds %v", got)
	}
}
