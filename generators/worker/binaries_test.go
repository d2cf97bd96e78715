package worker_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	proxyv1alpha1 "k8s.io/kube-proxy/config/v1alpha1"
)

// Every flag of the kubelet and kube-proxy units exists in the pinned
// v1.34.2 binary's --help.
func TestUnitFlagsExist(t *testing.T) {
	help := map[string]string{}
	for _, b := range []string{"kubelet", "kube-proxy"} {
		// Both print their help on stdout and exit 0; keep stderr too.
		out, _ := exec.Command(k8sBin(t, b), "--help").CombinedOutput()
		if len(out) < 1000 {
			t.Fatalf("%s --help printed no help: %s", b, out)
		}
		help[b] = string(out)
	}
	for _, w := range workers(t) {
		tr := nodeTree(t, w.x, w.node)
		for unit, bin := range map[string]string{"kubelet.service": "kubelet", "kube-proxy.service": "kube-proxy"} {
			ex := execLines(t, file(t, tr, "/etc/systemd/system/"+unit))["ExecStart"]
			if len(ex) != 1 {
				t.Fatalf("%s: %d ExecStart lines", unit, len(ex))
			}
			for _, word := range ex[0][1:] {
				name, _, _ := strings.Cut(word, "=")
				if !strings.HasPrefix(name, "--") {
					t.Errorf("%s %s: %q is not a --flag=value word", w.node, unit, word)
					continue
				}
				if !regexp.MustCompile(`(?m)^\s+(-\w, )?` + regexp.QuoteMeta(name) + `[\s=]`).MatchString(help[bin]) {
					t.Errorf("%s %s: %s %s is not in `%s --help` (v1.34.2)", w.node, unit, bin, name, bin)
				}
			}
		}
	}
}

// The pinned kube-proxy loads each generated configuration strictly and
// validates it: --write-config-to makes it stop there and write the
// configuration it would run with, defaults applied.
func TestKubeProxyAcceptsConfig(t *testing.T) {
	kubeProxy := k8sBin(t, "kube-proxy")
	for _, e := range expects {
		t.Run(e.example+"/"+e.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, e.example), e.node)
			dir := t.TempDir()
			in, out := filepath.Join(dir, "in.yaml"), filepath.Join(dir, "out.yaml")
			if err := os.WriteFile(in, file(t, tr, "/var/lib/kube-proxy/kube-proxy-config.yaml"), 0o644); err != nil {
				t.Fatal(err)
			}
			var stderr bytes.Buffer
			cmd := exec.Command(kubeProxy, "--config="+in, "--write-config-to="+out)
			cmd.Stderr = &stderr
			if err := cmd.Run(); err != nil {
				t.Fatalf("kube-proxy rejects the configuration: %v: %s", err, stderr.Bytes())
			}
			if strings.Contains(stderr.String(), "lenient decoding") {
				t.Errorf("kube-proxy could not decode the configuration strictly: %s", stderr.Bytes())
			}
			data, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var pc proxyv1alpha1.KubeProxyConfiguration
			if err := yaml.Unmarshal(data, &pc); err != nil {
				t.Fatal(err)
			}
			checkEq(t, "effective clusterCIDR", pc.ClusterCIDR, e.clusterPodCIDR)
			checkEq(t, "effective hostnameOverride", pc.HostnameOverride, e.node)
			// kube-proxy's own default is 32768 per core.
			if mpc := pc.Conntrack.MaxPerCore; mpc == nil || (*mpc == 0) != e.lxc {
				t.Errorf("effective conntrack.maxPerCore = %v on lxc=%v", mpc, e.lxc)
			}
		})
	}
}
