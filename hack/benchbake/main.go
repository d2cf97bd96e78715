// Command benchbake measures `hardway bake` of the seed's worker
// (examples/seed-lxc.yaml, worker1, binaries.mode upstream with the real
// kubelet, kube-proxy, containerd, runc and CNI plugins) against, on the same
// machine and the same content, what a hand-made artifact costs:
//
//   - lxc: the container template, against `tar -c | zstd -T0 -3` of the
//     unpacked template;
//   - kvm: the same worker turned into a node of target kvm, baked as a qcow2
//     disk image from the KVM base, against `mke2fs -d` of the image's root
//     file system (dumped from the image with debugfs) into a raw disk of the
//     same size at the same offset, then `qemu-img convert -O qcow2`.
//
// It prints throughput (MB/s of uncompressed content), wall time, CPU time
// and peak resident memory of each. `make bench-bake` runs it.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hardway-dev/hardway/bake"
)

// workerBins are the seed worker's binaries and where to find them: the
// pinned Kubernetes builds in -bin, the rest from Debian's containerd, runc
// and containernetworking-plugins packages (stand-ins of the same size class
// as the upstream releases).
var workerBins = map[string]string{
	"kubelet":                 "",
	"kube-proxy":              "",
	"containerd":              "/usr/bin/containerd",
	"containerd-shim-runc-v2": "/usr/bin/containerd-shim-runc-v2",
	"ctr":                     "/usr/bin/ctr",
	"runc":                    "/usr/sbin/runc",
	"bridge":                  "/usr/lib/cni/bridge",
	"host-local":              "/usr/lib/cni/host-local",
	"portmap":                 "/usr/lib/cni/portmap",
	"loopback":                "/usr/lib/cni/loopback",
}

func main() {
	hardway := flag.String("hardway", "bin/hardway", "hardway binary")
	base := flag.String("base", "", "lxc: base rootfs tarball (default: hack/base.sh path)")
	kvmBase := flag.String("kvm-base", "", "kvm: base rootfs tarball with a kernel, initrd and systemd-boot (default: hack/base.sh path --kvm)")
	bin := flag.String("bin", os.Getenv("HARDWAY_BIN_DIR"), "directory holding kubelet and kube-proxy (default: hack/tools.sh path k8s)")
	specFile := flag.String("spec", "examples/seed-lxc.yaml", "cluster spec")
	node := flag.String("node", "worker1", "node to bake (kvm: turned into a node of target kvm)")
	diskSize := flag.String("disk-size", "4G", "kvm: disk size (hardway bake --disk-size)")
	format := flag.String("format", "both", "what to measure: lxc, kvm or both")
	images := flag.String("images", "bin/images.list", "a file listing the image archives the spec names, one path a line (make images-list)")
	runs := flag.Int("runs", 3, "runs of each tool; the median is shown")
	flag.Parse()
	doLXC, doKVM := *format == "lxc" || *format == "both", *format == "kvm" || *format == "both"
	if !doLXC && !doKVM {
		fail("-format %q: want lxc, kvm or both", *format)
	}
	if doLXC && *base == "" {
		*base = strings.TrimSpace(output("hack/base.sh", "path"))
	}
	if doKVM && *kvmBase == "" {
		*kvmBase = strings.TrimSpace(output("hack/base.sh", "path", "--kvm"))
	}
	if *bin == "" {
		*bin = strings.TrimSpace(output("hack/tools.sh", "path", "k8s"))
	}
	dir, err := os.MkdirTemp("", "hardway-benchbake")
	check(err)
	defer os.RemoveAll(dir)
	spec := pinnedSpec(*specFile, *bin, *images, dir)

	fmt.Printf("load average at start: %s\n", loadAvg())
	if doLXC {
		benchLXC(*hardway, spec, *base, *node, dir, *runs)
	}
	if doKVM {
		if doLXC {
			fmt.Println()
		}
		benchKVM(*hardway, kvmSpec(spec, *node), *kvmBase, *node, *diskSize, dir, *runs)
	}
	fmt.Printf("\nload average at end: %s\n", loadAvg())
}

