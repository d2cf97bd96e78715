package bake

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

// clusterYAML is a self-contained cluster for the bake tests: one stacked
// controller+etcd LXC node (the only etcd member, so that it is healthy on
// its own), one LXC worker, one KVM worker. %s is the binaries section.
const clusterYAML = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: bakeboot
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
    dns: [10.240.0.1]
  binaries:
%s
  nodes:
    - {name: cp1, roles: [controller, etcd], target: lxc, address: 10.240.0.21/24, vmid: 221}
    - {name: w1, roles: [worker], target: lxc, address: 10.240.0.31/24, vmid: 231}
    - {name: w2, roles: [worker], target: kvm, address: 10.240.0.32/24, vmid: 232}
`

// controllerBins are the binaries cp1 needs (etcdctl is optional).
var controllerBins = []string{"etcd", "etcdctl", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl"}

// testSpec writes a spec in a temporary directory whose binaries.dir holds
// bins (name → source file, copied) pinned by their real SHA-256, with
// extra pins (name → sum) on top, and loads it. In binaries.mode packaged
// with no bins, binaries.dir holds stand-ins (fakeBins) for what packaged
// mode still pins (Kubernetes: packagedBins).
func testSpec(t testing.TB, mode string, bins map[string]string, extra map[string]string) *spec.Document {
	t.Helper()
	if mode == spec.ModePackaged && bins == nil {
		bins = fakeBins(t, packagedBins()...)
	}
	dir := t.TempDir()
	art := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	pins := map[string]string{}
	for name, src := range bins {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(art, name), data, 0o755); err != nil {
			t.Fatal(err)
		}
		pins[name] = sha256hex(data)
	}
	for name, sum := range extra {
		pins[name] = sum
	}
	var b strings.Builder
	fmt.Fprintf(&b, "    mode: %s\n    dir: artifacts\n    sha256:\n", mode)
	names := make([]string, 0, len(pins))
	for n := range pins {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(&b, "      %s: %q\n", n, pins[n])
	}
	if len(names) == 0 {
		b.WriteString("      {}\n")
	}
	return loadSpecIn(t, dir, fmt.Appendf(nil, clusterYAML, strings.TrimRight(b.String(), "\n")))
}

// loadSpecIn writes data as dir/cluster.yaml (its binaries.dir is relative
// to dir), loads and validates it.
func loadSpecIn(t testing.TB, dir string, data []byte) *spec.Document {
	t.Helper()
	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := spec.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatalf("spec: %v", is)
	}
	return doc
}

// packagedBins are the required binaries binaries.mode packaged pins:
// those its base does not provide.
func packagedBins() []string {
	var out []string
	for _, b := range binaries {
		if !b.Optional && !b.fromBase(spec.ModePackaged) && !slices.Contains(out, b.Name) {
			out = append(out, b.Name)
		}
	}
	return out
}

// fakeBins writes small stand-ins for the named binaries.
func fakeBins(t testing.TB, names ...string) map[string]string {
	t.Helper()
	dir := t.TempDir()
	out := map[string]string{}
	for _, n := range names {
		p := filepath.Join(dir, n)
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho fake "+n+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		out[n] = p
	}
	return out
}

// generated runs generate for doc into a temporary directory, as the CLI
// does, and returns its generator context and the cluster directory.
func generated(t testing.TB, doc *spec.Document) (*nodegen.Context, string) {
	t.Helper()
	res, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return nodegen.New(doc.Cluster, res.Bundle), res.Dir
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// member is one entry of a synthetic base.
type member struct {
	tar.Header
	data string
}

// syntheticBase writes a small zstd-compressed base with what bake checks
// for (systemd, /sbin, os-release), what every role's tree needs of a base
// in either binaries mode (networkd, haproxy and keepalived, the programs
// hardway's units run, and stand-ins for the packaged binaries and
// containerd.service), device nodes and xattrs pct drops. without lists
// paths to leave out.
func syntheticBase(t testing.TB, without ...string) string {
	t.Helper()
	return buildBase(t, nil, without...)
}

// buildBase is syntheticBase with extra members at the end.
func buildBase(t testing.TB, extra []member, without ...string) string {
	t.Helper()
	skip := map[string]bool{}
	for _, w := range without {
		skip[w] = true
	}
	d := func(n string) member { return member{Header: tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755}} }
	f := func(n, data string) member {
		return member{Header: tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644}, data: data}
	}
	l := func(n, target string) member {
		return member{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: n, Linkname: target, Mode: 0o777}}
	}
	ping := f("./usr/bin/ping", "ELF ping")
	ping.PAXRecords = map[string]string{
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00",
		"SCHILY.xattr.trusted.overlay":     "y",
		"SCHILY.xattr.security.selinux":    "system_u:object_r:bin_t:s0",
	}
	ms := []member{
		d("./"), l("./bin", "usr/bin"), d("./dev/"),
		{Header: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{Header: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/console", Mode: 0o600, Devmajor: 5, Devminor: 1}},
		d("./etc/"), f("./etc/debian_version", "12.8\n"), f("./etc/hostname", "localhost\n"), f("./etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
		l("./etc/os-release", "../usr/lib/os-release"),
		d("./etc/ssh/"), f("./etc/ssh/ssh_host_ed25519_key", "secret"), f("./etc/ssh/ssh_host_ed25519_key.pub", "public"),
		d("./etc/systemd/"), d("./etc/systemd/system/"),
		l("./lib", "usr/lib"), l("./sbin", "usr/sbin"),
		d("./usr/"), d("./usr/bin/"), ping, d("./usr/lib/"),
		f("./usr/lib/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n"),
		d("./usr/lib/systemd/"), f("./usr/lib/systemd/systemd", "ELF systemd"),
		d("./usr/lib/systemd/system/"), f("./usr/lib/systemd/system/systemd-networkd.service", "[Unit]\n"),
		f("./usr/lib/systemd/system/systemd-networkd-wait-online.service", "[Unit]\n"),
		d("./usr/sbin/"), l("./usr/sbin/iptables", "/etc/alternatives/iptables"), f("./usr/sbin/sshd", "ELF sshd"),
	}
	for _, u := range []string{"haproxy.service", "keepalived.service", "containerd.service"} {
		ms = append(ms, f("./usr/lib/systemd/system/"+u, "[Unit]\n"))
	}
	for _, p := range []string{"sh", "echo", "touch", "rm"} {
		ms = append(ms, f("./usr/bin/"+p, "ELF "+p))
	}
	// What binaries.mode packaged takes from the distribution's packages.
	ms = append(ms, d("./usr/lib/cni/"))
	for _, b := range binaries {
		p := "./usr/bin/" + b.Name
		if b.Dir == worker.UpstreamCNIBinDir {
			p = "." + path.Join(worker.PackagedCNIBinDir, b.Name)
		}
		if b.fromBase(spec.ModePackaged) && !b.Optional && !slices.ContainsFunc(ms, func(m member) bool { return m.Name == p }) {
			ms = append(ms, f(p, "ELF "+b.Name))
		}
	}
	ms = append(ms, extra...)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		if skip[m.Name] {
			continue
		}
		h := m.Header
		h.Size = int64(len(m.data))
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		io.WriteString(tw, m.data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "base.tar.zst")
	if err := os.WriteFile(p, zstdBytes(t, buf.Bytes()), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func zstdBytes(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(data)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listZstdTar reads a .tar.zst into its headers and contents.
func listZstdTar(t testing.TB, file string) ([]*tar.Header, map[string][]byte) {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := zstd.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	var hs []*tar.Header
	data := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		hs = append(hs, h)
		data[h.Name] = b
	}
	return hs, data
}

// entries lists a directory's names, but for the locks of output (the
// directory's lock files stay; they are not artifacts).
func entries(t testing.TB, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		if e.Name() == output.LockFile || e.Name() == output.BusyFile {
			continue
		}
		out = append(out, e.Name())
	}
	return out
}

// need fails the test when a tool is missing: heavy tests never skip for that.
func need(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s not found: the bake tests drive it (apt-get install debootstrap zstd systemd-container iproute2)", tool)
		}
	}
}

// realBin returns the path of a pinned upstream binary: $HARDWAY_BIN_DIR,
// else the caches hack/tools.sh builds.
func realBin(t testing.TB, name string) string {
	t.Helper()
	var dirs []string
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		dirs = append(dirs, d)
	}
	for _, g := range []string{"etcd", "k8s"} {
		if out, err := exec.Command("../hack/tools.sh", "path", g).Output(); err == nil {
			dirs = append(dirs, strings.TrimSpace(string(out)))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() {
			return p
		}
	}
	t.Fatalf("%s not found in %v: run `make tools` (hack/tools.sh etcd k8s) or set HARDWAY_BIN_DIR", name, dirs)
	return ""
}

// w2Image is testSpec's (packaged mode) and the KVM job of its node w2.
func w2Image(t *testing.T) (*spec.Document, []Job) {
	t.Helper()
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	jobs, err := KVMJobs(x, "w2", "")
	if err != nil {
		t.Fatal(err)
	}
	return doc, jobs
}
