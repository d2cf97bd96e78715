// Command bench measures `hardway generate` for 3 controllers + N workers
// against, on the same machine in the same run, (a) the seed's approach: the
// cfssl command-line tools called once per certificate by a shell script, and
// (b) kubeadm `init phase certs all` + `init phase kubeconfig all` per node;
// and, as the floor of what any tool writing the same output can do here,
// tar extracting hardway's output (the same files, nothing rendered, signed
// or made durable).
// It prints wall time, CPU time and peak resident memory of each, then
// issue #14's targets next to the figures measured and the baselines, each
// met or not. `make bench` runs it.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

func main() {
	hardway := flag.String("hardway", "bin/hardway", "hardway binary")
	tools := flag.String("tools", "bin/tools", "directory holding cfssl, cfssljson and kubeadm")
	sizes := flag.String("workers", "10,100,1000,10000", "worker counts")
	baselineMax := flag.Int("baseline-max", 100, "largest worker count for which the slow baselines run")
	floorMax := flag.Int("floor-max", 1000, "largest worker count for which tar -x of hardway's output is measured")
	timeout := flag.Duration("timeout", 10*time.Minute, "longest a hardway run may take before it counts as not completed")
	runs := flag.Int("runs", 5, "hardway's runs of each kind per size up to -floor-max (larger sizes run once): its rows give the run of median wall time and the largest peak RSS")
	flag.Parse()
	// The baseline scripts change directory: tool paths must be absolute.
	*tools, _ = filepath.Abs(*tools)

	if *runs < 1 {
		check(fmt.Errorf("-runs %d: want 1 or more", *runs))
	}
	fmt.Printf("load average at start: %s\n", loadAverage())
	fmt.Printf("hardway's rows: the run of median wall time of %d (sizes up to %d workers; larger ones 1), with the largest peak RSS of them; tar and the baselines: 1 run\n", *runs, *floorMax)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workers\ttool\twall\tCPU\tpeak RSS\tvs hardway\t")
	all := map[int]*sizeResults{}
	// Every run's directory is removed at the end, not after its size: on
	// ext4 without a journal, files created soon after many were deleted
	// cost several times more (recently_deleted, BENCHMARKS.md), and the
	// kubeadm baseline's thousands of files would slow the next size's
	// first run by what the bench itself deleted. The same holds for the
	// next bench: creating files here took up to 8x longer for about two
	// minutes after one bench removed its runs.
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
		fmt.Fprintln(os.Stderr, "bench: runs removed; creating files may be slower here for a few minutes (BENCHMARKS.md): wait before the next bench")
	}()
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		fmt.Sscan(s, &n)
		dir, err := os.MkdirTemp("", "hardway-bench")
		check(err)
		dirs = append(dirs, dir)
		specFile := filepath.Join(dir, "cluster.yaml")
		check(os.WriteFile(specFile, []byte(clusterSpec(n)), 0o644))
		k := *runs
		if n > *floorMax {
			k = 1
		}
		outs := make([]string, k)
		for i := range outs {
			outs[i] = filepath.Join(dir, fmt.Sprintf("out%d", i))
		}
		generate := func(spec, out string) result {
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			defer cancel()
			return run(exec.CommandContext(ctx, *hardway, "generate", "-f", spec, "--dir", out))
		}
		// Each kind of run k times, one output directory a time: the
		// first runs, then a no-op rerun of each, then one worker added
		// to each.
		each := func(spec string) result {
			rs := make([]result, k)
			for i, out := range outs {
				rs[i] = generate(spec, out)
			}
			return median(rs)
		}

		r := &sizeResults{first: each(specFile)}
		all[n] = r
		row(tw, n, "hardway generate", r.first, r.first)
		if r.first.err == nil {
			r.noop = each(specFile)
			row(tw, n, "hardway no-op rerun", r.noop, r.first)
		}
		// The floor: the same files written by tar, which renders,
		// checks and syncs nothing. Archived now, extracted after the
		// add-one runs so its writeback does not slow them.
		archive := filepath.Join(dir, "out.tar")
		if r.noop.err == nil && n <= *floorMax {
			check(exec.Command("tar", "-C", outs[0], "-cf", archive, ".").Run())
		}
		if n == addOneAt && r.noop.err == nil {
			before, err := output.ReadManifest(filepath.Join(outs[0], "bench"))
			check(err)
			plusOne := filepath.Join(dir, "cluster-plus-one.yaml")
			check(os.WriteFile(plusOne, []byte(clusterSpec(n+1)), 0o644))
			r.addOne = each(plusOne)
			row(tw, n, "hardway add one worker", r.addOne, r.first)
			if r.addOne.err == nil {
				after, err := output.ReadManifest(filepath.Join(outs[0], "bench"))
				check(err)
				r.othersChanged, r.othersBytes = othersChanged(before, after, fmt.Sprintf("w%d", n))
			}
		}
		if r.noop.err == nil && n <= *floorMax {
			floor := filepath.Join(dir, "floor")
			check(os.Mkdir(floor, 0o755))
			r.floor = run(exec.Command("tar", "-C", floor, "-xf", archive))
			row(tw, n, "tar -x of the output", r.floor, r.first)
		}
		if n <= *baselineMax {
			c := cluster(specFile)
			r.cfssl = cfsslBaseline(c, dir, *tools)
			row(tw, n, "cfssl CLI per cert", r.cfssl, r.first)
			r.kubeadm = kubeadmBaseline(c, dir, *tools)
			row(tw, n, "kubeadm per node", r.kubeadm, r.first)
		}
		tw.Flush()
		if n > *baselineMax {
			// Outside the table: a cell this wide would widen its column.
			fmt.Printf("%d: baselines skipped (-baseline-max %d)\n", n, *baselineMax)
		}
	}
	fmt.Printf("load average at end: %s\n\n", loadAverage())
	targets(all, *timeout)
}

