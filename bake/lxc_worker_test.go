package bake

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/spec"
)

// debianWorkerBins are the worker binaries the test takes from Debian's
// packages (containerd, runc; hack/deps.sh installs them): the Kubernetes
// release has only the kubelet and kube-proxy. The CNI plugins come from
// containernetworking-plugins, in worker.PackagedCNIBinDir.
var debianWorkerBins = map[string]string{
	"containerd":              "/usr/bin/containerd",
	"containerd-shim-runc-v2": "/usr/bin/containerd-shim-runc-v2",
	"ctr":                     "/usr/bin/ctr",
	"runc":                    "/usr/sbin/runc",
}

// workerBins returns every binary the worker role needs in binaries.mode
// upstream (worker.Binaries and worker.CNIPlugins, the rows of the role
// binaries table), each from Debian's packages or the Kubernetes release.
func workerBins(t *testing.T) map[string]string {
	t.Helper()
	bins := map[string]string{}
	for _, n := range worker.Binaries {
		if p, ok := debianWorkerBins[n]; ok {
			bins[n] = p
		} else {
			bins[n] = realBin(t, n)
		}
	}
	for _, n := range worker.CNIPlugins {
		bins[n] = filepath.Join(worker.PackagedCNIBinDir, n)
	}
	for n, p := range bins {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("worker binary %s: %v (hack/deps.sh installs containerd, runc and containernetworking-plugins)", n, err)
		}
	}
	return bins
}

// TestLXCWorkerTemplate bakes w1 (worker) from the small Debian base (with
// iptables and conntrack for kube-proxy) with real binaries, and boots
// it with systemd-nspawn in network namespaces of its own. No API server
// runs: the proof is that the worker's units are enabled and start, that
// containerd serves the kubelet over CRI, and how far the kubelet gets.
func TestLXCWorkerTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("bakes and boots a real template")
	}
	needRoot(t)
	need(t, "tar", "zstd", "systemd-nspawn", "ip")
	doc := testSpec(t, spec.ModeUpstream, workerBins(t), nil)
	x, dir := generated(t, doc)
	base := realBase(t)
	start := time.Now()
	res, err := bakeOne(t, context.Background(), x, doc, base, t.TempDir(), "w1")
	if err != nil {
		t.Fatal(err)
	}
	st := res[0].Stats
	t.Logf("baked %s in %s: %d members, %.0f MB content, %.0f MB zstd", filepath.Base(res[0].Path),
		time.Since(start).Round(time.Millisecond), st.Members, float64(st.Bytes)/1e6, float64(fileSize(t, res[0].Path))/1e6)
	t.Run("boot", func(t *testing.T) { bootWorker(t, x, dir, res[0].Path, "w1") })
}

