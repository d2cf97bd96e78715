package bake

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
	"github.com/hardway-dev/hardway/verify"
)

// TestGPT checks the hand-written partition table with sfdisk.
func TestGPT(t *testing.T) {
	if testing.Short() {
		t.Skip("runs sfdisk")
	}
	need(t, "sfdisk")
	const size = 64 * mib
	parts, err := gptLayout("c/n", size, 16*mib)
	if err != nil {
		t.Fatal(err)
	}
	primary, backup, err := gptTables(guidFor("c/n/disk"), size, parts)
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "disk.raw")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(f, size); err != nil {
		t.Fatal(err)
	}
	fh, err := os.OpenFile(f, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteAt(primary, 0)
	fh.WriteAt(backup, size-int64(len(backup)))
	fh.Close()
	checkGPT(t, f, "C/N")
}

// checkGPT verifies the table of disk with sfdisk: no errors, an ESP and an
// x86-64 root partition with the GUIDs derived from id.
func checkGPT(t *testing.T, disk, id string) {
	t.Helper()
	if out, err := exec.Command("sfdisk", "--verify", disk).CombinedOutput(); err != nil || !bytes.Contains(out, []byte("No errors detected")) {
		t.Fatalf("sfdisk --verify: %v\n%s", err, out)
	}
	out, err := exec.Command("sfdisk", "--json", disk).Output()
	if err != nil {
		t.Fatal(err)
	}
	var pt struct {
		PartitionTable struct {
			Label, ID  string
			Partitions []struct {
				Start, Size      int64
				Type, UUID, Name string
			}
		}
	}
	if err := json.Unmarshal(out, &pt); err != nil {
		t.Fatal(err)
	}
	p := pt.PartitionTable
	if p.Label != "gpt" || len(p.Partitions) != 2 {
		t.Fatalf("sfdisk: %s", out)
	}
	lower := strings.ToLower(id)
	if p.ID != guidFor(lower+"/disk") && p.ID != guidFor(id+"/disk") {
		t.Errorf("disk GUID %s", p.ID)
	}
	for i, want := range []string{typeESP, typeRootX8} {
		if p.Partitions[i].Type != want || p.Partitions[i].Start%alignLBAs != 0 {
			t.Errorf("partition %d: %+v, want type %s, 1 MiB aligned", i+1, p.Partitions[i], want)
		}
	}
}

// kvmClusterYAML is a cluster whose KVM node e1 is the only etcd member;
// cp1 is there because a cluster needs a controller. %s is etcd's pin.
const kvmClusterYAML = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: kvmboot
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
    dns: [10.240.0.1]
  binaries:
    mode: upstream
    dir: artifacts
    sha256:
      etcd: "%s"
  nodes:
    - {name: e1, roles: [etcd], target: kvm, address: 10.240.0.21/24, vmid: 221, diskGiB: 2}
    - {name: cp1, roles: [controller], target: lxc, address: 10.240.0.22/24, vmid: 222}