// sizeResults are the runs of one worker count.
type sizeResults struct {
	first, noop, addOne, cfssl, kubeadm result
	floor                               result // tar -x of the output: creating its files, no more
	othersChanged                       int    // existing nodes' artifacts that adding a worker changed
	othersBytes                         int64  // and their bytes
}

// addOneAt is the worker count to which the bench adds one worker.
const addOneAt = 100

// targets prints issue #14's targets next to what was measured, the
// baseline, and whether each is met.
func targets(all map[int]*sizeResults, timeout time.Duration) {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target (issue #14)\tmeasured\tbaseline\tmet\t")
	line := func(target, measured, baseline string, met bool) {
		verdict := "not met"
		if met {
			verdict = "met"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", target, measured, baseline, verdict)
	}
	missing := func(target, why string) { fmt.Fprintf(tw, "%s\t%s\t\t-\t\n", target, why) }
	faster := func(target string, r *sizeResults, base result, name string, times float64) {
		switch {
		case r.first.err != nil || base.err != nil:
			missing(target, "a run failed")
		default:
			ratio := base.wall.Seconds() / r.first.wall.Seconds()
			line(target, fmt.Sprintf("%.3fs: %.1fx", r.first.wall.Seconds(), ratio), fmt.Sprintf("%s %.3fs", name, base.wall.Seconds()), ratio >= times)
		}
	}

	if r := all[100]; r == nil {
		missing("3+100 first run", "not measured (-workers)")
	} else {
		if r.cfssl.wall == 0 {
			missing("3+100 first run >= 50x faster than kubeadm per node", "baselines skipped")
		} else {
			faster("3+100 first run >= 50x faster than kubeadm per node", r, r.kubeadm, "kubeadm", 50)
			faster("3+100 first run >= 150x faster than the cfssl CLI script", r, r.cfssl, "cfssl CLI", 150)
		}
		if r.first.err == nil {
			line("3+100 first run under 0.3s (on a quiet machine)", fmt.Sprintf("%.3fs", r.first.wall.Seconds()), floorOf(r), r.first.wall < 300*time.Millisecond)
		}
		if r.noop.err == nil && r.noop.wall > 0 {
			line("3+100 no-op rerun under 0.1s, process start included", fmt.Sprintf("%.3fs", r.noop.wall.Seconds()), "", r.noop.wall < 100*time.Millisecond)
		}
		switch {
		case r.addOne.wall == 0:
			missing("3+100 add one worker", "not run")
		case r.addOne.err != nil:
			missing("3+100 add one worker", "failed")
		default:
			more := r.addOne.wall - r.noop.wall
			line("3+100 add one worker under 0.1s more than a no-op", fmt.Sprintf("%.3fs (+%.3fs)", r.addOne.wall.Seconds(), more.Seconds()), fmt.Sprintf("no-op %.3fs", r.noop.wall.Seconds()), more < 100*time.Millisecond)
			line("3+100 add one worker: 0 bytes changed in other nodes' artifacts", fmt.Sprintf("%d artifacts, %d bytes", r.othersChanged, r.othersBytes), "", r.othersBytes == 0 && r.othersChanged == 0)
		}
	}
	if r := all[1000]; r == nil {
		missing("3+1000 first run", "not measured (-workers)")
	} else if r.first.err != nil {
		missing("3+1000 first run", fmt.Sprintf("did not complete: %v", r.first.err))
	} else {
		line("3+1000 first run under 2s", fmt.Sprintf("%.3fs", r.first.wall.Seconds()), floorOf(r), r.first.wall < 2*time.Second)
		line("3+1000 first run under 200 MiB", fmt.Sprintf("%.1f MiB", float64(r.first.rss)/1024), "", r.first.rss < 200*1024)
	}
	if r := all[10000]; r == nil {
		missing("3+10000 completes", "not measured (-workers)")
	} else {
		line("3+10000 completes", describe(r.first, timeout), "", r.first.err == nil)
	}
	tw.Flush()
}

// floorOf names the time tar took to create the same files: what this
// machine's file system needs, whatever hardway does.
func floorOf(r *sizeResults) string {
	if r.floor.wall == 0 || r.floor.err != nil {
		return ""
	}
	return fmt.Sprintf("tar -x of the output %.3fs", r.floor.wall.Seconds())
}

func describe(r result, timeout time.Duration) string {
	if r.err != nil {
		if r.wall >= timeout {
			return fmt.Sprintf("no: killed after %s (-timeout)", timeout)
		}
		return fmt.Sprintf("no: %v", r.err)
	}
	return fmt.Sprintf("%.3fs, CPU %.3fs, %.1f MiB", r.wall.Seconds(), r.cpu.Seconds(), float64(r.rss)/1024)
}

// othersChanged counts the artifacts of nodes other than added that differ
// between two manifests (changed, added or removed), and their bytes (the
// larger of the old and new size).
func othersChanged(before, after map[string]output.Artifact, added string) (n int, bytes int64) {
	count := func(a, b output.Artifact, ok bool) {
		if a.Node == "" || a.Node == added || ok && a.SHA256 == b.SHA256 && a.Mode == b.Mode {
			return
		}
		n++
		bytes += max(a.Size, b.Size)
	}
	for p, a := range after {
		b, ok := before[p]
		count(a, b, ok)
	}
	for p, b := range before {
		if _, ok := after[p]; !ok {
			count(b, output.Artifact{}, false)
		}
	}
	return n, bytes
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

type result struct {
	wall time.Duration
	cpu  time.Duration // user + system, of it and its children
	rss  int64         // KiB
	err  error
}

func row(tw *tabwriter.Writer, n int, name string, r, base result) {
	if r.err != nil {
		fmt.Fprintf(tw, "%d\t%s\tfailed: %v\t\t\t\t\n", n, name, r.err)
		return
	}
	ratio := float64(r.wall) / float64(base.wall)
	fmt.Fprintf(tw, "%d\t%s\t%.3fs\t%.3fs\t%.1f MiB\t%.1fx\t\n", n, name, r.wall.Seconds(), r.cpu.Seconds(), float64(r.rss)/1024, ratio)
}

// median is the run of rs with the median wall time (the slower of the two
// middle ones for an even count), its peak RSS the largest of rs: a memory
// target holds for every run. A failed run makes the result its failure.
func median(rs []result) result {
	for _, r := range rs {
		if r.err != nil {
			return r
		}
	}
	sorted := slices.SortedFunc(slices.Values(rs), func(a, b result) int { return cmp.Compare(a.wall, b.wall) })
	m := sorted[len(sorted)/2]
	for _, r := range rs {
		m.rss = max(m.rss, r.rss)
	}
	return m
}

// run executes cmd and reports wall time and the peak RSS of it and its children.
func run(cmd *exec.Cmd) result {
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	r := result{wall: time.Since(start)}
	if err != nil {
		r.err = fmt.Errorf("%v: %s", err, lastLine(out.String()))
		return r
	}
	r.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		r.rss = ru.Maxrss
	}
	return r
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// clusterSpec is 3 stacked controllers and n workers, ECDSA P-256. The
// node network is a /20 (as in the figures of BENCHMARKS.md) where the
// workers fit, a /16 beyond.
func clusterSpec(n int) string {
	prefix := 20
	if 256+n >= 4096 {
		prefix = 16
	}
	var b strings.Builder
	fmt.Fprintf(&b, `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: bench}
spec:
  kubernetesVersion: v1.34.2
  network: {nodeCIDR: 10.0.0.0/%d, podCIDR: 10.128.0.0/9, podCIDRMaskSize: 24, serviceCIDR: 172.16.0.0/16}
  pki: {algorithm: ecdsa-p256}
  nodes:
`, prefix)
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "    - {name: cp%d, roles: [controller, etcd], target: kvm, address: 10.0.0.%d/%d, vmid: %d}\n", i, 10+i, prefix, 100+i)
	}
	for i := 0; i < n; i++ {
		a := 256 + i
		fmt.Fprintf(&b, "    - {name: w%d, roles: [worker], target: lxc, address: 10.0.%d.%d/%d, vmid: %d}\n", i, a/256, a%256, prefix, 1000+i)
	}
	return b.String()
}

func cluster(path string) *spec.Cluster {
	doc, err := spec.LoadFile(path)
	check(err)
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		check(is)
	}
	return doc.Cluster
}

