package controller_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/kubeconfig"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// TestControlPlane runs the seed-lxc control plane from the generated units:
// etcd1 and etcd2 and the first controller's kube-apiserver,
// kube-controller-manager and kube-scheduler, started with the units' own
// command lines (paths rewritten into per-node roots, binaries the pinned
// builds), each node in its own network namespace at its spec address, all
// created by the test. Then it runs the bootstrap unit's commands and checks what they
// promise: the manifests are applied, the admin kubeconfig (kubeadm:cluster-
// admins) is cluster-admin, super-admin is gone, Secrets are encrypted in
// etcd, and both components elect a leader through their kubeconfigs.
func TestControlPlane(t *testing.T) {
	dirs := binDirs(t)
	ipTool := commontest.Tool(t, "ip", "iproute2")
	x := load(t, "seed-lxc.yaml")
	names := []string{"etcd1", "etcd2", "controller"}
	nsOf := network(t, ipTool, x.C, names)

	logs := t.TempDir()
	roots := map[string]string{}
	trees := map[string]*tree.Tree{}
	for _, name := range names {
		trees[name] = nodeTree(t, x, name)
		roots[name] = t.TempDir()
		commontest.WriteRoot(t, trees[name], roots[name])
	}
	// start runs a unit's ExecStart in the namespace until the test ends.
	start := func(node, unit string) {
		argv := commands(t, file(t, trees[node], tree.UnitDir+"/"+unit))["ExecStart"][0]
		argv = rewrite(argv, roots[node], findBin(t, dirs, path.Base(argv[0])))
		out, err := os.Create(filepath.Join(logs, node+"-"+unit+".log"))
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(ipTool, append([]string{"netns", "exec", nsOf[node]}, argv...)...)
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cmd.Process.Kill()
			cmd.Wait()
			out.Close()
			if t.Failed() {
				log, _ := os.ReadFile(out.Name())
				t.Logf("%s %s (last lines):\n%s", node, unit, tail(string(log), 15))
			}
		})
	}
	start("etcd1", "etcd.service")
	start("etcd2", "etcd.service")
	start("controller", "kube-apiserver.service")

	// The bootstrap unit, as systemd would run it: ExecStartPre retried
	// (RestartSec) until it succeeds, then each ExecStart in order.
	ctrl, ns := roots["controller"], nsOf["controller"]
	kubectl := findBin(t, dirs, "kubectl")
	boot := commands(t, file(t, trees["controller"], tree.UnitDir+"/hardway-bootstrap.service"))
	inNS := func(argv []string) *exec.Cmd {
		if path.Base(argv[0]) == "kubectl" {
			argv = rewrite(argv, ctrl, kubectl)
		} else {
			argv = rewrite(argv, ctrl, argv[0])
		}
		return exec.Command(ipTool, append([]string{"netns", "exec", ns}, argv...)...)
	}
	waitFor(t, 90*time.Second, "kube-apiserver /readyz", func() error {
		return cmdErr(inNS(boot["ExecStartPre"][0]))
	})
	for _, argv := range boot["ExecStart"] {
		if err := cmdErr(inNS(argv)); err != nil {
			t.Fatalf("bootstrap step %q: %v", strings.Join(argv, " "), err)
		}
	}
	if _, err := os.Stat(filepath.Join(ctrl, "var/lib/kubernetes/.bootstrapped")); err != nil {
		t.Errorf("guard file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(ctrl, "var/lib/kubernetes/super-admin.kubeconfig")); !os.IsNotExist(err) {
		t.Errorf("super-admin.kubeconfig is still on the node (%v)", err)
	}

	// admin works only through the kubeadm:cluster-admins binding just applied.
	admin := filepath.Join(t.TempDir(), "admin.kubeconfig")
	for _, k := range kubeconfig.Set(x.C) {
		if k.Name == "admin" {
			if err := os.WriteFile(admin, kubeconfig.Render(x.C, x.PKI, k, "https://127.0.0.1:6443"), 0o600); err != nil {
				t.Fatal(err)
			}
		}
	}
	k := func(args ...string) (string, error) {
		cmd := exec.Command(ipTool, append([]string{"netns", "exec", ns, kubectl, "--kubeconfig=" + admin, "--request-timeout=20s"}, args...)...)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}
	if out, err := k("auth", "can-i", "*", "*"); err != nil || out != "yes" {
		t.Errorf("admin can-i * *: %q %v", out, err)
	}
	if out, err := k("-n", "kube-system", "get", "service", "kube-dns", "-o", "jsonpath={.spec.clusterIP}"); err != nil || out != "10.32.0.10" {
		t.Errorf("kube-dns clusterIP: %q %v", out, err)
	}
	if out, err := k("get", "clusterrolebinding", "system:kube-apiserver-to-kubelet", "-o", "jsonpath={.subjects[0].name}"); err != nil || out != "kube-apiserver-kubelet-client" {
		t.Errorf("apiserver-to-kubelet subject: %q %v", out, err)
	}

	// Secrets at rest: the value in etcd carries the aescbc envelope.
	if out, err := k("-n", "default", "create", "secret", "generic", "probe", "--from-literal=k=plaintext-probe"); err != nil {
		t.Fatalf("create secret: %s %v", out, err)
	}
	etcdctl := exec.Command(ipTool, "netns", "exec", ns, findBin(t, dirs, "etcdctl"),
		"--endpoints=https://10.240.0.11:2379",
		"--cacert="+filepath.Join(ctrl, "var/lib/kubernetes/etcd-ca.crt"),
		"--cert="+filepath.Join(ctrl, "var/lib/kubernetes/apiserver-etcd-client.crt"),
		"--key="+filepath.Join(ctrl, "var/lib/kubernetes/apiserver-etcd-client.key"),
		"get", "/registry/secrets/default/probe", "--print-value-only")
	raw, err := etcdctl.CombinedOutput()
	if err != nil || !strings.HasPrefix(string(raw), "k8s:enc:aescbc:v1:key1:") || strings.Contains(string(raw), "plaintext-probe") {
		t.Errorf("secret in etcd is not aescbc-encrypted (%v): %.60q", err, raw)
	}

	// kube-controller-manager and kube-scheduler: each takes its leader lease.
	// The scheduler's config file names its kubeconfig: move that path too.
	cfg := filepath.Join(ctrl, "var/lib/kubernetes/kube-scheduler.yaml")
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	moved := strings.ReplaceAll(string(data), " /var/lib/kubernetes/", " "+ctrl+"/var/lib/kubernetes/")
	if moved == string(data) {
		t.Fatal("kube-scheduler.yaml names no file under /var/lib/kubernetes")
	}
	if err := os.WriteFile(cfg, []byte(moved), 0o644); err != nil {
		t.Fatal(err)
	}
	start("controller", "kube-controller-manager.service")
	start("controller", "kube-scheduler.service")
	for _, lease := range []string{"kube-controller-manager", "kube-scheduler"} {
		waitFor(t, 60*time.Second, lease+" leader lease", func() error {
			out, err := k("-n", "kube-system", "get", "lease", lease, "-o", "jsonpath={.spec.holderIdentity}")
			if err == nil && out == "" {
				err = fmt.Errorf("no holder")
			}
			return err
		})
	}
}

