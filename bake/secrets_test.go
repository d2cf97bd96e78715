package bake

import (
	"archive/tar"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/gateway"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
)

// loadSpec writes data as a spec in a temporary directory and loads it.
func loadSpec(t *testing.T, data string) *spec.Document {
	t.Helper()
	return loadSpecIn(t, t.TempDir(), []byte(data))
}

// treeSecrets are the paths of the secrets in node's tree.
func treeSecrets(t *testing.T, x *nodegen.Context, node string) []string {
	t.Helper()
	n, ok := x.C.Node(node)
	if !ok {
		t.Fatalf("no node %s", node)
	}
	tr, err := generators.Node(x, n)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range tr.Entries() {
		if e.Secret {
			out = append(out, e.Path)
		}
	}
	return out
}

// secretWant is what an artifact must be: its mode, and secrets it holds
// (nil: none).
type secretWant struct {
	mode    os.FileMode
	secrets []string
}

// manifestEntry is what checkSecrets reads of a bake-manifest.json entry.
type manifestEntry struct {
	Path    string
	Secret  *bool
	Secrets []string
}

// checkSecrets checks the mode of every result against want (by subject),
// that its .sha256 is readable by all, and that bake-manifest.json marks
// the artifacts holding secrets with all of them: those of the node's
// tree (node ""), else those of want.
func checkSecrets(t *testing.T, x *nodegen.Context, out string, res []Result, want map[string]secretWant) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(out, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Artifacts []manifestEntry }
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	if len(m.Artifacts) != len(res) {
		t.Fatalf("%d results, %d manifest entries:\n%s", len(res), len(m.Artifacts), data)
	}
	for _, r := range res {
		w, ok := want[r.Job.Subject]
		if !ok {
			t.Fatalf("unexpected artifact %s", r.Path)
		}
		for f, mode := range map[string]os.FileMode{r.Path: w.mode, r.Path + ".sha256": 0o644} {
			if st, err := os.Stat(f); err != nil || st.Mode().Perm() != mode {
				t.Errorf("%s: %v, want mode %04o", filepath.Base(f), st.Mode(), mode)
			}
		}
		i := slices.IndexFunc(m.Artifacts, func(a manifestEntry) bool { return a.Path == filepath.Base(r.Path) })
		if i < 0 {
			t.Fatalf("%s not in the manifest:\n%s", r.Path, data)
		}
		a := m.Artifacts[i]
		if a.Secret == nil || *a.Secret != (w.secrets != nil) {
			t.Errorf("%s: manifest secret = %v, want %v", a.Path, a.Secret, w.secrets != nil)
		}
		secrets := w.secrets
		if secrets != nil && r.Job.Node != "" {
			for _, s := range w.secrets {
				if !slices.Contains(treeSecrets(t, x, r.Job.Node), s) {
					t.Errorf("%s is no secret of %s's tree", s, r.Job.Node)
				}
			}
			secrets = treeSecrets(t, x, r.Job.Node)
		}
		if !slices.Equal(a.Secrets, secrets) {
			t.Errorf("%s: manifest secrets %q, want %q", a.Path, a.Secrets, secrets)
		}
	}
}

// TestSecretModesLXC bakes the templates of the seed example's gateway
// (the admin kubeconfig, with its client key), a controller (the cluster's
// CA and service-account keys) and a load balancer (no secret): only the
// first two are readable by their owner only, and the manifest says which
// secrets each holds.
func TestSecretModesLXC(t *testing.T) {
	doc := packagedExample(t, "seed-lxc.yaml")
	x, _ := generated(t, doc)
	var jobs []Job
	for _, n := range []string{"gw", "controller1", "lb1"} {
		j, err := Jobs(x, FormatLXC, n, "")
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j...)
	}
	out := t.TempDir()
	res, err := Run(context.Background(), Config{Doc: doc, Base: syntheticBase(t), Out: out, Parallel: 2}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	checkSecrets(t, x, out, res, map[string]secretWant{
		"gw":          {0o600, []string{gateway.Kubeconfig}},
		"controller1": {0o600, []string{"/var/lib/kubernetes/ca.key", "/var/lib/kubernetes/sa.key", "/var/lib/kubernetes/encryption-config.yaml"}},
		"lb1":         {0o644, nil},
	})
}

// kvmSecretsYAML is a cluster whose controller c1 is a KVM node booted by
// cloud-init, so that it has a node image and a role image.
const kvmSecretsYAML = `apiVersion: hardway.dev/v1alpha1
kind: Cluster
metadata:
  name: kvmsecrets
spec:
  kubernetesVersion: v1.34.2
  domain: example.com
  network:
    nodeCIDR: 10.240.0.0/24
    gateway: 10.240.0.1
  nodes:
    - {name: c1, roles: [controller, etcd], target: kvm, address: 10.240.0.21/24, vmid: 221, diskGiB: 1}
`

// TestSecretModesKVM bakes a controller's KVM node image (its raw and
// qcow2 files hold the CA and service-account keys) and the controller
// role image (no node's configuration, so no secret).
func TestSecretModesKVM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two KVM bakes")
	}
	need(t, "debugfs", "mkfs.vfat", "mcopy", "mmd", "qemu-img")
	src := filepath.Join(t.TempDir(), "cluster.yaml")
	if err := os.WriteFile(src, []byte(kvmSecretsYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	doc := pinnedSpec(t, src, controllerBins...)
	x, _ := generated(t, doc)
	base := kernelBase(t, 0, member{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/cloud-init", Mode: 0o755}})
	out := t.TempDir()
	var res []Result
	for _, sel := range [][2]string{{"c1", ""}, {"", "controller"}} {
		jobs, err := KVMJobs(x, sel[0], sel[1])
		if err != nil {
			t.Fatal(err)
		}
		r, err := RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: out}, KVMOptions{Formats: []string{ImageRaw, ImageQCOW2}}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		res = append(res, r...)
	}
	if len(res) != 4 {
		t.Fatalf("results %+v, want a raw and a qcow2 image each of c1 and the controller role", res)
	}
	checkSecrets(t, x, out, res, map[string]secretWant{
		"c1":         {0o600, []string{"/var/lib/kubernetes/ca.key", "/var/lib/kubernetes/sa.key"}},
		"controller": {0o644, nil},
	})
}