// benchLXC bakes node's container template runs times and compares it
// with tar -c | zstd -T0 -3 of the unpacked template.
func benchLXC(hardway, spec, base, node, dir string, runs int) {
	var hw []result
	var template string
	for i := 0; i < runs; i++ {
		out := filepath.Join(dir, fmt.Sprint("bake", i))
		r := run(exec.Command(hardway, "bake", "-f", spec, "--base", base, "--node", node, "--artifact-dir", out, "--dir", filepath.Join(dir, "state")))
		hw = append(hw, r)
		files, _ := filepath.Glob(filepath.Join(out, "*.tar.zst"))
		if len(files) == 1 {
			template = files[0]
		}
	}
	check(firstErr(hw))
	tree := filepath.Join(dir, "tree")
	check(os.Mkdir(tree, 0o755))
	check(exec.Command("tar", "-xpf", template, "--zstd", "--numeric-owner", "--xattrs", "--xattrs-include=*", "-C", tree).Run())
	var base3 []result
	for i := 0; i < runs; i++ {
		base3 = append(base3, tarZstd(tree, filepath.Join(dir, fmt.Sprint("baseline", i, ".tar.zst"))))
	}
	check(firstErr(base3))

	h, b := median(hw), median(base3)
	content := h.content
	fmt.Printf("bake of %s from %s (%.0f MB base file, %d run(s), median; %d CPUs)\n\n", node, filepath.Base(base), mb(size(base)), runs, numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tcontent MB\twall s\tMB/s\tCPU s\tpeak RSS MiB\toutput MB\t")
	fmt.Fprintf(tw, "hardway bake (whole command)\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t\n", mb(content), h.wall.Seconds(), mb(content)/h.wall.Seconds(), h.cpu.Seconds(), float64(h.rss)/1024, mb(size(template)))
	fmt.Fprintf(tw, "  of which streaming + zstd\t%.0f\t%.2f\t%.0f\t\t\t\t\n", mb(content), h.took.Seconds(), mb(content)/h.took.Seconds())
	fmt.Fprintf(tw, "tar -c | zstd -T0 -3\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t\n", mb(content), b.wall.Seconds(), mb(content)/b.wall.Seconds(), b.cpu.Seconds(), float64(b.rss)/1024, mb(b.out))
	tw.Flush()
	fmt.Printf("\ntarget: hardway at least 0.8x the throughput of tar | zstd -T0 -3; measured %.2fx (the whole command)\n",
		b.wall.Seconds()/h.wall.Seconds())
	fmt.Println("\nhardway reads the zstd base once (checking it while it bakes), hashes the pinned binaries")
	fmt.Println("once, and compresses with klauspost/compress (pure Go) as independent 8 MiB frames on every")
	fmt.Println("processor; the whole command also runs generate. tar reads the unpacked template from the page")
	fmt.Println("cache and zstd is the C implementation. CPU and peak RSS of the baseline are tar's plus zstd's.")
}

// benchKVM bakes node's qcow2 disk image runs times and compares it with
// mke2fs -d of the image's own root file system content into a raw disk of
// the same size, at the root partition's offset, then qemu-img convert to
// qcow2.
func benchKVM(hardway, spec, base, node, diskSize, dir string, runs int) {
	var hw []result
	var image string
	for i := 0; i < runs; i++ {
		if image != "" {
			check(os.RemoveAll(filepath.Dir(image))) // one image on disk at a time
		}
		out := filepath.Join(dir, fmt.Sprint("kvm", i))
		r := run(exec.Command(hardway, "bake", "-f", spec, "--base", base, "--node", node, "--format", "kvm",
			"--disk-size", diskSize, "--image-format", "qcow2", "--artifact-dir", out, "--dir", filepath.Join(dir, "state-kvm")))
		files, _ := filepath.Glob(filepath.Join(out, "*.qcow2"))
		if len(files) == 1 {
			image = files[0]
			r.out = size(image)
		}
		hw = append(hw, r)
	}
	check(firstErr(hw))

	// The baseline's input: the root file system of the image as a tree.
	raw := filepath.Join(dir, "disk.raw")
	check(command("qemu-img", "convert", "-f", "qcow2", "-O", "raw", image, raw))
	disk := size(raw)
	rootOff, rootBytes := rootPartition(raw)
	tree := filepath.Join(dir, "kvm-tree")
	check(os.Mkdir(tree, 0o755))
	dump := exec.Command("debugfs", "-R", "rdump / "+tree, fmt.Sprintf("%s?offset=%d", raw, rootOff))
	msg, err := dump.CombinedOutput()
	if err == nil && bytes.Contains(msg, []byte("rdump:")) {
		err = fmt.Errorf("%s", msg)
	}
	check(err)
	check(os.Remove(raw))
	content := treeBytes(tree)

	var base3 []result
	var fsync []time.Duration
	for i := 0; i < runs; i++ {
		r, sync := mke2fsQemuImg(tree, filepath.Join(dir, "baseline"), disk, rootOff, rootBytes)
		base3 = append(base3, r)
		fsync = append(fsync, sync)
	}
	check(firstErr(base3))

	h, b := median(hw), median(base3)
	sort.Slice(fsync, func(i, j int) bool { return fsync[i] < fsync[j] })
	synced := b.wall + fsync[len(fsync)/2]
	fmt.Printf("KVM bake of %s (target kvm) from %s (%.0f MB base file), %d MiB disk, %d MiB root, qcow2 (%d run(s), median; %d CPUs)\n\n",
		node, filepath.Base(base), mb(size(base)), disk>>20, rootBytes>>20, runs, numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tcontent MB\twall s\tMB/s\tCPU s\tpeak RSS MiB\toutput MB\tvs baseline\t")
	fmt.Fprintf(tw, "hardway bake --format kvm (whole command)\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t%.1fx\t\n", mb(h.content), h.wall.Seconds(), mb(h.content)/h.wall.Seconds(), h.cpu.Seconds(), float64(h.rss)/1024, mb(h.out), h.wall.Seconds()/b.wall.Seconds())
	fmt.Fprintf(tw, "  of which the image (after generate)\t%.0f\t%.2f\t%.0f\t\t\t\t%.1fx\t\n", mb(h.content), h.took.Seconds(), mb(h.content)/h.took.Seconds(), h.took.Seconds()/b.wall.Seconds())
	fmt.Fprintf(tw, "mke2fs -d + qemu-img convert -O qcow2\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t1.0x\t\n", mb(content), b.wall.Seconds(), mb(content)/b.wall.Seconds(), b.cpu.Seconds(), float64(b.rss)/1024, mb(b.out))
	fmt.Fprintf(tw, "  + fsync of the qcow2\t%.0f\t%.2f\t%.0f\t\t\t\t\t\n", mb(content), synced.Seconds(), mb(content)/synced.Seconds())
	tw.Flush()
	fmt.Printf("\ntarget: hardway within 1.5x of mke2fs + qemu-img; measured %.1fx (%.1fx against the baseline with fsync)\n",
		h.wall.Seconds()/b.wall.Seconds(), h.wall.Seconds()/synced.Seconds())
	fmt.Println("\nhardway runs generate, reads the zstd base once (checking it as it goes) and writes the merged")
	fmt.Println("stream as the ext4 root in the raw disk at the root partition's offset (its own ext4 writer: no")
	fmt.Println("extracted tree), makes the ESP, converts the disk with qemu-img, then hashes and fsyncs the")
	fmt.Println("qcow2. The baseline runs mke2fs -d as root on the tree debugfs dumped from")
	fmt.Println("the image (page cache warm; no device nodes, xattrs or ESP) straight into a raw disk at the root")
	fmt.Println("partition's offset, then qemu-img convert. Peak RSS is the largest single process (wait4), CPU")
	fmt.Println("user + system of the process and its waited-for children.")
}

type result struct {
	wall, took time.Duration
	cpu        time.Duration // user + system
	rss        int64         // KiB
	content    int64         // uncompressed bytes
	out        int64         // output bytes
	err        error
}

// run runs a hardway bake and reads its "baked" log line.
func run(cmd *exec.Cmd) result {
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(start), err: err}
	if err != nil {
		r.err = fmt.Errorf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, stderr.String())
		return r
	}
	r.rss = cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	m := regexp.MustCompile(`msg=baked .* content=(\d+) .* took=(\S+)`).FindStringSubmatch(stderr.String())
	if m == nil {
		r.err = fmt.Errorf("no baked line in:\n%s", stderr.String())
		return r
	}
	r.content, _ = strconv.ParseInt(m[1], 10, 64)
	r.took, _ = time.ParseDuration(m[2])
	return r
}

