package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/bytesize"
	"github.com/hardway-dev/hardway/ext4"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/rootfs"
)

// FormatKVM is the KVM disk image format: a GPT disk with an EFI system
// partition (systemd-boot, the base's kernel and initrd) and an ext4 root.
const FormatKVM = "kvm"

// KindKVM is the bake-manifest.json kind of a KVM disk image.
const KindKVM = "kvm-image"

// Image formats of a KVM bake.
const (
	ImageRaw   = "raw"
	ImageQCOW2 = "qcow2"
)

// Paths of the KVM layer and of the base.
const (
	// SystemdBootEFI is systemd-boot's UEFI binary in the base (package systemd-boot).
	SystemdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// RepartRoot is systemd-repart's configuration that grows the root partition.
	RepartRoot = "/etc/repart.d/50-root.conf"
	fstab      = "/etc/fstab"
	kernelLink = "/vmlinuz"
	initrdLink = "/initrd.img"
)

// KVMOptions are the settings of a KVM bake.
type KVMOptions struct {
	// DiskSize is the disk's size in bytes, rounded up to MiB; 0 takes the
	// node's spec.nodes[].diskGiB.
	DiskSize int64
	// Formats are the image files to write: raw, qcow2 or both.
	Formats []string
}

// MinDiskSize is the smallest disk image worth making: an ESP and a root
// file system that holds a base and a role's binaries (spec.nodes[].diskGiB
// starts at 1 too).
const MinDiskSize = 1 << 30

// ParseDiskSize reads a disk size the user wrote ("4G", "4096M": a number
// with a unit, bytesize.Parse) for KVMOptions.DiskSize, refusing one under
// MinDiskSize. The CLI's --disk-size and the Packer plugin's disk_size both
// read it here.
func ParseDiskSize(s string) (int64, error) {
	n, err := bytesize.Parse(s)
	if err != nil {
		return 0, err
	}
	if n < MinDiskSize {
		return 0, fmt.Errorf("%q is smaller than %d MiB", s, MinDiskSize>>20)
	}
	return n, nil
}

// RunKVM bakes KVM images, cfg.Parallel at a time (one with 0), and
// records them in the output directory's bake-manifest.json. It checks
// every pinned binary and the tools it runs before anything is written;
// as Run, it reads the base once per image, checking it as it goes; each
// image is written to a temporary file renamed into place once complete
// and the whole base checked, and its scratch directory (the ESP and the
// files it gets) is removed whatever happens.
func RunKVM(ctx context.Context, cfg Config, o KVMOptions, jobs []Job) ([]Result, error) {
	if len(o.Formats) == 0 {
		o.Formats = []string{ImageQCOW2}
	}
	for _, f := range o.Formats {
		if f != ImageRaw && f != ImageQCOW2 {
			return nil, fmt.Errorf("unknown image format %q (have: raw, qcow2)", f)
		}
	}
	layers, err := prepare(&cfg, jobs)
	if err != nil {
		return nil, err
	}
	if err := checkTools(o); err != nil {
		return nil, err
	}
	// Besides what every artifact needs, the base must boot: a kernel, its
	// initrd and systemd-boot (and cloud-init for a role image).
	roleImage := slices.ContainsFunc(jobs, func(j Job) bool { return j.Tree == nil })
	watch := append(watchNames(jobs, cfg.Doc.Cluster.Spec.Binaries.Mode), path.Base(SystemdBootEFI), "systemd-repart")
	check := &baseCheck{check: func(info *rootfs.BaseInfo) error {
		return checkBaseFor(&cfg, jobs, layers, info, func(info *rootfs.BaseInfo) error { return checkKVMBase(cfg.Base, info, roleImage) })
	}}
	return bakeAll(ctx, cfg, KindKVM, jobs, func(ctx context.Context, i int) ([]Result, error) {
		return bakeKVM(ctx, cfg, o, jobs[i], layers[i], watch, check)
	})
}

// KVMFileName is the name of a KVM image:
// <os>-<version>-hardway-<node>_<kubernetes version>_amd64.<raw|qcow2>.
func KVMFileName(os rootfs.OSRelease, subject, kubernetesVersion, format string) string {
	return pvename.Name(os.ID, os.VersionID, subject, kubernetesVersion, format)
}

