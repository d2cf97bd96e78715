package bake

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
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
	// ReadyUnit reports on the console that the node's role units are active.
	ReadyUnit = "hardway-ready.service"
	// SystemdBootEFI is systemd-boot's UEFI binary in the base (package systemd-boot).
	SystemdBootEFI = "/usr/lib/systemd/boot/efi/systemd-bootx64.efi"
	// RepartRoot is systemd-repart's configuration that grows the root partition.
	RepartRoot = "/etc/repart.d/50-root.conf"
	fstab      = "/etc/fstab"
	kernelLink = "/vmlinuz"
	initrdLink = "/initrd.img"
)

// espBytes is the size of the EFI system partition: FAT32 (at least 65525
// clusters) with room for two kernels and initrds of a Debian base.
const espBytes = 256 * mib

// fatEpoch is 1980-01-02 00:00 UTC, the earliest FAT date in any time zone.
const fatEpoch = 315619200

// KVMOptions are the settings of a KVM bake.
type KVMOptions struct {
	// DiskSize is the disk's size in bytes, rounded up to MiB; 0 takes the
	// node's spec.nodes[].diskGiB.
	DiskSize int64
	// Formats are the image files to write: raw, qcow2 or both.
	Formats []string
}

// kvmTools are the programs a KVM bake runs, and their Debian packages.
var kvmTools = map[string]string{
	"tar": "tar", "mke2fs": "e2fsprogs", "debugfs": "e2fsprogs", "dumpe2fs": "e2fsprogs",
	"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mmd": "mtools",
}

// KVMJobs selects the KVM images to bake. With role, it is one role image:
// the base, the binaries of every role of the nodes of target kvm that have
// role, and no node: at first boot, cloud-init gives it the identity, files
// and network of whichever of those nodes it boots as, from the node's
// NoCloud seed. Otherwise it is a node image per node of target kvm (all of
// them, or only node), with its node's tree baked in; it boots into its
// role with no seed. A node booted by cloud-init gets its network from the
// seed, which a node image has none of: its systemd-networkd file is added
// to the tree, as the tree of any other node carries it (common.Network).
func KVMJobs(x *gen.Context, node, role string) ([]Job, error) {
	if role != "" && node == "" {
		return roleJob(x, role)
	}
	return selectJobs(x, spec.TargetKVM, "a KVM image", node, role, func(n spec.Node, t *tree.Tree) error {
		if err := debianBased(n); err != nil {
			return err
		}
		if !n.TreeManagesNetwork() {
			common.Network(x, n, t)
		}
		return nil
	})
}

// debianBased refuses a node whose system does not come from a Debian base.
func debianBased(n spec.Node) error {
	if n.BootsByIgnition() {
		return fmt.Errorf("node %s boots by Ignition (Fedora CoreOS, Flatcar): its image comes from that distribution, not from a Debian base", n.Name)
	}
	return nil
}