// cfsslBaseline writes and runs the shell script the seed would: one
// `cfssl gencert | cfssljson` per certificate of the same plan.
func cfsslBaseline(c *spec.Cluster, dir, tools string) result {
	work := filepath.Join(dir, "cfssl")
	check(os.MkdirAll(work+"/etcd", 0o755))
	check(os.WriteFile(filepath.Join(work, "ca-config.json"), []byte(`{"signing":{"default":{"expiry":"8760h"},"profiles":{"k":{"usages":["signing","key encipherment","server auth","client auth"],"expiry":"8760h"}}}}`), 0o644))
	var sh strings.Builder
	sh.WriteString("set -e\ncd " + work + "\n")
	for _, r := range pki.Plan(c) {
		csr := fmt.Sprintf(`{"CN":%q,"key":{"algo":"ecdsa","size":256},"names":[{"O":%q}]}`, r.CN, strings.Join(r.O, ","))
		if r.IsCA() {
			fmt.Fprintf(&sh, "echo '%s' | %s/cfssl gencert -initca - | %s/cfssljson -bare %s\n", csr, tools, tools, r.Name)
			continue
		}
		var hosts []string
		for _, ip := range r.IPs {
			hosts = append(hosts, ip.String())
		}
		hosts = append(hosts, r.DNS...)
		fmt.Fprintf(&sh, "echo '%s' | %s/cfssl gencert -ca=%s.pem -ca-key=%s-key.pem -config=ca-config.json -profile=k -hostname=%q - | %s/cfssljson -bare %s\n",
			csr, tools, r.CA, r.CA, strings.Join(hosts, ","), tools, r.Name)
	}
	check(os.WriteFile(filepath.Join(work, "run.sh"), []byte(sh.String()), 0o755))
	return run(exec.Command("bash", filepath.Join(work, "run.sh")))
}