// tarZstd runs `tar -C dir -cf - . | zstd -T0 -3 -o out` and sums the peak
// RSS of both.
func tarZstd(dir, out string) result {
	tar := exec.Command("tar", "--sort=name", "--numeric-owner", "--xattrs", "-C", dir, "-cf", "-", ".")
	zstd := exec.Command("zstd", "-q", "-T0", "-3", "-f", "-o", out)
	pipe, err := tar.StdoutPipe()
	if err != nil {
		return result{err: err}
	}
	counter := &countReader{r: pipe}
	zstd.Stdin = counter
	start := time.Now()
	if err := tar.Start(); err != nil {
		return result{err: err}
	}
	if err := zstd.Start(); err != nil {
		return result{err: err}
	}
	errZ := zstd.Wait()
	errT := tar.Wait()
	r := result{wall: time.Since(start), content: counter.n}
	if errT != nil || errZ != nil {
		r.err = fmt.Errorf("tar | zstd: %v %v", errT, errZ)
		return r
	}
	r.rss = tar.ProcessState.SysUsage().(*syscall.Rusage).Maxrss + zstd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss
	for _, p := range []*os.ProcessState{tar.ProcessState, zstd.ProcessState} {
		r.cpu += p.UserTime() + p.SystemTime()
	}
	r.out = size(out)
	return r
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// mke2fsQemuImg runs, on a fresh raw file of disk bytes, `mke2fs -d tree`
// with hardway's options at the root partition's offset, then `qemu-img
// convert -O qcow2`. It returns both timed together (peak RSS is the larger
// of the two: they run one after the other) and, apart, an fsync of the qcow2.
func mke2fsQemuImg(tree, dir string, disk, rootOff, rootBytes int64) (result, time.Duration) {
	check(os.MkdirAll(dir, 0o755))
	defer os.RemoveAll(dir)
	raw, qcow2 := filepath.Join(dir, "disk.raw"), filepath.Join(dir, "disk.qcow2")
	f, err := os.Create(raw)
	check(err)
	check(f.Truncate(disk))
	check(f.Close())
	cmds := []*exec.Cmd{
		exec.Command("mke2fs", "-q", "-F", "-t", "ext4", "-L", "root", "-b", "4096",
			"-E", fmt.Sprintf("offset=%d,lazy_itable_init=1,lazy_journal_init=1,nodiscard", rootOff),
			"-d", tree, raw, fmt.Sprintf("%dk", rootBytes/1024)),
		exec.Command("qemu-img", "convert", "-f", "raw", "-O", "qcow2", raw, qcow2),
	}
	var r result
	for _, c := range cmds {
		start := time.Now()
		msg, err := c.CombinedOutput()
		r.wall += time.Since(start)
		if err != nil {
			r.err = fmt.Errorf("%s: %v\n%s", strings.Join(c.Args, " "), err, msg)
			return r, 0
		}
		r.cpu += c.ProcessState.UserTime() + c.ProcessState.SystemTime()
		r.rss = max(r.rss, c.ProcessState.SysUsage().(*syscall.Rusage).Maxrss)
	}
	r.out = size(qcow2)
	q, err := os.OpenFile(qcow2, os.O_RDWR, 0)
	check(err)
	defer q.Close()
	start := time.Now()
	check(q.Sync())
	return r, time.Since(start)
}

// rootPartition reads the GPT of a raw disk (512-byte sectors) and returns
// the offset and size of its largest partition: the root file system of a
// hardway KVM image (the other one is the ESP).
func rootPartition(raw string) (off, n int64) {
	f, err := os.Open(raw)
	check(err)
	defer f.Close()
	hdr := make([]byte, 92)
	_, err = f.ReadAt(hdr, 512)
	check(err)
	if string(hdr[:8]) != "EFI PART" {
		fail("%s: no GPT header", raw)
	}
	le := binary.LittleEndian
	count, esz := int64(le.Uint32(hdr[80:])), int64(le.Uint32(hdr[84:]))
	if esz < 128 || count*esz > 1<<20 {
		fail("%s: bad GPT header (%d entries of %d bytes)", raw, count, esz)
	}
	entries := make([]byte, count*esz)
	_, err = f.ReadAt(entries, int64(le.Uint64(hdr[72:]))*512)
	check(err)
	for e := entries; len(e) >= 128; e = e[esz:] {
		first, last := int64(le.Uint64(e[32:])), int64(le.Uint64(e[40:]))
		if first != 0 && (last-first+1)*512 > n {
			off, n = first*512, (last-first+1)*512
		}
	}
	if n == 0 {
		fail("%s: no partition", raw)
	}
	return off, n
}

// treeBytes is the size of the regular files under dir.
func treeBytes(dir string) int64 {
	var n int64
	check(filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	}))
	return n
}