// roleJob is the role image of role.
func roleJob(x *gen.Context, role string) ([]Job, error) {
	nodes := RoleNodes(x.C, role)
	if len(nodes) == 0 {
		return nil, fmt.Errorf("no node of target kvm booted by cloud-init has role %s", role)
	}
	var roles []string
	for _, n := range nodes {
		for _, r := range n.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	slices.Sort(roles)
	return []Job{{Subject: role, Roles: roles}}, nil
}

// RoleNodes are the nodes a KVM role image of role serves: those of target kvm,
// booted by cloud-init, with role.
func RoleNodes(c *spec.Cluster, role string) []spec.Node {
	var out []spec.Node
	for _, n := range c.Spec.Nodes {
		if n.Target == spec.TargetKVM && n.Has(role) && debianBased(n) == nil {
			out = append(out, n)
		}
	}
	return out
}

// RunKVM bakes KVM images, cfg.Jobs at a time, and records them in
// the output directory's bake-manifest.json. As Run, it checks every pinned
// binary, the whole base and the tools it runs before anything is written;
// each image is written to a temporary file renamed into place once complete,
// and its scratch directory is removed whatever happens.
func RunKVM(ctx context.Context, cfg Config, o KVMOptions, jobs []Job) ([]Result, error) {
	if len(o.Formats) == 0 {
		o.Formats = []string{ImageQCOW2}
	}
	for _, f := range o.Formats {
		if f != ImageRaw && f != ImageQCOW2 {
			return nil, fmt.Errorf("unknown image format %q (have: raw, qcow2)", f)
		}
	}
	// Besides what every artifact needs, the base must boot: a kernel, its
	// initrd and systemd-boot (and cloud-init for a role image).
	roleImage := slices.ContainsFunc(jobs, func(j Job) bool { return j.Tree == nil })
	layers, info, err := prepare(ctx, &cfg, jobs, []string{path.Base(SystemdBootEFI), "systemd-repart"}, func(info *rootfs.BaseInfo) error {
		if err := checkKVMBase(cfg.Base, info, roleImage); err != nil {
			return err
		}
		return checkTools(o)
	})
	if err != nil {
		return nil, err
	}
	return bakeAll(ctx, cfg, KindKVM, jobs, func(ctx context.Context, i int) ([]Result, error) {
		return bakeKVM(ctx, cfg, o, jobs[i], layers[i], info)
	})
}

// checkTools reports every program a KVM bake needs and cannot find.
func checkTools(o KVMOptions) error {
	tools := map[string]string{}
	for k, v := range kvmTools {
		tools[k] = v
	}
	if slices.Contains(o.Formats, ImageQCOW2) {
		tools["qemu-img"] = "qemu-utils"
	}
	if os.Geteuid() != 0 {
		tools["fakeroot"] = "fakeroot" // root extracts owners and device nodes itself
	}
	var missing []string
	for t, pkg := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t, pkg))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("a KVM bake needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// checkKVMBase is checkBase plus what a bootable disk needs from the base
// and, for a role image, cloud-init.
func checkKVMBase(name string, info *rootfs.BaseInfo, roleImage bool) error {
	var missing []string
	var be *BaseError
	if err := checkBase(name, info); errors.As(err, &be) {
		missing = be.Missing
	} else if err != nil {
		return err
	}
	if _, ok := info.Link(kernelLink); !ok {
		missing = append(missing, "no kernel (the /vmlinuz link to /boot/vmlinuz-*): install linux-image-amd64 in the base")
	}
	if _, ok := info.Link(initrdLink); !ok {
		missing = append(missing, "no initrd (the /initrd.img link to /boot/initrd.img-*): install initramfs-tools and linux-image-amd64 in the base")
	}
	if !info.Has(SystemdBootEFI) {
		missing = append(missing, "no UEFI boot loader ("+SystemdBootEFI+"): install systemd-boot in the base")
	}
	if roleImage && !info.Has("/usr/bin/cloud-init") {
		missing = append(missing, "no cloud-init (/usr/bin/cloud-init), which gives a role image its node's identity from the NoCloud seed: install cloud-init in the base")
	}
	if len(missing) > 0 {
		return &BaseError{Base: name, Missing: missing}
	}
	return nil
}

// KVMFileName is the name of a KVM image:
// <os>-<version>-hardway-<node>_<kubernetes version>_amd64.<raw|qcow2>.
func KVMFileName(os rootfs.OSRelease, subject, kubernetesVersion, format string) string {
	return pvename.Name(os.ID, os.VersionID, subject, kubernetesVersion, format)
}

// kvmDisk is the layout of one node's disk.
type kvmDisk struct {
	size          int64 // bytes, a multiple of 1 MiB
	diskGUID      string
	parts         []gptPart // ESP, root
	fsUUID, seed  string    // the root file system's UUID and directory hash seed
	espID         string    // FAT volume ID, 8 hex digits
	rootPartUUID  string    // lower case, for root=PARTUUID= and fstab
	rootBytes     int64
	rootOffset    int64
	espOffset     int64
	cluster, node string
}

// newDisk lays out the disk of j's image: size bytes (rounded up to MiB),
// or the node's diskGiB (for a role image, the largest of its nodes').
func newDisk(doc *spec.Document, j Job, size int64) (*kvmDisk, error) {
	id := doc.Cluster.Metadata.Name + "/" + j.Node
	nodes := RoleNodes(doc.Cluster, j.Subject)
	if j.Node != "" {
		n, _ := doc.Cluster.Node(j.Node)
		nodes = []spec.Node{n}
	} else {
		id = doc.Cluster.Metadata.Name + "/role/" + j.Subject
	}
	if size == 0 {
		for _, n := range nodes {
			size = max(size, int64(n.DiskGiB)<<30)
		}
	}
	if size <= 0 {
		return nil, fmt.Errorf("no disk size for %s: set --disk-size or spec.nodes[].diskGiB", j.Subject)
	}
	size = (size + mib - 1) / mib * mib
	parts, err := gptLayout(id, size, espBytes)
	if err != nil {
		return nil, err
	}
	fsUUID := strings.ToLower(guidFor(id + "/rootfs"))
	h := sha256.Sum256([]byte("hardway esp\x00" + id))
	d := &kvmDisk{
		size: size, diskGUID: guidFor(id + "/disk"), parts: parts,
		fsUUID: fsUUID, seed: strings.ToLower(guidFor(id + "/hash-seed")),
		espID:        fmt.Sprintf("%02X%02X%02X%02X", h[0], h[1], h[2], h[3]),
		rootPartUUID: strings.ToLower(parts[1].GUID),
		rootBytes:    (parts[1].Last - parts[1].First + 1) * sectorSize,
		rootOffset:   parts[1].First * sectorSize,
		espOffset:    parts[0].First * sectorSize,
		cluster:      doc.Cluster.Metadata.Name, node: j.Subject,
	}
	return d, nil
}

// bakeKVM writes one node's images.
func bakeKVM(ctx context.Context, cfg Config, o KVMOptions, j Job, layers []rootfs.Layer, info *rootfs.BaseInfo) ([]Result, error) {
	start := time.Now()
	disk, err := newDisk(cfg.Doc, j, o.DiskSize)
	if err != nil {
		return nil, err
	}
	content := info.Size + layerBytes(layers)
	if need := content + content/5 + 64*mib; need > disk.rootBytes {
		return nil, fmt.Errorf("a root file system of %d MiB is too small for %d MiB of content: give --disk-size %dM or more",
			disk.rootBytes/mib, content/mib, (need+espBytes+2*mib)/mib+1)
	}
	all := append([]rootfs.Layer{rootfs.Sysprep(info), kvmLayer(info, j, disk)}, layers...)
	plan, err := rootfs.NewPlan(info, all...)
	if err != nil {
		return nil, err
	}
	k8s := cfg.Doc.Cluster.Spec.KubernetesVersion
	stem := strings.TrimSuffix(KVMFileName(info.OS, j.Subject, k8s, ImageRaw), ".raw")
	if err := os.MkdirAll(cfg.Out, 0o755); err != nil {
		return nil, err
	}
	work, err := os.MkdirTemp(cfg.Out, "."+stem+".work-*")
	if err != nil {
		return nil, err
	}
	defer removeTree(work)
	cfg.Log.Info("baking", "artifact", stem, "node", j.Node, "roles", j.Roles, "disk", fmt.Sprintf("%d MiB", disk.size/mib))

	// 1. The disk: a sparse raw file of its size with both GPTs.
	raw, err := create(cfg.Out, stem+".raw")
	if err != nil {
		return nil, err
	}
	defer raw.abort()
	if err := partitionTables(raw.f, disk); err != nil {
		return nil, err
	}
	// 2. The merged tree, extracted under fakeroot, becomes the ext4 root,
	// made by mke2fs in place at the root partition's offset.
	s := cfg.Progress.start(stem+".ext4", 0, content)
	stats, err := makeRootFS(ctx, cfg, plan, disk, work, raw.f.Name(), &s.Counters)
	s.Done.Store(true)
	if err != nil {
		return nil, err
	}
	logDropped(cfg.Log, stem, stats)
	// 3. The ESP: systemd-boot, the kernel and initrd of the merged tree.
	if err := makeESP(ctx, disk, j, work); err != nil {
		return nil, err
	}
	// The extracted tree is no longer needed: remove it while the rest runs.
	removed := make(chan struct{})
	go func() { removeTree(filepath.Join(work, "root")); close(removed) }()
	defer func() { <-removed }()
	if err := copySparse(ctx, raw.f, disk.espOffset, filepath.Join(work, "esp.img"), espBytes); err != nil {
		return nil, err
	}
	var results []Result
	res := func(p *pending, sum string) Result {
		return Result{Job: j, Path: filepath.Join(cfg.Out, p.name), SHA256: sum, Stats: stats, Duration: time.Since(start)}
	}
	// 4. qcow2 from the raw disk, before the raw one is published or dropped.
	if slices.Contains(o.Formats, ImageQCOW2) {
		q, err := create(cfg.Out, stem+".qcow2")
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

// makeRootFS streams the merged tree into work/root and builds the root
// file system from it with mke2fs -d, in place in diskFile at the root
// partition's offset, both as root or, for another user, in one fakeroot
// session (the same bytes either way: TestKVMImage bakes as both), so that owners and device
// nodes (/dev is kept: the kernel mounts devtmpfs over it) land in the file
// system as the stream has them; xattrs and ACLs are set by setXattrs. Debian 12's mke2fs (1.47.0) takes only a
// directory for -d (a tarball needs 1.47.1 built with libarchive), hence
// the extraction. tar restores directory times at the very end
// (--delay-directory-restore: the layers' files follow the base's
// directories in the stream), mke2fs gets a UUID and hash seed derived from
// the node and E2FSPROGS_FAKE_TIME, and fixTimes levels the times the
// extraction leaves, so that the same inputs give the same image on one
// build machine (mke2fs -d walks directories in readdir order, which may
// differ between file systems).
func makeRootFS(ctx context.Context, cfg Config, plan *rootfs.Plan, disk *kvmDisk, work, diskFile string, c *rootfs.Counters) (*rootfs.Stats, error) {
	root := filepath.Join(work, "root")
	// libext2fs's unix I/O manager takes the partition's offset after a "?".
	img := diskFile + "?offset=" + strconv.FormatInt(disk.rootOffset, 10)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	f, _, err := openBase(cfg.Base)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// E2FSPROGS_FAKE_TIME is mke2fs's and debugfs's clock; 0 would mean unset.
	epoch := max(emit.Epoch().Unix(), 1)
	script := `set -eu
tar -x -p --numeric-owner --same-owner --delay-directory-restore --no-xattrs --no-acls -f - -C "$1"
mke2fs -q -F -t ext4 -L root -b 4096 -U "$4" -E "offset=$6,hash_seed=$5,lazy_itable_init=1,lazy_journal_init=1,nodiscard" -d "$1" "$2" "$3"k
`
	pr, pw := io.Pipe()
	var stats *rootfs.Stats
	merged := make(chan error, 1)
	// fakeroot (1.31) fakes xattrs in a way mke2fs -d (1.47.0) fails on
	// ("File not found by ext2_lookup"): tar extracts without them, and
	// debugfs sets them afterwards from the stream's records, as root or not.
	xr, xw := io.Pipe()
	xattrs := make(chan []fileXattr, 1)
	go func() { xattrs <- collectXattrs(xr) }()
	go func() {
		st, err := rootfs.Merge(ctx, pw, f, plan, rootfs.Options{
			Epoch: emit.Epoch(), Clamp: os.Getenv("SOURCE_DATE_EPOCH") != "", Counters: c, Log: cfg.Log,
		})
		stats = st
		pw.CloseWithError(err)
		merged <- err
	}()
	env := []string{"E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch, 10), "LC_ALL=C"}
	argv := []string{"sh", "-c", script, "sh"}
	if os.Geteuid() != 0 {
		argv = append([]string{"fakeroot", "--"}, argv...)
	}
	err = runTool(ctx, io.TeeReader(pr, xw), env, argv[0], append(argv[1:],
		root, diskFile, strconv.FormatInt(disk.rootBytes/1024, 10), disk.fsUUID, disk.seed, strconv.FormatInt(disk.rootOffset, 10))...)
	pr.CloseWithError(errors.New("extraction ended"))
	merr := <-merged
	xw.Close()
	found := <-xattrs
	if ctx.Err() != nil {
		return nil, ctx.Err() // not the merge's "extraction ended" it caused
	}
	if merr != nil {
		return nil, merr
	}
	if err != nil {
		return nil, err
	}
	if err := setXattrs(ctx, img, work, found, epoch); err != nil {
		return nil, err
	}
	if err := fixTimes(ctx, img, epoch); err != nil {
		return nil, err
	}
	return stats, nil
}

// fixTimes makes the file system reproducible: mke2fs -d copies each
// file's access and change times from the extracted tree (dated at
// extraction), so debugfs sets them, and creation times, to epoch on every
// inode in use (mtimes are the stream's).
func fixTimes(ctx context.Context, img string, epoch int64) error {
	used, err := usedInodes(ctx, img)
	if err != nil {
		return err
	}
	t := time.Unix(epoch, 0).UTC().Format("20060102150405")
	var cmds bytes.Buffer
	for _, i := range used {
		for _, field := range []string{"atime", "ctime", "crtime"} {
			fmt.Fprintf(&cmds, "sif <%d> %s %s\n", i, field, t)
		}
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", img)
	cmd.Stdin = &cmds
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(epoch, 10))
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("debugfs -w %s: %w: %s", img, err, lastLines(b, 5))
	}
	return nil
}

// fileXattr is one extended attribute of the merged stream.
type fileXattr struct {
	path, name, value string
}

// collectXattrs reads a tar stream to its end and returns its members'
// extended attributes (SCHILY.xattr.* records).
func collectXattrs(r io.Reader) []fileXattr {
	defer io.Copy(io.Discard, r)
	var out []fileXattr
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				out = append(out, fileXattr{path: path.Clean("/" + h.Name), name: name, value: v})
			}
		}
	}
}