// kubeadmBaseline runs kubeadm's certificate and kubeconfig phases for every
// node, sharing the CAs and service-account key as a real cluster would.
func kubeadmBaseline(c *spec.Cluster, dir, tools string) result {
	var sh strings.Builder
	sh.WriteString("set -e\n")
	first := ""
	for _, n := range c.Spec.Nodes {
		nd := filepath.Join(dir, "kubeadm", n.Name)
		check(os.MkdirAll(nd+"/pki", 0o755))
		cfg := fmt.Sprintf(`apiVersion: kubeadm.k8s.io/v1beta4
kind: InitConfiguration
localAPIEndpoint: {advertiseAddress: %s, bindPort: 6443}
nodeRegistration: {name: %s}
---
apiVersion: kubeadm.k8s.io/v1beta4
kind: ClusterConfiguration
kubernetesVersion: v1.34.2
encryptionAlgorithm: ECDSA-P256
certificatesDir: %s/pki
networking: {serviceSubnet: 172.16.0.0/16, podSubnet: 10.128.0.0/9}
`, n.IP(), n.Name, nd)
		check(os.WriteFile(nd+"/kubeadm.yaml", []byte(cfg), 0o644))
		if first != "" {
			fmt.Fprintf(&sh, "cp -r %s/pki/ca.* %s/pki/front-proxy-ca.* %s/pki/sa.* %s/pki/ && mkdir -p %s/pki/etcd && cp %s/pki/etcd/ca.* %s/pki/etcd/\n",
				first, nd, first, nd, nd, first, nd)
		} else {
			first = nd
		}
		fmt.Fprintf(&sh, "%s/kubeadm init phase certs all --config %s/kubeadm.yaml >/dev/null\n", tools, nd)
		fmt.Fprintf(&sh, "%s/kubeadm init phase kubeconfig all --config %s/kubeadm.yaml --kubeconfig-dir %s >/dev/null\n", tools, nd, nd)
	}
	script := filepath.Join(dir, "kubeadm.sh")
	check(os.WriteFile(script, []byte(sh.String()), 0o755))
	return run(exec.Command("bash", script))
}
