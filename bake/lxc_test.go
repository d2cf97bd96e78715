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
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// TestLXCTemplate bakes cp1 (controller + etcd, the only etcd member) from a
// real Debian base with the real etcd and Kubernetes binaries, checks the
// template with GNU tar as pct would, bakes it again to compare bytes, and
// boots it with systemd-nspawn in network namespaces of its own.
func TestLXCTemplate(t *testing.T) {
	if testing.Short() {
		t.Skip("bakes and boots a real template")
	}
	needRoot(t)
	need(t, "tar", "zstd", "systemd-nspawn", "ip")
	bins := map[string]string{}
	for _, b := range controllerBins {
		bins[b] = realBin(t, b)
	}
	doc := testSpec(t, spec.ModeUpstream, bins, nil)
	x, _ := generated(t, doc)
	base := rootfstest.Base(t, rootfstest.SmallBase)
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
	t.Run("boot", func(t *testing.T) { bootController(t, x, res[0].Path, "cp1") })
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

// bootController boots the template of node, a controller and the only
// etcd member, and waits for etcd's /health and kube-apiserver's /readyz
// over TLS from the client namespace; then etcd and kube-apiserver must be
// active, as every unit the node enables is reported.
func bootController(t *testing.T, x *nodegen.Context, template, node string) {
	b := bootLXC(t, x, template, node)
	client := tlsClient(t, b.clientNS, x, "etcd/ca", "etcd/healthcheck-client")
	ip := mustNode(t, x, node).IP().String()
	body := waitHTTP(t, client, "https://"+ip+":2379/health", `"health":"true"`, 240*time.Second)
	t.Logf("etcd healthy %s after nspawn started: %s", b.since().Round(time.Millisecond), strings.TrimSpace(body))
	admin := tlsClient(t, b.clientNS, x, "ca", "super-admin")
	waitHTTP(t, admin, "https://"+ip+":6443/readyz", "ok", 300*time.Second)
	t.Logf("kube-apiserver ready %s after nspawn started", b.since().Round(time.Millisecond))

	r := b.report(t, 240*time.Second)
	for _, u := range []string{"etcd.service", "kube-apiserver.service"} {
		if s := r.state(u); s != "active running" {
			t.Errorf("%s is %q, want active running", u, s)
		}
	}
	b.stop(t)
}

func mustNode(t *testing.T, x *nodegen.Context, name string) spec.Node {
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s", name)
	}
	return n
}

// tlsClient is an HTTPS client that dials from the network namespace at ns
// with the PKI pair name, trusting the CA ca.
func tlsClient(t *testing.T, ns string, x *nodegen.Context, ca, name string) *http.Client {
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

// TestLXCRemovals: the base's links enabling haproxy, keepalived,
// containerd and chrony are not in the template of a node without the lb
// and worker roles (cp1), its etcd member's link stays, as do
// its other enabled services stay; nor is the base's kernel, initrd or
// modules, while /boot and the modules directory stay.
func TestLXCRemovals(t *testing.T) {
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, controllerBins...), nil)
	x, _ := generated(t, doc)
	wants := "./etc/systemd/system/multi-user.target.wants/"
	var extra []member
	for _, u := range []string{"haproxy.service", "keepalived.service", "chrony.service", "cron.service", "containerd.service", "etcd.service"} {
		extra = append(extra, member{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: wants + u, Linkname: "/lib/systemd/system/" + u, Mode: 0o777}})
	}
	kernel := map[string]bool{ // in the template?
		"./boot/": true, "./boot/vmlinuz-6.1.0-hw": false, "./vmlinuz": false,
		"./usr/lib/modules/": true, "./usr/lib/modules/6.1.0-hw/": false, "./usr/lib/modules/6.1.0-hw/kernel/e1000.ko": false,
	}
	for name := range kernel {
		h := tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}
		switch {
		case strings.HasSuffix(name, "/"):
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case name == "./vmlinuz":
			h.Typeflag, h.Linkname = tar.TypeSymlink, "boot/vmlinuz-6.1.0-hw"
		}
		extra = append(extra, member{Header: h})
	}
	base := buildBase(t, extra)
	res, err := bakeOne(t, context.Background(), x, doc, base, t.TempDir(), "cp1")
	if err != nil {
		t.Fatal(err)
	}
	hs, _ := listZstdTar(t, res[0].Path)
	have := map[string]bool{}
	for _, h := range hs {
		have[h.Name] = true
	}
	for u, want := range map[string]bool{"haproxy.service": false, "keepalived.service": false, "chrony.service": false, "cron.service": true,
		"containerd.service": false, "etcd.service": true} {
		if have[wants+u] != want {
			t.Errorf("%s enabled in cp1's template: %v, want %v", u, have[wants+u], want)
		}
	}
	for name, want := range kernel {
		if have[name] != want {
			t.Errorf("%s in cp1's template: %v, want %v", name, have[name], want)
		}
	}
	lb := []string{"/etc/systemd/system/*.wants/etcd.service", "/etc/systemd/system/*.wants/containerd.service"}
	if want := []string{"/etc/systemd/system/*.wants/haproxy.service", "/etc/systemd/system/*.wants/keepalived.service", "/etc/systemd/system/*.wants/etcd.service"}; !slices.Equal(unusedServices(Job{Roles: []string{"lb"}}, false), lb) ||
		!slices.Equal(unusedServices(Job{Roles: []string{"worker"}}, false), want) {
		t.Errorf("unused services of a KVM lb or worker: %v, %v", unusedServices(Job{Roles: []string{"lb"}}, false), unusedServices(Job{Roles: []string{"worker"}}, false))
	}
}
