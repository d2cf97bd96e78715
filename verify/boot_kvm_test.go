package verify

import (
	"context"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// TestBootSeedKVM is issue 13's proof on the seed's KVM cluster
// (binaries.mode packaged): kub-master (etcd and the control plane),
// kub-node1 and kub-node2 (workers) baked into KVM images from the KVM base,
// whose packages bring containerd 1.6, runc, the CNI plugins and etcd 3.4,
// with the pinned Kubernetes binaries and the image archives; booted under
// qemu with OVMF at their spec addresses, the rows of a booted cluster must
// pass (those about a gateway, lbs or a second controller say they do not
// apply); nothing of the run may be left.
//
// It runs only with HARDWAY_BOOT_KVM=1, which make test (as its last step,
// alone) and make test-boot-kvm set: without KVM acceleration its three VMs
// take 11 minutes and more, too long for the go test ./... loop.
func TestBootSeedKVM(t *testing.T) {
	if os.Getenv("HARDWAY_BOOT_KVM") != "1" {
		t.Skip("the seed's KVM cluster boots only with HARDWAY_BOOT_KVM=1 (make test-boot-kvm)")
	}
	bins := bootHost(t, spec.TargetKVM)
	doc := pinnedExample(t, "../examples/seed-kvm.yaml", bins)
	if m := doc.Cluster.Spec.Binaries.Mode; m != spec.ModePackaged {
		t.Fatalf("binaries.mode %s, want the seed's packaged", m)
	}
	res, x := generated(t, doc)
	jobs, err := bake.KVMJobs(x, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	baked, err := bake.RunKVM(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.KVMBase), Out: t.TempDir(), Parallel: 2, Log: slog.New(slog.DiscardHandler)},
		bake.KVMOptions{DiskSize: 4 << 30, Formats: []string{bake.ImageRaw}}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	artifacts := nodeArtifacts(baked)
	if len(artifacts) != 3 {
		t.Fatalf("baked %v, want an image for each of the three nodes", artifacts)
	}
	t.Logf("baked %d images in %s", len(baked), time.Since(start).Round(time.Millisecond))
	runBooted(t, doc, Options{Dir: res.Dir, BinDirs: bins, Artifacts: artifacts, Boot: true}, len(bootChecks)+len(workerChecks)+len(lastChecks), "")
}
