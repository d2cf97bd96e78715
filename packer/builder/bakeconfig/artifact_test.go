package bakeconfig

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/spec"
)

// TestArtifact builds the artifacts of the three shapes of bake results:
// one node, a role baked per node (LXC templates), and a role image that
// carries no node (KVM), and destroys one.
func TestArtifact(t *testing.T) {
	dir := t.TempDir()
	file := func(name string) string {
		p := filepath.Join(dir, name)
		for _, f := range []string{p, p + ".sha256"} {
			if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return p
	}
	cp1 := spec.Node{Name: "cp1", Roles: []string{"controller", "etcd"}, VMID: 221}
	w1 := spec.Node{Name: "w1", Roles: []string{"worker"}, VMID: 231}
	w2 := spec.Node{Name: "w2", Roles: []string{"worker", "gateway"}, VMID: 232}
	tpl := file("debian-12-hardway-cp1_1.34.2_amd64.tar.zst")
	w1tpl, w2tpl := file("debian-12-hardway-w1_1.34.2_amd64.tar.zst"), file("debian-12-hardway-w2_1.34.2_amd64.tar.zst")
	img := file("debian-12-hardway-worker_1.34.2_amd64.qcow2")
	for _, tc := range []struct {
		name    string
		nodes   []spec.Node
		results []bake.Result
		want    map[string]interface{}
	}{
		{"node", []spec.Node{cp1}, []bake.Result{
			{Job: bake.Job{Subject: "cp1", Node: "cp1", Roles: cp1.Roles}, Path: tpl, SHA256: "abc"},
		}, map[string]interface{}{"node": "cp1", "roles": "controller,etcd", "vmid": "221", "artifact": tpl, "sha256": "abc"}},
		{"role per node", []spec.Node{w1, w2}, []bake.Result{
			{Job: bake.Job{Subject: "w1", Node: "w1", Roles: w1.Roles}, Path: w1tpl, SHA256: "s1"},
			{Job: bake.Job{Subject: "w2", Node: "w2", Roles: w2.Roles}, Path: w2tpl, SHA256: "s2"},
		}, map[string]interface{}{"node": "w1,w2", "roles": "worker,gateway", "vmid": "231,232", "artifact": w1tpl + "," + w2tpl, "sha256": "s1,s2"}},
		{"role image", []spec.Node{w1, w2}, []bake.Result{
			{Job: bake.Job{Subject: "worker", Roles: []string{"gateway", "worker"}}, Path: img, SHA256: "s3"},
		}, map[string]interface{}{"node": "w1,w2", "roles": "gateway,worker", "vmid": "231,232", "artifact": img, "sha256": "s3"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := NewArtifact("hardway.test", "Test images", tc.nodes, tc.results)
			var files, names []string
			for _, r := range tc.results {
				files = append(files, r.Path)
				names = append(names, filepath.Base(r.Path))
				if !strings.Contains(a.String(), "\n"+r.SHA256+"  "+r.Path) {
					t.Errorf("String() = %q, want %s with its sha256", a.String(), r.Path)
				}
			}
			if a.BuilderId() != "hardway.test" || a.Id() != strings.Join(names, ",") || !slices.Equal(a.Files(), files) {
				t.Errorf("artifact %q %q %q", a.BuilderId(), a.Id(), a.Files())
			}
			if !strings.HasPrefix(a.String(), "Test images (sha256sum -c <file>.sha256):") {
				t.Errorf("String() = %q", a.String())
			}
			gd, _ := a.State("generated_data").(map[string]interface{})
			if len(gd) != len(GeneratedVars()) {
				t.Errorf("generated data %v, want the keys %q", gd, GeneratedVars())
			}
			for k, v := range tc.want {
				if gd[k] != v {
					t.Errorf("generated data %s = %v, want %v", k, gd[k], v)
				}
			}
		})
	}

	a := NewArtifact("hardway.test", "Test images", []spec.Node{cp1}, []bake.Result{{Path: tpl, SHA256: "abc"}})
	if err := a.Destroy(); err != nil {
		t.Fatal(err)
	}
	left, _ := os.ReadDir(dir)
	if len(left) != 6 || slices.ContainsFunc(left, func(e os.DirEntry) bool { return strings.HasPrefix(e.Name(), filepath.Base(tpl)) }) {
		t.Errorf("Destroy of %s left %v", tpl, left)
	}
}
