// Package plugintest holds what the plugin's tests share: small cluster
// specs, a synthetic base root file system, and a check that a node's tree
// arrived on disk entry by entry.
package plugintest

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Cluster is a spec with every kind of node the plugin distinguishes: a
// stacked controller+etcd LXC node, an LXC worker, a KVM worker booted by
// cloud-init and a gateway booted by Ignition (a node booted by Ignition
// with pinned binaries needs binaries.mode upstream). binaries.mode is
// packaged, so that baking needs no binaries.
const Cluster = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: pkrtest
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
  binaries:
    mode: packaged
  # The plugin's tests run no pod: no pause or CoreDNS archive.
  acknowledgeWarnings: [no-image-archives]
  nodes:
    - {name: cp1, roles: [controller, etcd], target: lxc, address: 10.240.0.21/24, vmid: 221}
    - {name: w1, roles: [worker], target: lxc, address: 10.240.0.31/24, vmid: 231}
    - {name: w2, roles: [worker], target: kvm, address: 10.240.0.32/24, vmid: 232, diskGiB: 30}
    - {name: w3, roles: [gateway], target: kvm, address: 10.240.0.33/24, vmid: 233, boot: ignition}
  ignition:
    images: {fcos: fedora-coreos-proxmoxve.x86_64.qcow2}
`

// Write writes data as cluster.yaml in a new temporary directory and
// returns its path.
func Write(t testing.TB, data string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Packaged returns the spec at file (an example, say) with binaries.mode
// packaged instead of upstream, so that baking it needs no binaries.
func Packaged(t testing.TB, file string) string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "mode: upstream", "mode: packaged", 1)
	if s == string(data) {
		t.Fatalf("%s has no binaries.mode upstream to replace", file)
	}
	out := Write(t, s)
	// The example's image archives (`make images` builds them; the plugin's
	// tests run no pod): empty tar archives at their paths, so that workers bake.
	for _, l := range strings.Split(s, "\n") {
		list, ok := strings.CutPrefix(strings.TrimSpace(l), "images: [")
		if !ok {
			continue
		}
		for _, img := range strings.Split(strings.TrimSuffix(list, "]"), ",") {
			p := filepath.Join(filepath.Dir(out), strings.TrimSpace(img))
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			// Two zero blocks: the end of an empty tar archive.
			if err := os.WriteFile(p, make([]byte, 1024), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	return out
}
