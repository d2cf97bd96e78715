package lxc

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
	"github.com/hardway-dev/hardway/packer/internal/plugintest"
)

// base is a file where a base tarball is expected; Prepare only checks
// that it is a regular file (bake reads it).
func base(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "base.tar.zst")
	if err := os.WriteFile(f, []byte("not read by Prepare"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPrepareValid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	b := base(t)
	for _, tc := range []struct {
		name  string
		raw   map[string]interface{}
		nodes []string
	}{
		{"node", map[string]interface{}{"spec": file, "node": "cp1", "base_rootfs": b}, []string{"cp1"}},
		{"role", map[string]interface{}{"spec": file, "role": "worker", "base_rootfs": b}, []string{"w1"}},
		{"level", map[string]interface{}{"spec": file, "node": "w1", "base_rootfs": b, "compression_level": 3}, []string{"w1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bd Builder
			vars, warnings, err := bd.Prepare(tc.raw)
			if err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if len(warnings) > 0 {
				t.Errorf("warnings: %q", warnings)
			}
			if !slices.Equal(vars, bakeconfig.GeneratedVars()) {
				t.Errorf("generated vars %q, want %q", vars, bakeconfig.GeneratedVars())
			}
			var got []string
			for _, n := range bd.prepared.Nodes {
				got = append(got, n.Name)
			}
			if !slices.Equal(got, tc.nodes) {
				t.Errorf("nodes %q, want %q", got, tc.nodes)
			}
			if bd.config.OutputDirectory != "out" {
				t.Errorf("output_directory %q, want out", bd.config.OutputDirectory)
			}
			if want := filepath.Join("out", "pkrtest", "bake"); bd.config.ArtifactDirectory != want {
				t.Errorf("artifact_directory %q, want %q", bd.config.ArtifactDirectory, want)
			}
		})
	}
}

// TestPrepareInvalid checks that every problem of a configuration is
// reported at once, each naming its field.
func TestPrepareInvalid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	broken := plugintest.Write(t, strings.Replace(plugintest.Cluster, "address: 10.240.0.31/24", "address: 10.99.0.31/24", 1))
	b := base(t)
	for _, tc := range []struct {
		name string
		raw  map[string]interface{}
		want []string // one error each, in this order
	}{
		{"nothing", map[string]interface{}{}, []string{
			"base_rootfs: required", "spec: required", "node: required: set node (one node of target lxc) or role",
		}},
		{"missing files", map[string]interface{}{"spec": "/nonexistent/cluster.yaml", "node": "cp1", "base_rootfs": "/nonexistent/base.tar"}, []string{
			"base_rootfs: stat /nonexistent/base.tar: no such file", "spec: stat /nonexistent/cluster.yaml: no such file",
		}},
		{"unknown node", map[string]interface{}{"spec": file, "node": "etcd9", "base_rootfs": b, "compression_level": 19}, []string{
			"node: " + file + `: no node "etcd9" in the spec (nodes: cp1, w1, w2, w3)`,
			"compression_level: 19: this hardway version's bake library writes zstd level 3 only",
		}},
		{"kvm node", map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": filepath.Dir(b)}, []string{
			"base_rootfs: " + filepath.Dir(b) + " is not a regular file",
			"node w2 has target kvm; an LXC template is for target lxc nodes",
		}},
		{"unknown role", map[string]interface{}{"spec": file, "role": "lb", "base_rootfs": b}, []string{
			"role: " + file + `: no node of target lxc has role "lb" (their roles: controller, etcd, worker)`,
		}},
		{"node and role", map[string]interface{}{"spec": file, "node": "cp1", "role": "etcd", "base_rootfs": b}, []string{
			"node, role: set one of them, not both",
		}},
		{"invalid spec", map[string]interface{}{"spec": broken, "node": "w1", "base_rootfs": b}, []string{
			"spec: " + broken + fmt.Sprintf(":%d:57: spec.nodes[1].address: 10.99.0.31 is outside nodeCIDR", plugintest.Line(t, broken, "name: w1")),
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bd Builder
			_, _, err := bd.Prepare(tc.raw)
			merr, ok := err.(*packersdk.MultiError)
			if !ok {
				t.Fatalf("Prepare returned %T %v, want a *packer.MultiError", err, err)
			}
			if len(merr.Errors) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(merr.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				if got := merr.Errors[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d: %q does not contain %q", i, got, w)
				}
			}
		})
	}
}

// TestRunRole bakes the templates of a role with the real bake library:
// one per node, listed in the artifact with their checksums, and the
// generated data lists them in spec order.
func TestRunRole(t *testing.T) {
	file := plugintest.Packaged(t, "../../../examples/seed-lxc.yaml")
	out := t.TempDir()
	var bd Builder
	if _, _, err := bd.Prepare(map[string]interface{}{"spec": file, "role": "lb", "base_rootfs": plugintest.Base(t), "output_directory": out}); err != nil {
		t.Fatal(err)
	}
	a, err := bd.Run(context.Background(), packersdk.TestUi(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	files := a.Files()
	if len(files) != 3 {
		t.Fatalf("files %q, want the templates of lb, lb1 and lb2", files)
	}
	gd := a.State("generated_data").(map[string]interface{})
	var sums []string
	for i, n := range []string{"lb", "lb1", "lb2"} {
		want := filepath.Join(out, "kublxc", "bake", "debian-12-hardway-"+n+"_1.34.2_amd64.tar.zst")
		if files[i] != want {
			t.Errorf("file %d = %s, want %s", i, files[i], want)
		}
		data, err := os.ReadFile(files[i])
		if err != nil {
			t.Fatal(err)
		}
		// A load balancer's tree holds no secret: readable by all.
		checkMode(t, files[i], 0o644)
		sum := sha256.Sum256(data)
		sums = append(sums, hex.EncodeToString(sum[:]))
	}
	want := map[string]interface{}{
		"node": "lb,lb1,lb2", "roles": "lb", "vmid": "240,241,242",
		"artifact": strings.Join(files, ","), "sha256": strings.Join(sums, ","),
	}
	for k, v := range want {
		if gd[k] != v {
			t.Errorf("generated data %s = %v, want %v", k, gd[k], v)
		}
	}
}

// TestRunSecrets bakes the template of a controller, which holds the
// cluster's CA key among its node's secrets: it is readable by its owner
// only, as `hardway bake` makes it (the builder runs the same bake), and
// its checksum file by all.
func TestRunSecrets(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	out := t.TempDir()
	var bd Builder
	if _, _, err := bd.Prepare(map[string]interface{}{"spec": file, "node": "cp1", "base_rootfs": plugintest.Base(t), "output_directory": out}); err != nil {
		t.Fatal(err)
	}
	a, err := bd.Run(context.Background(), packersdk.TestUi(t), nil)
	if err != nil {
		t.Fatal(err)
	}
	files := a.Files()
	if len(files) != 1 {
		t.Fatalf("files %q, want cp1's template", files)
	}
	checkMode(t, files[0], 0o600)
	checkMode(t, files[0]+".sha256", 0o644)
}

// checkMode checks a file's permissions.
func checkMode(t *testing.T, file string, want os.FileMode) {
	t.Helper()
	st, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != want {
		t.Errorf("%s has mode %04o, want %04o", filepath.Base(file), st.Mode().Perm(), want)
	}
}
