// Command benchbake measures `hardway bake` of the seed's LXC worker
// (examples/seed-lxc.yaml, worker1, binaries.mode upstream with the real
// kubelet, kube-proxy, containerd, runc and CNI plugins) against, on the same
// machine and the same content, `tar -c | zstd -T0 -3` of the unpacked
// template. It prints throughput (MB/s of uncompressed content), wall time
// and peak resident memory of each. `make bench-bake` runs it.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
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
	base := flag.String("base", "", "base rootfs tarball (default: hack/base.sh path)")
	bin := flag.String("bin", os.Getenv("HARDWAY_BIN_DIR"), "directory holding kubelet and kube-proxy (default: hack/tools.sh path k8s)")
	specFile := flag.String("spec", "examples/seed-lxc.yaml", "cluster spec")
	node := flag.String("node", "worker1", "node to bake")
	runs := flag.Int("runs", 3, "runs of each tool; the median is shown")
	flag.Parse()
	if *base == "" {
		*base = strings.TrimSpace(output("hack/base.sh", "path"))
	}
	if *bin == "" {
		*bin = strings.TrimSpace(output("hack/tools.sh", "path", "k8s"))
	}
	dir, err := os.MkdirTemp("", "hardway-benchbake")
	check(err)
	defer os.RemoveAll(dir)
	spec := pinnedSpec(*specFile, *bin, dir)

	var hw []result
	var template string
	for i := 0; i < *runs; i++ {
		out := filepath.Join(dir, fmt.Sprint("bake", i))
		r := run(exec.Command(*hardway, "bake", "-f", spec, "--base", *base, "--node", *node, "-o", out, "--dir", filepath.Join(dir, "state")))
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
	for i := 0; i < *runs; i++ {
		base3 = append(base3, tarZstd(tree, filepath.Join(dir, fmt.Sprint("baseline", i, ".tar.zst"))))
	}
	check(firstErr(base3))

	h, b := median(hw), median(base3)
	content := h.content
	fmt.Printf("bake of %s from %s (%.0f MB base file, %d run(s), median; %d CPUs)\n\n", *node, filepath.Base(*base), mb(size(*base)), *runs, numCPU())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "tool\tcontent MB\twall s\tMB/s\tCPU s\tpeak RSS MiB\toutput MB\t")
	fmt.Fprintf(tw, "hardway bake (whole command)\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t\n", mb(content), h.wall.Seconds(), mb(content)/h.wall.Seconds(), h.cpu.Seconds(), float64(h.rss)/1024, mb(size(template)))
	fmt.Fprintf(tw, "  of which streaming + zstd\t%.0f\t%.2f\t%.0f\t\t\t\t\n", mb(content), h.took.Seconds(), mb(content)/h.took.Seconds())
	fmt.Fprintf(tw, "tar -c | zstd -T0 -3\t%.0f\t%.2f\t%.0f\t%.2f\t%.0f\t%.0f\t\n", mb(content), b.wall.Seconds(), mb(content)/b.wall.Seconds(), b.cpu.Seconds(), float64(b.rss)/1024, mb(b.out))
	tw.Flush()
	fmt.Println("\nhardway reads the zstd base twice (a scan that verifies it, then the bake), hashes the pinned")
	fmt.Println("binaries (before, and again while copying them), and compresses with klauspost/compress (pure Go);")
	fmt.Println("the whole command also runs generate. tar reads the unpacked template from the page cache and")
	fmt.Println("zstd is the C implementation. CPU and peak RSS of the baseline are tar's plus zstd's.")
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

// pinnedSpec writes a copy of the spec whose binaries.dir holds links to
// the worker's binaries and whose binaries.sha256 pins them.
func pinnedSpec(specFile, bin, dir string) string {
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