// setXattrs sets the stream's extended attributes on the image's files
// with debugfs ea_set (POSIX ACLs included: libext2fs stores
// system.posix_acl_* in ext4's format).
func setXattrs(ctx context.Context, img, work string, xs []fileXattr, epoch int64) error {
	if len(xs) == 0 {
		return nil
	}
	slices.SortFunc(xs, func(a, b fileXattr) int { return strings.Compare(a.path+"\x00"+a.name, b.path+"\x00"+b.name) })
	var cmds bytes.Buffer
	for i, x := range xs {
		if strings.ContainsAny(x.path+x.name, "\"\n\\") {
			return fmt.Errorf("xattr %s of %s: the name cannot be passed to debugfs", x.name, x.path)
		}
		v := filepath.Join(work, fmt.Sprintf("xattr-%d", i))
		if err := os.WriteFile(v, []byte(x.value), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(&cmds, "ea_set -f \"%s\" \"%s\" \"%s\"\n", v, x.path, x.name)
	}
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", img)
	cmd.Stdin = &cmds
	cmd.Env = append(os.Environ(), "E2FSPROGS_FAKE_TIME="+strconv.FormatInt(epoch, 10))
	b, err := cmd.CombinedOutput()
	if err == nil && bytes.Contains(b, []byte("ea_set: ")) {
		err = errors.New("ea_set failed")
	}
	if err != nil {
		return fmt.Errorf("debugfs ea_set %s: %w: %s", img, err, lastLines(b, 5))
	}
	return nil
}

// usedInodes lists the inodes in use of an ext4 image, but the reserved
// ones other than the root directory's: the complement of the free inode
// ranges dumpe2fs prints per block group.
func usedInodes(ctx context.Context, img string) ([]int64, error) {
	out, err := exec.CommandContext(ctx, "dumpe2fs", img).Output()
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs %s: %w", img, err)
	}
	var count int64
	free := map[int64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "Inode count:"); ok {
			count, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			continue
		}
		v, ok := strings.CutPrefix(l, "  Free inodes: ")
		if !ok {
			continue
		}
		for _, r := range strings.Split(v, ",") {
			lo, hi, found := strings.Cut(strings.TrimSpace(r), "-")
			a, err := strconv.ParseInt(lo, 10, 64)
			if err != nil {
				continue
			}
			b := a
			if found {
				if b, err = strconv.ParseInt(hi, 10, 64); err != nil {
					continue
				}
			}
			for i := a; i <= b; i++ {
				free[i] = true
			}
		}
	}
	if count == 0 {
		return nil, fmt.Errorf("dumpe2fs %s: no inode count", img)
	}
	used := []int64{2}
	for i := int64(11); i <= count; i++ {
		if !free[i] {
			used = append(used, i)
		}
	}
	return used, nil
}