`

// kvmEnv is the environment variable that makes the test binary a child
// bake (TestKVMChild), run as another user: the directory of its inputs.
const kvmEnv = "HARDWAY_TEST_KVM_CHILD"

// kvmBakeDir bakes e1 from the spec, generate output and base in dir into
// dir/<out>, as the CLI does.
func kvmBakeDir(ctx context.Context, dir, base, out string) ([]Result, *nodegen.Context, error) {
	doc, err := spec.LoadFile(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		return nil, nil, err
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		return nil, nil, fmt.Errorf("spec: %v", is)
	}
	res, err := clusterdir.Run(ctx, doc, clusterdir.Options{Out: filepath.Join(dir, "gen")})
	if err != nil {
		return nil, nil, err
	}
	x := nodegen.New(doc.Cluster, res.Bundle)
	jobs, err := KVMJobs(x, "e1", "")
	if err != nil {
		return nil, nil, err
	}
	r, err := RunKVM(ctx, Config{Doc: doc, Base: base, Out: filepath.Join(dir, out)},
		KVMOptions{DiskSize: 2 << 30, Formats: []string{ImageRaw, ImageQCOW2}}, jobs)
	return r, x, err
}

// TestKVMChild is the second bake of TestKVMImage, as an unprivileged user.
func TestKVMChild(t *testing.T) {
	dir := os.Getenv(kvmEnv)
	if dir == "" {
		t.Skip("run by TestKVMImage")
	}
	if _, _, err := kvmBakeDir(context.Background(), dir, filepath.Join(dir, "base.tar.zst"), "out2"); err != nil {
		t.Fatal(err)
	}
}

// TestKVMImage bakes the KVM node image of e1 (etcd, the real binary) from
// the kvm base, checks its GPT, root file system and ESP, bakes it again
// (as nobody when the test runs as root) for the same bytes, and boots it
// under qemu (UEFI, TCG) until hardway-ready.service reports etcd active.
func TestKVMImage(t *testing.T) {
	if testing.Short() {
		t.Skip("bakes and boots a real disk image")
	}
	need(t, "debugfs", "e2fsck", "mkfs.vfat", "mcopy", "mdir",
		"qemu-img", "qemu-system-x86_64", "sfdisk")
	for _, f := range []string{verify.OVMFCode, verify.OVMFVars} {
		if _, err := os.Stat(f); err != nil {
			t.Fatalf("%v: apt-get install ovmf", err)
		}
	}
	base := rootfstest.Base(t, rootfstest.KVMBase)
	etcd := realBin(t, "etcd")
	// Not t.TempDir: its parent is private to the test's user, and the
	// second bake runs as nobody.
	dir, err := os.MkdirTemp("", "hardway-kvm-*")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeTree(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(etcd)
	if err != nil {
		t.Fatal(err)
	}
	os.Mkdir(filepath.Join(dir, "artifacts"), 0o755)
	if err := os.WriteFile(filepath.Join(dir, "artifacts", "etcd"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "cluster.yaml"), fmt.Appendf(nil, kvmClusterYAML, sha256hex(data)), 0o644); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, x, err := kvmBakeDir(context.Background(), dir, base, "out")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baked %d images in %s", len(res), time.Since(start).Round(time.Millisecond))
	if len(res) != 2 {
		t.Fatalf("results: %+v", res)
	}
	raw, qcow := res[1].Path, res[0].Path
	if !strings.HasSuffix(raw, "debian-12-hardway-e1_1.34.2_amd64.raw") || !strings.HasSuffix(qcow, ".qcow2") {
		t.Fatalf("names: %s %s", raw, qcow)
	}
	disk, err := newDisk(loadDoc(t, dir), Job{Subject: "e1", Node: "e1"}, 2<<30)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("gpt", func(t *testing.T) { checkGPT(t, raw, "kvmboot/e1") })
	t.Run("root fs", func(t *testing.T) {
		part := filepath.Join(t.TempDir(), "root.img")
		extract(t, raw, part, disk.rootOffset, disk.rootBytes)
		if out, err := exec.Command("e2fsck", "-fn", part).CombinedOutput(); err != nil {
			t.Fatalf("e2fsck -fn: %v\n%s", err, out)
		}
		out, err := exec.Command("debugfs", "-R", "cat /etc/fstab", part).Output()
		if err != nil || !bytes.Contains(out, []byte("PARTUUID="+disk.rootPartUUID+" / ext4")) {
			t.Errorf("fstab: %v\n%s", err, out)
		}
		out, err = exec.Command("debugfs", "-R", "stat /usr/local/bin/etcd", part).Output()
		if err != nil || !bytes.Contains(out, []byte("User:     0   Group:     0")) {
			t.Errorf("etcd not root-owned in the image: %v\n%s", err, out)
		}
		// The base's only xattrs: journald's ACLs on /var/log/journal.
		out, err = exec.Command("debugfs", "-R", "ea_list /var/log/journal", part).Output()
		if err != nil || !bytes.Contains(out, []byte("system.posix_acl_default")) {
			t.Errorf("no ACLs on /var/log/journal: %v\n%s", err, out)
		}
		out, err = exec.Command("debugfs", "-R", "stat /dev/null", part).Output()
		if err == nil && len(out) > 0 && !bytes.Contains(out, []byte("character special")) {
			t.Errorf("/dev/null is not a device node: %s", out)
		}
	})
	t.Run("esp", func(t *testing.T) {
		part := filepath.Join(t.TempDir(), "esp.img")
		extract(t, raw, part, disk.espOffset, espBytes)
		out, err := exec.Command("mdir", "-i", part, "-/", "-b", "::").CombinedOutput()
		if err != nil {
			t.Fatalf("mdir: %v\n%s", err, out)
		}
		for _, f := range []string{"::/EFI/BOOT/BOOTX64.EFI", "::/vmlinuz", "::/initrd.img", "::/loader/loader.conf", "::/loader/entries/hardway.conf"} {
			if !bytes.Contains(bytes.ToUpper(out), []byte(strings.ToUpper(f))) {
				t.Errorf("ESP has no %s:\n%s", f, out)
			}
		}
		entry, err := exec.Command("mtype", "-i", part, "::/loader/entries/hardway.conf").Output()
		if err != nil || !bytes.Contains(entry, []byte("options "+kernelCmdline(disk))) {
			t.Errorf("loader entry: %v\n%s", err, entry)
		}
	})
	t.Run("qcow2", func(t *testing.T) {
		if out, err := exec.Command("qemu-img", "compare", "-f", "raw", "-F", "qcow2", raw, qcow).CombinedOutput(); err != nil {
			t.Fatalf("qemu-img compare: %v\n%s", err, out)
		}
	})
	t.Run("reproducible", func(t *testing.T) {
		start := time.Now()
		again := bakeAgain(t, dir, base)
		t.Logf("second bake in %s", time.Since(start).Round(time.Millisecond))
		for _, r := range res {
			b, err := os.ReadFile(filepath.Join(again, filepath.Base(r.Path)+".sha256"))
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Fields(string(b))[0]; got != r.SHA256 {
				t.Errorf("%s: two bakes differ: %s and %s", filepath.Base(r.Path), r.SHA256, got)
			}
		}
	})
	t.Run("boot", func(t *testing.T) {
		n, _ := x.C.Node("e1")
		bootKVM(t, raw, x.MAC(n), common.ReadyMessage("e1", []string{"etcd"}), 6*time.Minute)
	})
	t.Run("role image", func(t *testing.T) { roleImage(t, dir, base, x) })
}

// roleImage bakes the role image of etcd, checks that it holds no node's
// configuration, and boots it with e1's NoCloud seed attached: cloud-init
// must write e1's tree (its etcd unit, certificates and network) for etcd
// to become active and hardway-ready.service, which only the seed brings,
// to report e1 ready.
func roleImage(t *testing.T, dir, base string, x *nodegen.Context) {
	doc := loadDoc(t, dir)
	jobs, err := KVMJobs(x, "", "etcd")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res, err := RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: filepath.Join(dir, "role")},
		KVMOptions{DiskSize: 2 << 30, Formats: []string{ImageRaw}}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baked the role image in %s", time.Since(start).Round(time.Millisecond))
	if len(res) != 1 || !strings.HasSuffix(res[0].Path, "debian-12-hardway-etcd_1.34.2_amd64.raw") || res[0].Job.Node != "" {
		t.Fatalf("results: %+v", res)
	}
	raw := res[0].Path
	disk, err := newDisk(doc, jobs[0], 2<<30)
	if err != nil {
		t.Fatal(err)
	}
	checkGPT(t, raw, "kvmboot/role/etcd")
	part := filepath.Join(t.TempDir(), "root.img")
	extract(t, raw, part, disk.rootOffset, disk.rootBytes)
	for p, want := range map[string]bool{
		"/usr/local/bin/etcd":              true,
		CloudInitRoleConfig:                true,
		CloudInitDisabled:                  false,
		"/etc/systemd/system/etcd.service": false,
		tree.UnitFile(common.ReadyUnit):    false,
		"/etc/systemd/system/multi-user.target.wants/systemd-networkd.service": true,
	} {
		out, _ := exec.Command("debugfs", "-R", "stat "+p, part).CombinedOutput()
		if got := !bytes.Contains(out, []byte("File not found")); got != want {
			t.Errorf("%s in the role image: %v, want %v", p, got, want)
		}
	}
	seed := filepath.Join(dir, "gen", "kvmboot", "nodes", "e1", "seed.iso")
	if _, err := os.Stat(seed); err != nil {
		t.Fatal(err)
	}
	n, _ := x.C.Node("e1")
	bootKVM(t, raw, x.MAC(n), common.ReadyMessage("e1", []string{"etcd"}), 15*time.Minute,
		"-drive", "file="+seed+",if=virtio,format=raw,readonly=on")
}

func loadDoc(t *testing.T, dir string) *spec.Document {
	t.Helper()
	doc, err := spec.LoadFile(filepath.Join(dir, "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	doc.Validate(spec.Options{})
	return doc
}

// bakeAgain bakes e1 a second time into dir/out2 and returns that
// directory: as root, by the test binary itself run as nobody
// (uid 65534), so that the bake is proven to need no privilege.
func bakeAgain(t *testing.T, dir, base string) string {
	t.Helper()
	out := filepath.Join(dir, "out2")
	if os.Getuid() != 0 {
		if _, _, err := kvmBakeDir(context.Background(), dir, base, "out2"); err != nil {
			t.Fatal(err)
		}
		return out
	}
	need(t, "setpriv")
	// Everything the child reads or writes, nobody's: the test binary, the
	// base, the spec and generate's output.
	bin := filepath.Join(dir, "bake.test")
	copyFile(t, os.Args[0], bin, 0o755)
	if err := exec.Command("chown", "-R", "65534:65534", dir).Run(); err != nil {
		t.Fatal(err)
	}
	// After the chown: a hard link shares the cached base's inode, which
	// must stay root's; nobody only reads it (mode 0644).
	if err := os.Link(base, filepath.Join(dir, "base.tar.zst")); err != nil {
		copyFile(t, base, filepath.Join(dir, "base.tar.zst"), 0o644)
	}
	cmd := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", bin, "-test.run=^TestKVMChild$", "-test.v")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), kvmEnv+"="+dir, "HOME="+dir)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("bake as nobody: %v\n%s", err, b)
	}
	return out
}

func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
}

// extract copies n bytes at off of disk into file.
func extract(t *testing.T, disk, file string, off, n int64) {
	t.Helper()
	in, err := os.Open(disk)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	if _, err := io.Copy(out, io.NewSectionReader(in, off, n)); err != nil {
		t.Fatal(err)
	}
}

// bootKVM boots disk (a snapshot: the image is not changed) under qemu with
// UEFI firmware, software emulation and user-mode networking restricted to
// the guest (restrict=on: no packet leaves for the host or beyond; the NIC
// has the node's MAC, so its network file applies),
// waits for marker on the serial console, then stops qemu by its PID.
func bootKVM(t *testing.T, disk, mac, marker string, timeout time.Duration, extra ...string) {
	t.Helper()
	dir := t.TempDir()
	vars := filepath.Join(dir, "OVMF_VARS.fd")
	copyFile(t, verify.OVMFVars, vars, 0o644)
	log := filepath.Join(dir, "serial.log")
	cmd := exec.Command("qemu-system-x86_64", "-machine", "q35", "-m", "1024", "-nographic", "-vga", "none",
		"-monitor", "none", "-serial", "file:"+log,
		"-drive", "if=pflash,format=raw,readonly=on,file="+verify.OVMFCode,
		"-drive", "if=pflash,format=raw,file="+vars,
		"-drive", "file="+disk+",if=virtio,format=raw,snapshot=on",
		"-nic", "user,restrict=on,model=virtio-net-pci,mac="+mac)
	cmd.Args = append(cmd.Args, extra...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
		<-exited
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	deadline := time.After(timeout)
	for {
		select {
		case err := <-exited:
			exited <- err
			t.Fatalf("qemu exited: %v\n%s\n%s", err, stderr.String(), tail(log))
		case <-deadline:
			t.Fatalf("no %q on the console after %s:\n%s", marker, timeout, tail(log))
		case <-tick.C:
			if b, _ := os.ReadFile(log); bytes.Contains(b, []byte(marker)) {
				t.Logf("%q after %s", marker, time.Since(start).Round(time.Second))
				return
			}
		}
	}
}

// tail is the end of a console log, for a failure.
func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}

// TestKVMBaseCheck: a base without a kernel, an initrd or systemd-boot is
// refused before anything is written, naming each.
func TestKVMBaseCheck(t *testing.T) {
	base := syntheticBase(t)
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	jobs, err := KVMJobs(x, "w2", "")
	if err != nil {
		t.Fatal(err)
	}
	out := t.TempDir()
	_, err = RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: out}, KVMOptions{Formats: []string{ImageRaw}}, jobs)
	if err == nil {
		t.Fatal("baked a base with no kernel")
	}
	for _, want := range []string{"no kernel", "no initrd", "systemd-boot"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not say %q: %v", want, err)
		}
	}
	// A role image also needs cloud-init, which a node image does not.
	if strings.Contains(err.Error(), "cloud-init") {
		t.Errorf("a node image asked for cloud-init: %v", err)
	}
	roleJobs, err := KVMJobs(x, "", "worker")
	if err != nil {
		t.Fatal(err)
	}
	_, err = RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: out}, KVMOptions{Formats: []string{ImageRaw}}, roleJobs)
	if err == nil || !strings.Contains(err.Error(), "no cloud-init") {
		t.Errorf("a role image from a base without cloud-init: %v", err)
	}
	if es := entries(t, out); len(es) > 0 {
		t.Errorf("left %v", es)
	}
}

// TestKVMJobs: only kvm nodes, each with its network file (a node image has
// no NoCloud seed to bring it) and the ready unit waiting for its services.
func TestKVMJobs(t *testing.T) {
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	if _, err := KVMJobs(x, "cp1", ""); err == nil || !strings.Contains(err.Error(), "target lxc") {
		t.Errorf("an lxc node: %v", err)
	}
	jobs, err := KVMJobs(x, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Node != "w2" {
		t.Fatalf("jobs: %+v", jobs)
	}
	n, _ := x.C.Node("w2")
	e, ok := jobs[0].Tree.Get(x.NetworkFile(n))
	if !ok || !bytes.Contains(e.Data, []byte("MACAddress="+x.MAC(n))) {
		t.Errorf("no network file matching %s", x.MAC(n))
	}
	units := common.RoleUnits(jobs[0].Tree)
	if !slices.Contains(units, "kubelet.service") || slices.Contains(units, "systemd-networkd.service") {
		t.Errorf("role units: %v", units)
	}
	e, ok = jobs[0].Tree.Get(tree.UnitFile(common.ReadyUnit))
	if !ok || !bytes.Contains(e.Data, []byte("After=")) || !bytes.Contains(e.Data, []byte("ExecStart=/bin/echo ")) || !bytes.Contains(e.Data, []byte("hardway: w2 worker ready")) {
		t.Errorf("ready unit: %v\n%s", ok, e.Data)
	}

	// A role image: no node, the roles' binaries of the kvm nodes with it.
	jobs, err = KVMJobs(x, "", "worker")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Node != "" || jobs[0].Tree != nil || jobs[0].Subject != "worker" || !slices.Equal(jobs[0].Roles, []string{"worker"}) {
		t.Fatalf("role jobs: %+v", jobs)
	}
	if _, err := KVMJobs(x, "", "etcd"); err == nil || !strings.Contains(err.Error(), "no node of target kvm") {
		t.Errorf("a role no kvm node has: %v", err)
	}
}

// TestKVMFullDisk: a KVM bake into a full file system fails saying so and
// leaves nothing behind, neither the scratch tree nor a partial image.
func TestKVMFullDisk(t *testing.T) {
	if testing.Short() {
		t.Skip("mounts a tmpfs")
	}
	need(t, "mount", "umount", "mkfs.vfat", "mcopy", "mmd")
	doc, jobs := w2Image(t)
	base := kernelBase(t, 0)
	out := t.TempDir()
	run(t, "mount", "-t", "tmpfs", "-o", "size=8m", "hwbake-test", out)
	t.Cleanup(func() { run(t, "umount", out) })
	_, err := RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: out}, KVMOptions{DiskSize: 1 << 30, Formats: []string{ImageRaw}}, jobs)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "no space left on device") {
		t.Fatalf("err = %v, want no space left on device", err)
	}
	t.Log(err)
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("full output dir holds %v", got)
	}
}

// kernelBase is a synthetic base with what a KVM bake checks for: a kernel
// and an initrd (8 MiB of noise each) behind /vmlinuz and /initrd.img, and
// systemd-boot; plus extra bytes of noise in /var/noise, and more members.
func kernelBase(t *testing.T, extra int, more ...member) string {
	return buildBase(t, append(kernelMembers(extra), more...))
}

// kernelMembers are kernelBase's members besides buildBase's.
func kernelMembers(extra int) []member {
	noise := make([]byte, 16<<20+extra) // incompressible
	rand.Read(noise)
	reg := func(name string, data []byte) member {
		return member{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: string(data)}
	}
	link := func(name, target string) member {
		return member{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
	}
	ms := []member{
		reg("./boot/vmlinuz-6.1.0-hw", noise[:8<<20]), reg("./boot/initrd.img-6.1.0-hw", noise[8<<20:16<<20]),
		link("./vmlinuz", "boot/vmlinuz-6.1.0-hw"), link("./initrd.img", "boot/initrd.img-6.1.0-hw"),
		reg("."+SystemdBootEFI, []byte("MZ")),
	}
	if extra > 0 {
		ms = append(ms, reg("./var/noise", noise[16<<20:]))
	}
	return ms
}

// TestKVMInterrupt cancels a KVM bake while its root file system is being
// written (as Ctrl-C does through the CLI's context): it stops with the
// context's error and leaves nothing in the output directory.
func TestKVMInterrupt(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a KVM bake")
	}
	need(t, "mkfs.vfat", "mcopy", "mmd")
	doc, jobs := w2Image(t)
	base := kernelBase(t, 128<<20)
	out := t.TempDir()
	progress := &Progress{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		for ctx.Err() == nil {
			for _, s := range progress.Steps() {
				if strings.HasSuffix(s.Name, ".ext4") && s.Bytes.Load() > 0 {
					cancel()
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	_, err := RunKVM(ctx, Config{Doc: doc, Base: base, Out: out, Progress: progress}, KVMOptions{DiskSize: 1 << 30, Formats: []string{ImageRaw}}, jobs)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context canceled", err)
	}
	if got := entries(t, out); len(got) != 0 {
		t.Errorf("an interrupted bake left %v", got)
	}
}

// TestKVMDiskTooSmall: a disk whose root file system cannot hold the base
// and the layers, and one that holds them with too little room left, fail
// with the same words, naming the --disk-size that would do; nothing is
// left behind. (RunKVM takes a size under bake.MinDiskSize, which only the
// CLI and the plugin refuse, so a small base shows it.)
func TestKVMDiskTooSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("writes KVM images")
	}
	need(t, "mkfs.vfat", "mcopy", "mmd")
	doc, jobs := w2Image(t)
	for _, tt := range []struct {
		name  string
		extra int // bytes of noise beyond kernelBase's ~33 MiB
	}{
		{"no room to run", 0},      // ~33 MiB in a 42 MiB root: fits, under the fifth and 64 MiB
		{"does not fit", 40 << 20}, // ~73 MiB in a 42 MiB root: the writer runs out of blocks
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := t.TempDir()
			_, err := RunKVM(context.Background(), Config{Doc: doc, Base: kernelBase(t, tt.extra), Out: out}, KVMOptions{DiskSize: 300 << 20, Formats: []string{ImageRaw}}, jobs)
			if err == nil || !strings.Contains(err.Error(), "is too small for") || !regexp.MustCompile(`give --disk-size \d+M or more`).MatchString(err.Error()) {
				t.Fatalf("err = %v, want the root too small, with a --disk-size", err)
			}
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("output dir holds %v", got)
			}
		})
	}
}
