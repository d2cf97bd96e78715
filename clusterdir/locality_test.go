package clusterdir

import (
	"bytes"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

// entry is one thing under the cluster directory: a file's mode and
// bytes, a symlink's target, or a directory.
type entry struct {
	mode fs.FileMode
	data []byte
}

// snapshot reads everything under dir but the lock file (the stat cache
// of the run).
func snapshot(t *testing.T, dir string) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == output.LockFile {
			return nil
		}
		st, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := entry{mode: st.Mode()}
		switch {
		case st.Mode().IsRegular():
			e.data, err = os.ReadFile(p)
		case st.Mode()&fs.ModeSymlink != 0:
			var target string
			target, err = os.Readlink(p)
			e.data = []byte(target)
		}
		out[filepath.ToSlash(rel)] = e
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestAddRemoveWorkerLocality generates an example, adds a worker, and
// compares every node's outputs (nodes/<node>/: overlay.tar, proxmox.conf,
// cloud-init, seed.iso, ignition.json, and for the seed the rootfs/ trees
// of generate --rootfs) byte for byte: none
// may change but the new worker's, and the gateway's, whose /etc/hosts
// lists every node for the bastion (common.hostsPeerTable). The lbs list
// controllers and lbs, not workers: they stay. The other nodes' PKI files
// and kubeconfigs stay too. Then the worker is removed again: the cluster
// directory is what it was before it came, byte for byte, directories
// included: its outputs, its kubelet certificate, key and kubeconfig gone.
func TestAddRemoveWorkerLocality(t *testing.T) {
	cases := []struct {
		example, worker, line string
		trees                 Trees
	}{
		{seed, "worker3", "    - {name: worker3, roles: [worker], target: lxc, address: 10.240.0.33/24, vmid: 233}\n", TreesOn},
		// KVM controllers booted by cloud-init (seed.iso), a Flatcar worker (ignition.json).
		{"../examples/mixed.yaml", "w4", "    - {name: w4, roles: [worker], target: kvm, address: 192.168.50.24/24, vmid: 324}\n", TreesAsBefore},
	}
	for _, tc := range cases {
		t.Run(filepath.Base(tc.example), func(t *testing.T) {
			data, err := os.ReadFile(tc.example)
			if err != nil {
				t.Fatal(err)
			}
			doc := load(t, tc.example, string(data))
			out := t.TempDir()
			dir := generateWith(t, doc, Options{Out: out, Rootfs: tc.trees}).Dir
			before := snapshot(t, dir)

			bigger := load(t, tc.example, string(data)+tc.line)
			generate(t, bigger, out)
			after := snapshot(t, dir)

			// Nodes whose role needs to know every node.
			cluster := map[string]bool{}
			for _, n := range doc.Cluster.NodesWith(spec.RoleGateway) {
				cluster[n.Name] = true
			}
			for _, p := range slices.Sorted(maps.Keys(before)) {
				node, ok := nodeOf(p)
				b, a := before[p], after[p]
				switch {
				case ok && cluster[node]:
				case ok || strings.HasPrefix(p, "pki/") || strings.HasPrefix(p, "kubeconfigs/"):
					if a.mode != b.mode || !bytes.Equal(a.data, b.data) {
						t.Errorf("adding %s changed %s", tc.worker, p)
					}
				}
			}
			var added []string
			for p := range after {
				if _, ok := before[p]; ok {
					continue
				}
				if node, ok := nodeOf(p); ok && node != tc.worker || !ok && !strings.HasPrefix(p, "nodes/"+tc.worker) && !strings.Contains(p, "kubelet-"+tc.worker) {
					t.Errorf("adding %s added %s", tc.worker, p)
				}
				added = append(added, p)
			}
			for _, want := range []string{"nodes/" + tc.worker + "/overlay.tar", "pki/kubelet-" + tc.worker + ".crt", "pki/kubelet-" + tc.worker + ".key", "kubeconfigs/kubelet-" + tc.worker + ".kubeconfig"} {
				if !slices.Contains(added, want) {
					t.Errorf("adding %s did not write %s", tc.worker, want)
				}
			}

			// Removing it again.
			generate(t, doc, out)
			again := snapshot(t, dir)
			for _, p := range slices.Sorted(maps.Keys(again)) {
				if b, ok := before[p]; !ok {
					t.Errorf("after removing %s: %s is left", tc.worker, p)
				} else if a := again[p]; a.mode != b.mode || !bytes.Equal(a.data, b.data) {
					t.Errorf("after removing %s: %s differs from before it came", tc.worker, p)
				}
			}
			for p := range before {
				if _, ok := again[p]; !ok {
					t.Errorf("after removing %s: %s is gone", tc.worker, p)
				}
			}
		})
	}
}

// nodeOf returns the node whose outputs hold p (nodes/<node>/...).
func nodeOf(p string) (string, bool) {
	rest, ok := strings.CutPrefix(p, "nodes/")
	if !ok {
		return "", false
	}
	node, _, _ := strings.Cut(rest, "/")
	return node, true
}