// bakeKVM writes one node's images, reading the base once.
func bakeKVM(ctx context.Context, cfg Config, o KVMOptions, j Job, layers []rootfs.Layer, watch []string, check *baseCheck) ([]Result, error) {
	start := time.Now()
	disk, err := newDisk(cfg.Doc, j, o.DiskSize)
	if err != nil {
		return nil, err
	}
	planner := func(info *rootfs.BaseInfo) (*rootfs.Plan, error) {
		return rootfs.NewPlan(info, append([]rootfs.Layer{rootfs.Sysprep(info), kvmLayer(info, j, disk)}, layers...)...)
	}
	// The names say the base's OS, known once it is read (provisional).
	k8s := cfg.Doc.Cluster.Spec.KubernetesVersion
	stem := func(rel rootfs.OSRelease) string {
		return strings.TrimSuffix(KVMFileName(rel, j.Subject, k8s, ImageRaw), ".raw")
	}
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(cfg.Out, "."+provisional(j.Subject, "kvm")+".work-*")
	if err != nil {
		return nil, err
	}
	defer removeTree(work)
	cfg.Log.Info("baking", "node", j.Node, "roles", j.Roles, "disk", fmt.Sprintf("%d MiB", disk.size/mib))

	// 1. The disk: a sparse raw file of its size with both GPTs, and the
	// merged tree as its ext4 root, written in place at the root
	// partition's offset.
	raw, err := create(cfg.Out, provisional(j.Subject, ImageRaw))
	if err != nil {
		return nil, err
	}
	defer raw.abort()
	s := cfg.Progress.start(provisional(j.Subject, "ext4"), baseSize(cfg.Base))
	stats, info, root, err := makeRootFS(ctx, cfg, planner, watch, disk, raw, &s.Read, &s.Counters)
	s.Done.Store(true)
	if errors.Is(err, ext4.ErrNoSpace) && info != nil {
		if ferr := rootFits(disk, info.Size+layerBytes(layers)); ferr != nil {
			err = ferr // the same words, and a size, whether it did not fit or barely did
		}
	}
	if err != nil {
		return nil, err
	}
	if err := check.of(info); err != nil {
		return nil, err
	}
	if err := rootFits(disk, info.Size+layerBytes(layers)); err != nil {
		return nil, err
	}
	name := stem(info.OS)
	raw.name = name + ".raw"
	logDropped(cfg.Log, name, stats)
	// 2. The ESP: systemd-boot, the kernel and initrd of the root file system.
	open := func(p string) (io.Reader, error) {
		q, err := rootfs.ResolveLinks(p, true, root.Readlink)
		if err != nil {
			return nil, err
		}
		return root.Open(q)
	}
	if err := makeESP(ctx, disk, j, work, cfg.Epoch, open); err != nil {
		return nil, err
	}
	if err := copySparse(ctx, raw.f, disk.espOffset, filepath.Join(work, "esp.img"), espBytes); err != nil {
		return nil, err
	}
	var results []Result
	res := func(p *pending, sum string) Result {
		return Result{Job: j, Path: filepath.Join(cfg.Out, p.name), SHA256: sum, Stats: stats, Duration: time.Since(start)}
	}
	// 3. qcow2 from the raw disk, before the raw one is published or dropped.
	if slices.Contains(o.Formats, ImageQCOW2) {
		q, err := create(cfg.Out, name+".qcow2")
		if err != nil {
			return nil, err
		}
		defer q.abort()
		if err := runTool(ctx, nil, nil, "qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw.f.Name(), q.f.Name()); err != nil {
			return nil, err
		}
		if err := hashFile(ctx, q); err != nil {
			return nil, err
		}
		sum, err := q.publish(artifactMode(stats))
		if err != nil {
			return nil, err
		}
		results = append(results, res(q, sum))
	}
	if slices.Contains(o.Formats, ImageRaw) {
		if err := hashFile(ctx, raw); err != nil {
			return nil, err
		}
		sum, err := raw.publish(artifactMode(stats))
		if err != nil {
			return nil, err
		}
		results = append(results, res(raw, sum))
	}
	for _, r := range results {
		cfg.Log.Info("baked", "artifact", filepath.Base(r.Path), "members", stats.Members, "content", stats.Bytes,
			"disk", fmt.Sprintf("%d MiB", disk.size/mib), "root", "PARTUUID="+disk.rootPartUUID, "took", time.Since(start).Round(time.Millisecond))
	}
	slices.SortFunc(results, func(a, b Result) int { return strings.Compare(a.Path, b.Path) })
	return results, nil
}

// rootFits checks that disk's root file system holds content bytes (the
// base's and the layers') with room for the node to run: a fifth more and
// 64 MiB. The error names the --disk-size that would do.
func rootFits(disk *kvmDisk, content int64) error {
	if need := content + content/5 + 64*mib; need > disk.rootBytes {
		return fmt.Errorf("a root file system of %d MiB is too small for %d MiB of content: give --disk-size %dM or more",
			disk.rootBytes/mib, content/mib, (need+espBytes+2*mib)/mib+1)
	}
	return nil
}
