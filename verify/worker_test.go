package verify

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// workerSpec is a control plane of one node (controller and etcd, run as
// processes), an LXC worker booted from its baked template and a KVM worker
// booted from the worker role image with its NoCloud seed. The Proxmox
// host is the gateway (10.240.0.1), as in the seed. workerDoc fills in
// the binaries and images.
const workerSpec = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: workers}
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
    dns: [10.240.0.1]
    podCIDR: 10.200.0.0/16
    serviceCIDR: 10.32.0.0/24
  pki: {algorithm: ecdsa-p256}
  nodes:
    - {name: cp1, roles: [controller, etcd], target: lxc, address: 10.240.0.21/24, vmid: 221}
    - {name: w1, roles: [worker], target: lxc, address: 10.240.0.31/24, vmid: 231, cores: 2, memoryMiB: 4096}
    - {name: w2, roles: [worker], target: kvm, address: 10.240.0.32/24, vmid: 232, cores: 2, memoryMiB: 2048}
`

// TestWorkerJoins is issue 11's proof: w1's template, baked from the small
// Debian base with the pinned upstream runtime (make runtime) and the image
// archives (make images), boots under lxc-start with the LXC configuration
// pve-container writes from its proxmox.conf; the worker role image, baked
// from the KVM base, boots under qemu with OVMF, w2's NoCloud seed and the
// devices of its proxmox.conf. Both join the control plane verify runs, go
// Ready and run pods: the worker rows of verify must all pass, and nothing
// of the run may be left.
func TestWorkerJoins(t *testing.T) {
	bins := bootHost(t, spec.TargetLXC, spec.TargetKVM)
	doc := workerDoc(t, bins, "", 231)
	res, x := generated(t, doc)
	jobs, err := bake.Jobs(x, bake.FormatLXC, "w1", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	baked, err := bake.Run(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.SmallBase), Out: t.TempDir(), Parallel: 1, Log: slog.New(slog.DiscardHandler)}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baked %s in %s", filepath.Base(baked[0].Path), time.Since(start).Round(time.Millisecond))
	kvmJobs, err := bake.KVMJobs(x, "", spec.RoleWorker)
	if err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	image, err := bake.RunKVM(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.KVMBase), Out: t.TempDir(), Log: slog.New(slog.DiscardHandler)},
		bake.KVMOptions{DiskSize: 3 << 30, Formats: []string{bake.ImageRaw}}, kvmJobs)
	if err != nil {
		t.Fatal(err)
	}
	if len(image) != 1 || image[0].Job.Node != "" {
		t.Fatalf("want the worker role image, baked %+v", image)
	}
	t.Logf("baked %s in %s", filepath.Base(image[0].Path), time.Since(start).Round(time.Millisecond))
	runBooted(t, doc, Options{Dir: res.Dir, BinDirs: bins, Artifacts: map[string]string{"w1": baked[0].Path, "w2": image[0].Path}}, len(checks)+len(workerChecks), "")
}

// workerDoc is bake.PinnedCopy of workerSpec: the pinned binaries (bins
// and $HARDWAY_RUNTIME_DIR) and the archives `make images` built, but those
// whose file name starts with drop ("" for none); w1 has VMID vmid (its
// cgroup is lxc/<vmid>: runs at once need their own).
func workerDoc(t *testing.T, bins []string, drop string, vmid int) *spec.Document {
	t.Helper()
	runtimeDir := os.Getenv("HARDWAY_RUNTIME_DIR")
	if runtimeDir == "" {
		t.Fatal("HARDWAY_RUNTIME_DIR is not set: make runtime's bin/runtime (make test sets it)")
	}
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	text := strings.Replace(workerSpec, "vmid: 231,", fmt.Sprintf("vmid: %d,", vmid), 1)
	if err := os.WriteFile(file, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	archives := slices.DeleteFunc(imageArchives(t), func(a string) bool { return drop != "" && strings.HasPrefix(filepath.Base(a), drop) })
	copied, err := bake.PinnedCopy(file, t.TempDir(), append(slices.Clone(bins), runtimeDir), archives)
	if err != nil {
		t.Fatal(err)
	}
	return loadExample(t, copied)
}

// imageArchives are the archives `make images` built, one path a line in
// the file $HARDWAY_IMAGES; the smoke image must be among them.
func imageArchives(t *testing.T) []string {
	t.Helper()
	list := os.Getenv("HARDWAY_IMAGES")
	if list == "" {
		t.Fatal("HARDWAY_IMAGES is not set: the file listing the archives `make images` prints (make test sets it)")
	}
	out, err := bake.ArchiveList(list)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatalf("%s lists no archive", list)
	}
	return out
}

// assertNoMountsUnder: no mount point of this mount namespace is under dir.
func assertNoMountsUnder(t *testing.T, dir string) {
	t.Helper()
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(data), "\n") {
		if f := strings.Fields(l); len(f) > 4 && strings.HasPrefix(f[4], dir) {
			t.Errorf("mount left behind: %s", l)
		}
	}
}

// assertNoCgroup: no cgroup named rel is left under any hierarchy.
func assertNoCgroup(t *testing.T, rel string) {
	t.Helper()
	left, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", "*", rel))
	if more, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup", rel)); len(more) > 0 {
		left = append(left, more...)
	}
	if len(left) > 0 {
		t.Errorf("cgroups left behind: %v", left)
	}
}