// kvmSpec writes a copy of the pinned spec in which node is of target kvm.
func kvmSpec(spec, node string) string {
	data, err := os.ReadFile(spec)
	check(err)
	lines := strings.Split(string(data), "\n")
	changed := false
	for i, l := range lines {
		if strings.Contains(l, "{name: "+node+",") && strings.Contains(l, "target: lxc") {
			l = strings.Replace(l, "target: lxc", "target: kvm", 1)
			lines[i] = regexp.MustCompile(` swapMiB: \d+,`).ReplaceAllString(l, "") // a container's only
			changed = true
		}
	}
	if !changed {
		fail("%s has no `{name: %s, ... target: lxc` line to turn into target kvm", spec, node)
	}
	out := strings.TrimSuffix(spec, ".yaml") + "-kvm.yaml"
	check(os.WriteFile(out, []byte(strings.Join(lines, "\n")), 0o644))
	return out
}

// pinnedSpec writes a copy of the spec whose binaries.dir holds links to
// the worker's binaries and whose binaries.sha256 pins them, next to an
// images/ directory holding links to the archives listed in the file images.
func pinnedSpec(specFile, bin, images, dir string) string {
	archives, err := bake.ArchiveList(images)
	check(err)
	check(os.Mkdir(filepath.Join(dir, "images"), 0o755))
	for _, a := range archives {
		check(os.Symlink(a, filepath.Join(dir, "images", filepath.Base(a))))
	}
	data, err := os.ReadFile(specFile)
	check(err)
	art := filepath.Join(dir, "artifacts")
	check(os.Mkdir(art, 0o755))
	names := make([]string, 0, len(workerBins))
	for n := range workerBins {
		names = append(names, n)
	}
	sort.Strings(names)
	var pins strings.Builder
	pins.WriteString("    dir: artifacts\n    sha256:\n")
	for _, n := range names {
		src := workerBins[n]
		if src == "" {
			src = filepath.Join(bin, n)
		}
		if _, err := os.Stat(src); err != nil {
			fail("%s: %v (kubelet and kube-proxy: make tools; the others: apt-get install containerd runc containernetworking-plugins)", src, err)
		}
		check(os.Symlink(src, filepath.Join(art, n)))
		fmt.Fprintf(&pins, "      %s: %s\n", n, sum(src))
	}
	text := strings.Replace(string(data), "    dir: artifacts\n", pins.String(), 1)
	if text == string(data) {
		fail("%s has no `    dir: artifacts` line to pin binaries after", specFile)
	}
	out := filepath.Join(dir, "cluster.yaml")
	check(os.WriteFile(out, []byte(text), 0o644))
	return out
}

func sum(p string) string {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	h := sha256.New()
	_, err = io.Copy(h, f)
	check(err)
	return hex.EncodeToString(h.Sum(nil))
}

func median(rs []result) result {
	sort.Slice(rs, func(i, j int) bool { return rs[i].wall < rs[j].wall })
	return rs[len(rs)/2]
}

func firstErr(rs []result) error {
	for _, r := range rs {
		if r.err != nil {
			return r.err
		}
	}
	return nil
}

func size(p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return st.Size()
}

// loadAvg is the 1, 5 and 15 minute load average.
func loadAvg() string {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func command(name string, args ...string) error {
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return nil
}

func numCPU() int {
	out, _ := exec.Command("nproc").Output()
	n, _ := strconv.Atoi(strings.TrimSpace(string(out)))
	return n
}

func mb(n int64) float64 { return float64(n) / 1e6 }

func output(name string, args ...string) string {
	out, err := exec.Command(name, args...).Output()
	if err != nil {
		fail("%s %s: %v (build it first)", name, strings.Join(args, " "), err)
	}
	return string(out)
}

func check(err error) {
	if err != nil {
		fail("%v", err)
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "benchbake: "+format+"\n", args...)
	os.Exit(1)
}