// bootWorker boots the template of node, a worker, with the kernel settings
// of the cluster's Proxmox host contract (in dir, the cluster directory),
// and checks what holds without an API server:
//
//   - containerd is active (it is Type=notify: it serves its socket) and
//     loaded the generated CNI configuration;
//   - kube-proxy is active: it waits for its Node object from the API
//     server, without a deadline, before it programs any rule or serves
//     /healthz and /metrics;
//   - the kubelet ran, loaded its configuration and certificates and reached
//     containerd over CRI ("Container runtime initialized"). It then either
//     runs (it serves /healthz on 127.0.0.1:10248 and keeps trying to
//     register its node), or it stops in its container manager because it
//     cannot create its cgroups: on a cgroup v1 host, systemd-nspawn mounts
//     the controllers read-only in the container, where Proxmox delegates a
//     cgroup v2 subtree. That failure is reported, with the kubelet's
//     state, not asserted away; any other failure fails the test.
//
// nspawn keeps fewer capabilities than a Proxmox worker container (every
// one): the kubelet's warnings about oom_score_adj and RLIMIT_NOFILE come
// from that and stop nothing.
func bootWorker(t *testing.T, x *gen.Context, dir, template, node string) {
	b := bootLXC(t, x, template, node, hostSysctls(t, dir))
	running := b.kubeletVerdict(t, 120*time.Second)
	r := b.report(t, 240*time.Second)
	for _, u := range []string{worker.ContainerdUnit, worker.ProxyUnit, worker.KubeletUnit} {
		p := r.props[u]
		t.Logf("%s: %s, started %v, %s restarts, last exit status %s", u, r.state(u),
			p["ExecMainStartTimestampMonotonic"] != "0", p["NRestarts"], p["ExecMainStatus"])
		if r.state(u) == "active running" { // report logged the others' journals
			t.Logf("journal tail of %s:\n%s", u, indent(tailLines(b.journal(u), 8)))
		}
	}

	for _, u := range []string{worker.ContainerdUnit, worker.ProxyUnit} {
		if s := r.state(u); s != "active running" {
			t.Errorf("%s is %q, want active running", u, s)
		}
	}
	if j := strings.ToLower(b.journal(worker.ContainerdUnit)); strings.Contains(j, "failed to load cni") {
		t.Errorf("containerd did not load the CNI configuration:\n%s", indent(grepLines(j, "cni")))
	}

	kubelet := b.journal(worker.KubeletUnit)
	if r.props[worker.KubeletUnit]["ExecMainStartTimestampMonotonic"] == "0" {
		t.Errorf("%s never started", worker.KubeletUnit)
	}
	if !strings.Contains(kubelet, `"Container runtime initialized" containerRuntime="containerd"`) {
		t.Errorf("the kubelet did not reach containerd over CRI:\n%s", indent(tailLines(kubelet, 40)))
	}
	switch cm := grepLines(kubelet, `"Failed to start ContainerManager"`); {
	case running:
		t.Logf("the kubelet runs")
	case cm != "" && strings.Contains(cm, "/sys/fs/cgroup/"):
		t.Logf("the kubelet is %s: it cannot create its cgroups in this container (read-only cgroup v1 controllers, see bootWorker):\n%s",
			r.state(worker.KubeletUnit), indent(tailLines(cm, 1)))
	default:
		t.Errorf("the kubelet is %s and does not serve /healthz:\n%s", r.state(worker.KubeletUnit), indent(tailLines(kubelet, 40)))
	}

	// The node's network file gave eth0 its address: sshd answers there.
	if b.sshd {
		addr := net.JoinHostPort(mustNode(t, x, node).IP().String(), "22")
		c, err := dialIn(b.clientNS)(context.Background(), "tcp", addr)
		if err != nil {
			t.Fatalf("ssh at %s from the client: %v", addr, err)
		}
		c.SetDeadline(time.Now().Add(10 * time.Second))
		banner, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if !strings.HasPrefix(banner, "SSH-2.0-") {
			t.Errorf("ssh at %s: banner %q (%v)", addr, banner, err)
		}
		t.Logf("sshd answers at %s from the client: %s", addr, strings.TrimSpace(banner))
	}
	b.stop(t)
}

// kubeletVerdict waits until the kubelet either has served /healthz in the
// node's network namespace for 20 seconds without exiting (true), or has
// exited once (false): it serves /healthz early in its start, before what
// may stop it. Neither within timeout is an error (the report follows).
func (b *lxcBoot) kubeletVerdict(t *testing.T, timeout time.Duration) bool {
	t.Helper()
	const serving = 20 * time.Second
	c := &http.Client{Timeout: 2 * time.Second, Transport: &http.Transport{DialContext: dialIn(b.nodeNS)}}
	var healthy time.Time // since when /healthz is ok
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if strings.Contains(b.journal(worker.KubeletUnit), worker.KubeletUnit+": Main process exited") {
			t.Logf("the kubelet exited %s after nspawn started", b.since().Round(time.Millisecond))
			return false
		}
		ok := false
		if resp, err := c.Get("http://127.0.0.1:10248/healthz"); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
		switch {
		case !ok:
			healthy = time.Time{}
		case healthy.IsZero():
			healthy = time.Now()
		case time.Since(healthy) >= serving:
			t.Logf("the kubelet has served /healthz for %s, %s after nspawn started", serving, b.since().Round(time.Millisecond))
			return true
		}
		time.Sleep(time.Second)
	}
	t.Errorf("after %s the kubelet neither serves /healthz steadily nor has exited", timeout)
	return false
}

// hostSysctls reads the kernel settings of the Proxmox host contract
// (proxmox/sysctl.d/hardway.conf in the cluster directory dir) that are not
// per network namespace. The kubelet sets some of them at start unless they
// already have its values; the contract gives them those values, so the
// kubelet leaves them alone, as it must in a container whose /proc/sys is
// read-only (without them it stops: "Failed to start ContainerManager ...
// open /proc/sys/vm/overcommit_memory: read-only file system").
func hostSysctls(t *testing.T, dir string) map[string]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "proxmox/sysctl.d/hardway.conf"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, l := range strings.Split(string(data), "\n") {
		k, v, ok := strings.Cut(l, "=")
		k = strings.TrimSpace(k)
		if !ok || strings.HasPrefix(k, "#") || strings.HasPrefix(k, "net.") {
			continue
		}
		out[k] = strings.TrimSpace(v)
	}
	if out["vm.overcommit_memory"] == "" {
		t.Fatalf("the host contract sets no vm.overcommit_memory:\n%s", data)
	}
	return out
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
