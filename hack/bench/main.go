// Command bench measures `hardway generate` for 3 controllers + N workers
// against, on the same machine in the same run, (a) the seed's approach: the
// cfssl command-line tools called once per certificate by a shell script, and
// (b) kubeadm `init phase certs all` + `init phase kubeconfig all` per node.
// It prints wall time and peak resident memory of each. `make bench` runs it.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

func main() {
	hardway := flag.String("hardway", "bin/hardway", "hardway binary")
	tools := flag.String("tools", "bin/tools", "directory holding cfssl, cfssljson and kubeadm")
	sizes := flag.String("workers", "10,100,1000", "worker counts")
	baselineMax := flag.Int("baseline-max", 100, "largest worker count for which the slow baselines run")
	flag.Parse()
	// The baseline scripts change directory: tool paths must be absolute.
	*tools, _ = filepath.Abs(*tools)

	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "workers\ttool\twall\tpeak RSS\tvs hardway\t")
	for _, s := range strings.Split(*sizes, ",") {
		var n int
		fmt.Sscan(s, &n)
		dir, err := os.MkdirTemp("", "hardway-bench")
		check(err)
		specFile := filepath.Join(dir, "cluster.yaml")
		check(os.WriteFile(specFile, []byte(clusterSpec(n)), 0o644))

		hw := run(exec.Command(*hardway, "generate", "-f", specFile, "--dir", filepath.Join(dir, "out")))
		row(tw, n, "hardway generate", hw, hw)
		noop := run(exec.Command(*hardway, "generate", "-f", specFile, "--dir", filepath.Join(dir, "out")))
		row(tw, n, "hardway no-op rerun", noop, hw)
		if n <= *baselineMax {
			c := cluster(specFile)
			row(tw, n, "cfssl CLI per cert", cfsslBaseline(c, dir, *tools), hw)
			row(tw, n, "kubeadm per node", kubeadmBaseline(c, dir, *tools), hw)
		} else {
			fmt.Fprintf(tw, "%d\tbaselines\tskipped (-baseline-max %d)\t\t\t\n", n, *baselineMax)
		}
		tw.Flush()
		os.RemoveAll(dir)
	}
}

type result struct {
	wall time.Duration
	rss  int64 // KiB
	err  error
}

func row(tw *tabwriter.Writer, n int, name string, r, base result) {
	if r.err != nil {
		fmt.Fprintf(tw, "%d\t%s\tfailed: %v\t\t\t\n", n, name, r.err)
		return
	}
	ratio := float64(r.wall) / float64(base.wall)
	fmt.Fprintf(tw, "%d\t%s\t%.3fs\t%.1f MiB\t%.1fx\t\n", n, name, r.wall.Seconds(), float64(r.rss)/1024, ratio)
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

// clusterSpec is 3 stacked controllers and n workers, ECDSA P-256.
func clusterSpec(n int) string {
	var b strings.Builder
	b.WriteString(`apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata: {name: bench}
spec:
  kubernetesVersion: v1.34.2
  network: {nodeCIDR: 10.0.0.0/20, podCIDR: 10.128.0.0/9, podCIDRMaskSize: 24, serviceCIDR: 172.16.0.0/16}
  pki: {algorithm: ecdsa-p256}
  nodes:
`)
	for i := 1; i <= 3; i++ {
		fmt.Fprintf(&b, "    - {name: cp%d, roles: [controller, etcd], target: kvm, address: 10.0.0.%d/20, vmid: %d}\n", i, 10+i, 100+i)
	}
	for i := 0; i < n; i++ {
		a := 256 + i
		fmt.Fprintf(&b, "    - {name: w%d, roles: [worker], target: lxc, address: 10.0.%d.%d/20, vmid: %d}\n", i, a/256, a%256, 1000+i)
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
