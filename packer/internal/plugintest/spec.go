// Package plugintest holds what the plugin's tests share: small cluster
// specs, a synthetic base root file system, and a check that a node's tree
// arrived on disk entry by entry.
package plugintest

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// Cluster is a spec with every kind of node the plugin distinguishes: a
// stacked controller+etcd LXC node, an LXC worker, a KVM worker booted by
// cloud-init and a gateway booted by Ignition (a node booted by Ignition
// with pinned binaries needs binaries.mode upstream). binaries.mode is
// packaged, so that baking needs only the pinned Kubernetes binaries, whose
// stand-ins Write adds.
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
// returns its path. A spec in binaries.mode packaged gets stand-ins for the
// Kubernetes binaries, which that mode pins, in artifacts/ beside it, and
// their pins.
func Write(t testing.TB, data string) string {
	t.Helper()
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.yaml")
	text := []byte(data)
	if strings.Contains(data, "mode: packaged") {
		if err := os.Mkdir(filepath.Join(dir, "artifacts"), 0o755); err != nil {
			t.Fatal(err)
		}
		pins := map[string]string{}
		for _, b := range []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "kubelet", "kube-proxy"} {
			stand := []byte("#!/bin/sh\n# a stand-in for " + b + "\n")
			if err := os.WriteFile(filepath.Join(dir, "artifacts", b), stand, 0o755); err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(stand)
			pins[b] = hex.EncodeToString(sum[:])
		}
		var err error
		if text, err = spec.SetPins(file, text, pins); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(file, text, 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// Packaged returns the spec at file (an example, say) with binaries.mode
// packaged instead of upstream, so that baking it needs only the stand-ins
// Write pins.
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

// Line returns the number of the first line of file that contains substr,
// for an error message's file:line (Write adds lines to a spec).
func Line(t testing.TB, file, substr string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	for i, l := range strings.Split(string(data), "\n") {
		if strings.Contains(l, substr) {
			return i + 1
		}
	}
	t.Fatalf("%s has no line with %q", file, substr)
	return 0
}