// network creates a network namespace per node, with the node's spec
// address on eth0, all linked by a bridge in one more namespace (the
// nodes' L2 network), and removes them when the test ends.
func network(t *testing.T, ipTool string, c *spec.Cluster, names []string) map[string]string {
	t.Helper()
	prefix := fmt.Sprintf("hardway-test-%d-", os.Getpid())
	addNS := func(name string) string {
		ns := prefix + name
		run(t, ipTool, "netns", "add", ns)
		t.Cleanup(func() { exec.Command(ipTool, "netns", "del", ns).Run() })
		run(t, ipTool, "-n", ns, "link", "set", "lo", "up")
		return ns
	}
	sw := addNS("switch")
	run(t, ipTool, "-n", sw, "link", "add", "br0", "type", "bridge")
	run(t, ipTool, "-n", sw, "link", "set", "br0", "up")
	out := map[string]string{}
	for i, name := range names {
		n, ok := c.Node(name)
		if !ok {
			t.Fatalf("no node %s", name)
		}
		ns := addNS(name)
		port := fmt.Sprintf("p%d", i)
		run(t, ipTool, "-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run(t, ipTool, "-n", sw, "link", "set", port, "master", "br0", "up")
		run(t, ipTool, "-n", ns, "addr", "add", n.Address, "dev", "eth0")
		run(t, ipTool, "-n", ns, "link", "set", "eth0", "up")
		out[name] = ns
	}
	return out
}

// rewrite returns argv with bin as the binary and every absolute path under
// the hardway node directories moved under root (what `hardway verify` does).
func rewrite(argv []string, root, bin string) []string {
	prefixes := []string{"/var/lib/kubernetes", "/etc/etcd", "/var/lib/etcd"}
	move := func(v string) string {
		for _, p := range prefixes {
			if v == p || strings.HasPrefix(v, p+"/") {
				return filepath.Join(root, v)
			}
		}
		return v
	}
	out := []string{bin}
	for _, a := range argv[1:] {
		k, v, hasValue := strings.Cut(a, "=")
		if !strings.HasPrefix(a, "--") || !hasValue {
			out = append(out, move(a))
			continue
		}
		parts := strings.Split(v, ",")
		for i := range parts {
			parts[i] = move(parts[i])
		}
		out = append(out, k+"="+strings.Join(parts, ","))
	}
	return out
}

func run(t *testing.T, name string, args ...string) {
	t.Helper()
	if out, err := exec.Command(name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v\n%s", name, args, err, out)
	}
}

func cmdErr(cmd *exec.Cmd) error {
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v: %s", err, tail(string(out), 5))
	}
	return nil
}

// waitFor retries f every second until it succeeds or d passes.
func waitFor(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: not within %v: %v", what, d, err)
		case <-time.After(time.Second):
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
