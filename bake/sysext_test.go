package bake

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/coreos/ignition/v2/config/v3_4"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// sysextCluster has a Flatcar worker booted by Ignition (w3), beside the
// stacked controller it needs, and one image archive. %s is the binaries
// section.
const sysextCluster = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: sysext
spec:
  kubernetesVersion: v1.34.2
  network:
    nodeCIDR: 10.240.0.0/24
  binaries:
%s
  images: [images/pause-3.10.1.tar]
  ignition:
    url: http://10.240.0.1:8080/mixed/
    images: {flatcar: flatcar_production_proxmoxve_image.img}
  nodes:
    - {name: cp1, roles: [controller, etcd], target: lxc, address: 10.240.0.21/24, vmid: 221}
    - {name: w3, roles: [worker], target: kvm, address: 10.240.0.33/24, vmid: 233, boot: ignition, ignitionVariant: flatcar}
`

// workerBins are the binaries a worker needs, the CNI plugins among them.
var workerBins = func() []string {
	var out []string
	for _, b := range worker.Binaries {
		if !b.Optional {
			out = append(out, b.Name)
		}
	}
	return out
}()

// sysextSpec writes sysextCluster with workerBins pinned (fakeBins) and a
// stand-in image archive, and returns it with its generator context.
func sysextSpec(t *testing.T) (*spec.Document, *nodegen.Context) {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	b.WriteString("    dir: artifacts\n    sha256:\n")
	for name, src := range fakeBins(t, workerBins...) {
		data, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, "artifacts"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "artifacts", name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "      %s: %q\n", name, sha256hex(data))
	}
	if err := os.MkdirAll(filepath.Join(dir, "images"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "images", "pause-3.10.1.tar"), make([]byte, 1024), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := loadSpecIn(t, dir, fmt.Appendf(nil, sysextCluster, strings.TrimRight(b.String(), "\n")))
	x, clusterDir := generated(t, doc)
	script, err := os.ReadFile(filepath.Join(clusterDir, "proxmox", "create-nodes.sh"))
	if err != nil {
		t.Fatal(err)
	}
	createNodes = string(script)
	return doc, x
}

// createNodes is the create-nodes.sh of the last sysextSpec.
var createNodes string

// bakeSysexts bakes every sysext of doc into a new directory.
func bakeSysexts(t *testing.T, doc *spec.Document, x *nodegen.Context) (string, []Result) {
	t.Helper()
	jobs, err := Jobs(x, FormatSysext, "", "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	res, err := RunSysext(context.Background(), Config{Doc: doc, Out: out, Parallel: 1}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	return out, res
}

// TestSysext bakes the Flatcar worker's sysext image and Ignition config
// and checks them with their own readers: the image (unsquashfs) holds the
// pinned binaries, CNI plugins and image archive, root-owned, with its
// extension-release; every /usr/lib/hardway path the node's tree names
// (its units' ExecStart, containerd's runc and CNI directory, the archive
// links) is in it; the config (Ignition's parser) fetches it from
// spec.ignition.url and checks it by its SHA-256; the manifest records both;
// a second bake gives the same bytes.
func TestSysext(t *testing.T) {
	need(t, "mksquashfs", "unsquashfs")
	doc, x := sysextSpec(t)
	out, res := bakeSysexts(t, doc, x)
	raw, ign := filepath.Join(out, "hardway-w3_1.34.2_x86-64.raw"), filepath.Join(out, "hardway-w3_1.34.2.ign")
	if len(res) != 2 || res[0].Path != ign || res[1].Path != raw {
		t.Fatalf("results %+v", res)
	}

	list, err := exec.Command("unsquashfs", "-lln", raw).Output()
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{} // path → mode and owner
	for _, l := range strings.Split(strings.TrimSpace(string(list)), "\n") {
		f := strings.Fields(l)
		p := strings.TrimPrefix(f[len(f)-1], "squashfs-root")
		files[p] = f[0] + " " + f[1]
	}
	want := map[string]string{
		"/usr/lib/extension-release.d/extension-release.hardway": "-rw-r--r-- 0/0",
		"/usr/lib/hardway/images/pause-3.10.1.tar":               "-rw-r--r-- 0/0",
	}
	for _, b := range worker.Binaries {
		switch {
		case b.Optional: // not pinned (workerBins)
		case b.Dir == worker.UpstreamCNIBinDir:
			want["/usr/lib/hardway/cni/"+b.Name] = "-rwxr-xr-x 0/0"
		default:
			want["/usr/lib/hardway/bin/"+b.Name] = "-rwxr-xr-x 0/0"
		}
	}
	for p, m := range want {
		if files[p] != m {
			t.Errorf("%s: %q in the image, want %q", p, files[p], m)
		}
	}
	for p := range files {
		if p != "" && !strings.HasPrefix(p, "/usr") {
			t.Errorf("%s: outside /usr, which systemd-sysext does not merge", p)
		}
	}
	rel, err := exec.Command("unsquashfs", "-cat", raw, "usr/lib/extension-release.d/extension-release.hardway").Output()
	if err != nil || string(rel) != "ID=_any\nARCHITECTURE=x86-64\n" {
		t.Errorf("extension-release: %q %v", rel, err)
	}
	kubelet, err := exec.Command("unsquashfs", "-cat", raw, "usr/lib/hardway/bin/kubelet").Output()
	if src, _ := os.ReadFile(filepath.Join(doc.BinariesDir(), "kubelet")); err != nil || !bytes.Equal(kubelet, src) {
		t.Errorf("kubelet in the image differs from the pinned file (%v)", err)
	}

	n, _ := doc.Cluster.Node("w3")
	for _, p := range sysextPaths(t, res[0].Job.Tree) {
		if _, ok := files[p]; !ok {
			t.Errorf("w3's tree names %s, which its sysext image lacks", p)
		}
	}
	if got := x.Bin(n, "kubelet"); files[got] == "" {
		t.Errorf("nodegen.Context.Bin(w3, kubelet) = %s, not in the image", got)
	}

	data, err := os.ReadFile(ign)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(ign); st.Mode().Perm() != 0o600 {
		t.Errorf("%s: mode %o, want 0600 (it holds the node's keys)", ign, st.Mode().Perm())
	}
	cfg, rpt, err := v3_4.Parse(data)
	if err != nil || rpt.IsFatal() {
		t.Fatalf("ignition: %v %s", err, rpt)
	}
	var fetched bool
	for _, f := range cfg.Storage.Files {
		if f.Path == nodegen.SysextPath {
			fetched = *f.Contents.Source == "http://10.240.0.1:8080/mixed/hardway-w3_1.34.2_x86-64.raw" &&
				*f.Contents.Verification.Hash == "sha256-"+res[1].SHA256
		}
	}
	if !fetched {
		t.Errorf("the config does not fetch the image with its SHA-256 %s", res[1].SHA256)
	}
	if sum, _ := rootfs.FileSHA256(raw); sum != res[1].SHA256 {
		t.Errorf("image SHA-256 %s, result %s", sum, res[1].SHA256)
	}

	var m manifest
	if data, err := os.ReadFile(filepath.Join(out, ManifestFile)); err != nil || json.Unmarshal(data, &m) != nil {
		t.Fatalf("manifest: %v", err)
	}
	kinds := map[string]string{}
	for _, a := range m.Artifacts {
		kinds[a.Path] = a.Kind
	}
	if kinds[filepath.Base(raw)] != KindSysext || kinds[filepath.Base(ign)] != KindIgnition {
		t.Errorf("manifest kinds %v", kinds)
	}
	// create-nodes.sh gives w3 this config (from the default artifact
	// directory) and imports Flatcar's image as its disk.
	for _, w := range []string{" bake/" + filepath.Base(ign) + " w3-ignition.json", "flatcar_production_proxmoxve_image.img"} {
		if !strings.Contains(createNodes, w) {
			t.Errorf("create-nodes.sh does not name %s", w)
		}
	}
	if strings.Contains(createNodes, "nodes/w3/ignition.json") {
		t.Error("create-nodes.sh names nodes/w3/ignition.json, which generate does not write")
	}

	_, again := bakeSysexts(t, doc, x)
	if again[1].SHA256 != res[1].SHA256 {
		t.Errorf("two bakes of the image differ: %s, %s", res[1].SHA256, again[1].SHA256)
	}
}

// sysextPaths are the /usr/lib/hardway paths named in t's files and links.
func sysextPaths(t *testing.T, tr *tree.Tree) []string {
	t.Helper()
	re := regexp.MustCompile(regexp.QuoteMeta(nodegen.SysextDir) + `/[A-Za-z0-9._/-]+`)
	var out []string
	for _, e := range tr.Entries() {
		for _, p := range re.FindAllString(string(e.Data)+" "+e.Target, -1) {
			out = append(out, strings.TrimRight(p, ".")) // the end of a sentence in a comment
		}
	}
	if len(out) == 0 {
		t.Fatal("the tree names no path of the sysext image")
	}
	return out
}

// TestSysextDissect: systemd-dissect, systemd's own reader of the images
// systemd-sysext merges, takes the image, under its name on the node, as a
// system extension for any OS, and reads the pinned kubelet from it. It
// attaches a loop device: root only.
func TestSysextDissect(t *testing.T) {
	need(t, "mksquashfs", "systemd-dissect")
	if os.Geteuid() != 0 {
		t.Skip("systemd-dissect attaches a loop device: root only")
	}
	doc, x := sysextSpec(t)
	out, _ := bakeSysexts(t, doc, x)
	// Under its name on the node, which its extension-release file matches.
	raw := filepath.Join(t.TempDir(), filepath.Base(nodegen.SysextPath))
	if err := os.Symlink(filepath.Join(out, "hardway-w3_1.34.2_x86-64.raw"), raw); err != nil {
		t.Fatal(err)
	}
	js, err := exec.Command("systemd-dissect", "--json=short", raw).Output()
	if err != nil {
		t.Fatalf("systemd-dissect: %v", err)
	}
	var d struct {
		ExtensionRelease   []string `json:"extensionRelease"`
		UseSystemExtension bool     `json:"useSystemExtension"`
		Mounts             []struct {
			Fstype string `json:"fstype"`
		} `json:"mounts"`
	}
	if err := json.Unmarshal(js, &d); err != nil {
		t.Fatal(err)
	}
	if !d.UseSystemExtension || !slices.Equal(d.ExtensionRelease, []string{"ID=_any", "ARCHITECTURE=x86-64"}) || len(d.Mounts) != 1 || d.Mounts[0].Fstype != "squashfs" {
		t.Errorf("systemd-dissect: %s", js)
	}
	got := filepath.Join(t.TempDir(), "kubelet")
	if out, err := exec.Command("systemd-dissect", "--copy-from", raw, "/usr/lib/hardway/bin/kubelet", got).CombinedOutput(); err != nil {
		t.Fatalf("systemd-dissect --copy-from: %v: %s", err, out)
	}
	a, _ := os.ReadFile(got)
	b, _ := os.ReadFile(filepath.Join(doc.BinariesDir(), "kubelet"))
	if !bytes.Equal(a, b) {
		t.Error("systemd-dissect reads another kubelet than the pinned one")
	}
}

// TestSysextRefusals: a binary that differs from its pin stops the bake
// before anything is written; a node without pinned binaries or not booted
// by Ignition has no sysext.
func TestSysextRefusals(t *testing.T) {
	need(t, "mksquashfs")
	doc, x := sysextSpec(t)
	if err := os.WriteFile(filepath.Join(doc.BinariesDir(), "kubelet"), []byte("tampered"), 0o755); err != nil {
		t.Fatal(err)
	}
	jobs, err := Jobs(x, FormatSysext, "w3", "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = RunSysext(context.Background(), Config{Doc: doc, Out: out, Parallel: 1}, jobs)
	var hm *rootfs.HashMismatchError
	if !errors.As(err, &hm) {
		t.Errorf("tampered kubelet: %v", err)
	}
	if names := entries(t, out); len(names) > 0 {
		t.Errorf("a refused bake wrote %v", names)
	}
	for _, sel := range [][2]string{{"cp1", ""}, {"", spec.RoleLB}} {
		if _, err := Jobs(x, FormatSysext, sel[0], sel[1]); err == nil {
			t.Errorf("--node %q --role %q: no error", sel[0], sel[1])
		}
	}
}

// TestSysextMerge merges the image as systemd-sysext does at boot, into a
// root whose os-release is Flatcar's (in a private mount namespace: root
// only): every /usr/lib/hardway path of the node's tree exists in the merged
// /usr and the kubelet there runs.
func TestSysextMerge(t *testing.T) {
	need(t, "mksquashfs", "systemd-sysext", "unshare")
	if os.Geteuid() != 0 {
		t.Skip("merging mounts an overlay: root only")
	}
	doc, x := sysextSpec(t)
	out, res := bakeSysexts(t, doc, x)
	root := t.TempDir()
	for p, data := range map[string]string{
		"usr/lib/os-release": "ID=flatcar\nVERSION_ID=4230.2.0\nSYSEXT_LEVEL=1.0\n",
		"usr/bin/true":       "",
	} {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, p), []byte(data), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img, err := os.ReadFile(filepath.Join(out, "hardway-w3_1.34.2_x86-64.raw"))
	if err != nil {
		t.Fatal(err)
	}
	dest := filepath.Join(root, nodegen.SysextPath)
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dest, img, 0o644); err != nil {
		t.Fatal(err)
	}
	// systemd-sysext prepares the overlay in a namespace of its own, a slave
	// of this one: a private /run and shared mounts (both only in the
	// namespace unshare makes) let the merge show here.
	script := `set -e
mount -t tmpfs tmpfs /run
mount --make-rshared /
SYSTEMD_SYSEXT_HIERARCHIES=/usr systemd-sysext --root="$0" merge
cd "$0"
for p; do test -e ".$p" || { echo "missing $p"; exit 1; }; done
test -e usr/bin/true || { echo "the OS's /usr is hidden"; exit 1; }
./usr/lib/hardway/bin/kubelet`
	args := append([]string{"-m", "--propagation", "private", "sh", "-c", script, root}, sysextPaths(t, res[0].Job.Tree)...)
	got, err := exec.Command("unshare", args...).CombinedOutput()
	if err != nil || !strings.HasSuffix(string(got), "fake kubelet\n") {
		t.Errorf("merge: %v\n%s", err, got)
	}
}