// makeESP writes work/esp.img: a FAT32 file system (mkfs.vfat, then mtools,
// no mount) holding systemd-boot as the removable-media boot loader
// EFI/BOOT/BOOTX64.EFI, the kernel and initrd of the merged tree, and a
// loader entry that boots them with the root partition's PARTUUID.
func makeESP(ctx context.Context, disk *kvmDisk, j Job, work string) error {
	root := filepath.Join(work, "root")
	kernel, err := inRoot(root, kernelLink)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	initrd, err := inRoot(root, initrdLink)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	loader, err := inRoot(root, SystemdBootEFI)
	if err != nil {
		return fmt.Errorf("systemd-boot: %w", err)
	}
	esp := filepath.Join(work, "esp.img")
	if err := os.WriteFile(esp, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(esp, espBytes); err != nil {
		return err
	}
	files := map[string][]byte{
		"loader.conf": []byte("timeout 0\ndefault hardway.conf\neditor no\n"),
		"hardway.conf": fmt.Appendf(nil, "title hardway %s (%s)\nlinux /vmlinuz\ninitrd /initrd.img\noptions %s\n",
			j.Subject, strings.Join(j.Roles, ","), kernelCmdline(disk)),
	}
	fatTime := time.Unix(max(emit.Epoch().Unix(), fatEpoch), 0)
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(work, n), data, 0o644); err != nil {
			return err
		}
		// mcopy -m keeps the file's mtime, which must not be now.
		if err := os.Chtimes(filepath.Join(work, n), fatTime, fatTime); err != nil {
			return err
		}
	}
	// mkfs.vfat --invariant fixes the boot sector's times (the -i after it
	// sets the volume ID); mtools dates the directories it makes
	// SOURCE_DATE_EPOCH, at least 1980-01-02 (FAT's epoch), in UTC.
	env := []string{"MTOOLS_SKIP_CHECK=1", "TZ=UTC", "SOURCE_DATE_EPOCH=" + strconv.FormatInt(fatTime.Unix(), 10)}
	steps := [][]string{
		{"mkfs.vfat", "-F", "32", "-n", "ESP", "--invariant", "-i", disk.espID, esp},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"},
		{"mcopy", "-m", "-i", esp, loader, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-m", "-i", esp, kernel, "::/vmlinuz"},
		{"mcopy", "-m", "-i", esp, initrd, "::/initrd.img"},
		{"mcopy", "-m", "-i", esp, filepath.Join(work, "loader.conf"), "::/loader/loader.conf"},
		{"mcopy", "-m", "-i", esp, filepath.Join(work, "hardway.conf"), "::/loader/entries/hardway.conf"},
	}
	for _, s := range steps {
		if err := runTool(ctx, nil, env, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// kernelCmdline is the loader entry's options: the root partition by its
// PARTUUID (the GPT entry's GUID, known at bake time, whatever the disk's
// device name: virtio, SCSI or SATA), mounted read-write (systemd does not
// remount it: fstab has it rw too), the kernel and systemd's console on the
// first serial port (Proxmox serial0, qemu -serial; `qm terminal`), and
// the kernel's eth0 naming, as in the LXC nodes (the network file matches
// the NIC by MAC anyway, so the name is for operators).
func kernelCmdline(d *kvmDisk) string {
	return "root=PARTUUID=" + d.rootPartUUID + " rw console=ttyS0 net.ifnames=0"
}

// inRoot returns the host path of p inside the extracted tree root,
// following its symlinks inside root.
func inRoot(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("%s is not in the image", p)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		t, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(t, "/") {
			cur = "/"
		}
		rest = append(strings.Split(t, "/"), rest...)
	}
	host := filepath.Join(root, cur)
	st, err := os.Stat(host)
	if err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s (%s) is not a regular file in the image", p, cur)
	}
	return host, nil
}

// partitionTables sizes the fresh file f to the disk and writes the
// protective MBR and primary GPT at its start, the backup GPT at its end;
// the rest stays a hole until the partitions are written.
func partitionTables(f *os.File, d *kvmDisk) error {
	if err := f.Truncate(d.size); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	primary, backup, err := gptTables(d.diskGUID, d.size, d.parts)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(primary, 0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(backup, d.size-int64(len(backup))); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// copySparse copies the file src (at most max bytes) into f at off: only
// its data extents (SEEK_DATA, SEEK_HOLE), 64 KiB at a time, skipping
// blocks of zeros (f is a fresh sparse file).
func copySparse(ctx context.Context, f *os.File, off int64, src string, max int64) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := in.Stat()
	if err != nil {
		return err
	}
	if st.Size() > max {
		return fmt.Errorf("%s is %d bytes, its partition %d", src, st.Size(), max)
	}
	buf := make([]byte, 64<<10)
	for pos := int64(0); pos < st.Size(); {
		start, end := pos, st.Size()
		if d, err := in.Seek(pos, seekData); err == nil {
			start = d
			if h, err := in.Seek(d, seekHole); err == nil {
				end = h
			}
		} else if errors.Is(err, syscall.ENXIO) {
			return nil // nothing but a hole from pos on
		}
		for p := start; p < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, rerr := in.ReadAt(buf[:min(int64(len(buf)), end-p)], p)
			if n > 0 && !allZero(buf[:n]) {
				if _, err := f.WriteAt(buf[:n], off+p); err != nil {
					return fmt.Errorf("write %s: %w", f.Name(), err)
				}
			}
			p += int64(n)
			if rerr != nil && rerr != io.EOF {
				return rerr
			}
			if n == 0 {
				break
			}
		}
		pos = end
	}
	return nil
}

// lseek's whence values for data extents and holes (Linux, since 3.1).
const (
	seekData = 3
	seekHole = 4
)

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// hashFile feeds p's whole file into its checksum (the file was written by
// offsets or by another program, not through p.Write).
func hashFile(ctx context.Context, p *pending) error {
	f, err := os.Open(p.f.Name())
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		n, err := f.Read(buf)
		p.sum.Write(buf[:n])
		p.n += int64(n)
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// runTool runs a program, its output kept for the error; ctx cancels it with
// SIGINT to its process group (fakeroot stops its faked daemon on INT), then
// SIGKILL after 10 seconds.
func runTool(ctx context.Context, stdin io.Reader, env []string, name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = stdin
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGINT) }
	cmd.WaitDelay = 10 * time.Second
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return fmt.Errorf("%s: %w: %s", name, err, lastLines(out.Bytes(), 10))
	}
	return nil
}

// lastLines is the end of a program's output, for an error.
func lastLines(b []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// removeTree removes a scratch directory whose extracted tree may hold
// directories without write permission for the build user.
func removeTree(dir string) {
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	_ = os.RemoveAll(dir)
}
