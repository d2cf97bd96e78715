package main

import (
	"archive/tar"
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/hardway-dev/hardway/output"
)

// bakeSpec has two LXC nodes and one KVM node, in packaged mode: bake adds
// the pinned Kubernetes binaries (writeBakeSpec's stand-ins), the base's
// packages provide the rest.
const bakeSpec = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: clibake}
spec:
  kubernetesVersion: v1.34.2
  network: {nodeCIDR: 10.240.0.0/24}
  binaries: {mode: packaged}
  nodes:
    - {name: cp1, roles: [controller, etcd], target: lxc, address: 10.240.0.21/24, vmid: 221}
    - {name: w1, roles: [worker], target: lxc, address: 10.240.0.31/24, vmid: 231}
    - {name: w2, roles: [worker], target: kvm, address: 10.240.0.32/24, vmid: 232}
`

// baseFiles are what writeBase puts in a base besides filler: what bake
// checks for every artifact (systemd, /sbin, os-release), for a Debian
// template (debian_version), and what the trees and roles of bakeSpec's
// nodes and of an lb node need of the base: networkd, haproxy, keepalived,
// iptables, and in binaries.mode packaged containerd, runc, the CNI plugins
// and etcd (stand-ins).
var baseFiles = func() map[string]string {
	files := map[string]string{
		"./usr/lib/os-release":      "ID=debian\nVERSION_ID=12\n",
		"./etc/debian_version":      "12.8\n",
		"./usr/lib/systemd/systemd": "ELF",
		"./usr/sbin/iptables":       "ELF",
	}
	for _, u := range []string{"systemd-networkd", "systemd-networkd-wait-online", "haproxy", "keepalived", "containerd"} {
		files["./usr/lib/systemd/system/"+u+".service"] = "[Unit]\n"
	}
	for _, b := range []string{"sh", "echo", "touch", "rm", "etcd", "containerd", "containerd-shim-runc-v2", "ctr", "runc"} {
		files["./usr/bin/"+b] = "ELF"
	}
	for _, b := range []string{"bridge", "host-local", "portmap", "loopback"} {
		files["./usr/lib/cni/"+b] = "ELF"
	}
	return files
}()

// writeBakeSpec writes bakeSpec as dir/cluster.yaml, with stand-ins for
// the Kubernetes binaries packaged mode pins in dir/artifacts, and returns
// its path.
func writeBakeSpec(t *testing.T, dir string) string {
	t.Helper()
	art := filepath.Join(dir, "artifacts")
	if err := os.MkdirAll(art, 0o755); err != nil {
		t.Fatal(err)
	}
	var pins strings.Builder
	for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy"} {
		data := []byte("ELF " + b)
		if err := os.WriteFile(filepath.Join(art, b), data, 0o755); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&pins, "      %s: %x\n", b, sha256.Sum256(data))
	}
	file := filepath.Join(dir, "cluster.yaml")
	text := strings.Replace(bakeSpec, "  binaries: {mode: packaged}\n", "  binaries:\n    mode: packaged\n    dir: artifacts\n    sha256:\n"+pins.String(), 1)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// writeBase writes a zstd-compressed base with baseFiles but those in
// without, and filler bytes of content.
func writeBase(t *testing.T, filler int64, without ...string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.tar.zst")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zw, err := zstd.NewWriter(f, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, d := range []string{"./", "./etc/", "./usr/", "./usr/bin/", "./usr/lib/", "./usr/lib/cni/", "./usr/lib/systemd/", "./usr/lib/systemd/system/", "./usr/sbin/", "./var/"} {
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./bin", Linkname: "usr/bin"})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./sbin", Linkname: "usr/sbin"})
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: "./etc/os-release", Linkname: "../usr/lib/os-release"})
	for name, data := range baseFiles {
		if slices.Contains(without, name) {
			continue
		}
		tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))})
		io.WriteString(tw, data)
	}
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "./var/filler", Mode: 0o644, Size: filler})
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i)
	}
	for left := filler; left > 0; left -= int64(len(chunk)) {
		tw.Write(chunk[:min(left, int64(len(chunk)))])
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBakeCommand(t *testing.T) {
	dir := t.TempDir()
	spec := writeBakeSpec(t, dir)
	base := writeBase(t, 1<<20)

	out, code := hardway(t, "bake", "-f", spec, "--dir", filepath.Join(dir, "out"))
	if code == 0 || !strings.Contains(out, "--base is required") {
		t.Errorf("without --base: exit %d\n%s", code, out)
	}
	out, code = hardway(t, "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--jobs", "2")
	if code != 0 {
		t.Fatalf("bake: exit %d\n%s", code, out)
	}
	bakeDir := filepath.Join(dir, "out", "clibake", "bake")
	for _, node := range []string{"cp1", "w1"} {
		name := "debian-12-hardway-" + node + "_1.34.2_amd64.tar.zst"
		if _, err := os.Stat(filepath.Join(bakeDir, name)); err != nil {
			t.Errorf("%s: %v\n%s", name, err, out)
		}
		if !strings.Contains(out, filepath.Join(bakeDir, name)) {
			t.Errorf("output does not list %s:\n%s", name, out)
		}
	}
	if strings.Contains(out, "hardway-w2") || strings.Contains(out, "\r") {
		t.Errorf("kvm node baked, or a terminal progress line on a pipe:\n%s", out)
	}
	// The generate outputs are there too: the baked trees are those.
	if _, err := os.Stat(filepath.Join(dir, "out", "clibake", "nodes", "cp1", "overlay.tar")); err != nil {
		t.Error(err)
	}
	out, code = hardway(t, "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--node", "w2")
	if code == 0 || !strings.Contains(out, "target kvm") {
		t.Errorf("--node w2: exit %d\n%s", code, out)
	}
	// The disk size has the Packer plugin's floor and units (bake.ParseDiskSize).
	for size, want := range map[string]string{"512M": "is smaller than 1024 MiB", "4096": "has no unit"} {
		out, code = hardway(t, "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--format", "kvm", "--node", "w2", "--disk-size", size)
		if code != 2 || !strings.Contains(out, "--disk-size: ") || !strings.Contains(out, want) {
			t.Errorf("--disk-size %s: exit %d\n%s", size, code, out)
		}
	}

	// -o json: the artifacts as one document (issue 16, point 3); the
	// previous release's -o DIR still names the artifact directory.
	jsonOut, _, code := hardwayOut(t, "", "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--node", "cp1", "-o", "json")
	var b bakeOutput
	if err := json.Unmarshal([]byte(jsonOut), &b); err != nil || code != 0 || len(b.Artifacts) != 1 {
		t.Fatalf("-o json: exit %d %v\n%s", code, err, jsonOut)
	}
	a := b.Artifacts[0]
	if a.Path != filepath.Join(bakeDir, "debian-12-hardway-cp1_1.34.2_amd64.tar.zst") || a.Format != "lxc" || a.Node != "cp1" || a.Subject != "cp1" ||
		!slices.Equal(a.Roles, []string{"controller", "etcd"}) || len(a.SHA256) != 64 {
		t.Errorf("-o json: %+v", a)
	}
	old := filepath.Join(dir, "old")
	_, errOut, code := hardwayOut(t, "", "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--node", "cp1", "-o", old)
	if _, err := os.Stat(filepath.Join(old, "debian-12-hardway-cp1_1.34.2_amd64.tar.zst")); err != nil || code != 0 || !strings.Contains(errOut, "use hardway bake --artifact-dir "+old) {
		t.Errorf("-o DIR: exit %d %v\n%s", code, err, errOut)
	}
}

// TestBakeBaseLacksRoleNeeds (issue 16 point 6, issue 13): bake of an lb
// node on a base without haproxy and keepalived fails, writing nothing, and
// names the node, the role, what is missing and which base has it; the
// same base with them bakes the node.
func TestBakeBaseLacksRoleNeeds(t *testing.T) {
	dir := t.TempDir()
	art := filepath.Join(dir, "art")
	base := writeBase(t, 0, "./usr/lib/systemd/system/haproxy.service", "./usr/lib/systemd/system/keepalived.service")
	out, code := hardway(t, "bake", "-f", seed, "--node", "lb1", "--base", base, "--dir", dir, "--artifact-dir", art)
	for _, want := range []string{"node lb1 (role lb) needs haproxy.service", "package haproxy", "node lb1 (role lb) needs keepalived.service", "package keepalived", "full base (hack/base.sh"} {
		if code != exitFailed || !strings.Contains(out, want) {
			t.Errorf("exit %d, want %d and %q:\n%s", code, exitFailed, want, out)
		}
	}
	if es, _ := os.ReadDir(art); len(es) > 0 {
		t.Errorf("bake that failed left %v", es)
	}
	out, code = hardway(t, "bake", "-f", seed, "--node", "lb1", "--base", writeBase(t, 0), "--dir", dir, "--artifact-dir", art)
	if code != 0 || !strings.Contains(out, "hardway-lb1_") {
		t.Errorf("lb1 on a base with haproxy and keepalived: exit %d\n%s", code, out)
	}
}

// TestBakeInterrupt sends SIGINT (Ctrl-C) to a running bake: it stops,
// fails, and leaves no partial template behind.
func TestBakeInterrupt(t *testing.T) {
	dir := t.TempDir()
	spec := writeBakeSpec(t, dir)
	base := writeBase(t, 1<<30)
	out := filepath.Join(dir, "templates")
	cmd := exec.Command(binary, "bake", "-f", spec, "--base", base, "--dir", filepath.Join(dir, "out"), "--node", "cp1", "--artifact-dir", out)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		log.WriteString(sc.Text() + "\n")
		if strings.Contains(sc.Text(), "msg=baking") {
			break
		}
	}
	time.Sleep(300 * time.Millisecond) // into the stream
	partial, _ := filepath.Glob(filepath.Join(out, ".*.tmp-*"))
	cmd.Process.Signal(syscall.SIGINT)
	rest, _ := io.ReadAll(stderr)
	log.Write(rest)
	err = cmd.Wait()
	if err == nil {
		t.Fatalf("an interrupted bake succeeded:\n%s", log.String())
	}
	if len(partial) == 0 {
		t.Errorf("no temporary file while baking (the bake ended too soon to test?):\n%s", log.String())
	}
	// The directory's locks stay (they are not artifacts); nothing else may.
	left, _ := os.ReadDir(out)
	left = slices.DeleteFunc(left, func(e os.DirEntry) bool {
		return e.Name() == output.LockFile || e.Name() == output.BusyFile
	})
	if len(left) != 0 {
		t.Errorf("left behind after Ctrl-C: %v\n%s", left, log.String())
	}
	if !strings.Contains(log.String(), "context canceled") {
		t.Errorf("log does not say it was cancelled:\n%s", log.String())
	}
}
