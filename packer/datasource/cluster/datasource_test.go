package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"
	"github.com/zclconf/go-cty/cty"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/plugintest"
)

func TestExecute(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	var d Datasource
	if err := d.Configure(map[string]interface{}{"spec": file, "output_directory": "build"}); err != nil {
		t.Fatalf("Configure: %v", err)
	}
	v, err := d.Execute()
	if err != nil {
		t.Fatal(err)
	}
	if errs := v.Type().TestConformance(hcldec.ImpliedType(d.OutputSpec())); len(errs) > 0 {
		t.Errorf("output type %s does not conform to the output spec: %v", v.Type().FriendlyName(), errs)
	}
	str := func(v cty.Value) string { return v.AsString() }
	strs := func(v cty.Value) []string {
		var out []string
		for _, e := range v.AsValueSlice() {
			out = append(out, e.AsString())
		}
		return out
	}
	m := v.AsValueMap()
	if str(m["cluster"]) != "pkrtest" || str(m["kubernetes_version"]) != "v1.34.2" || str(m["directory"]) != "build/pkrtest" ||
		str(m["pki_dir"]) != "build/pkrtest/pki" || str(m["manifest"]) != "build/pkrtest/manifest.json" || str(m["bake_directory"]) != "build/pkrtest/bake" ||
		str(m["gateway"]) != "10.240.0.1" {
		t.Errorf("cluster values: %#v", m)
	}
	for key, want := range map[string][]string{
		"roles":     {"controller", "etcd", "gateway", "worker"},
		"lxc_nodes": {"cp1", "w1"},
		"kvm_nodes": {"w2", "w3"},
		"dns":       {"10.240.0.1"},
	} {
		if got := strs(m[key]); !slices.Equal(got, want) {
			t.Errorf("%s = %q, want %q", key, got, want)
		}
	}
	nodes := m["nodes"].AsValueSlice()
	if len(nodes) != 4 {
		t.Fatalf("%d nodes, want 4", len(nodes))
	}
	cp1 := nodes[0].AsValueMap()
	vmid, _ := cp1["vmid"].AsBigFloat().Int64()
	if str(cp1["name"]) != "cp1" || !slices.Equal(strs(cp1["roles"]), []string{"controller", "etcd"}) || str(cp1["target"]) != "lxc" ||
		str(cp1["address"]) != "10.240.0.21/24" || str(cp1["ip"]) != "10.240.0.21" || str(cp1["fqdn"]) != "cp1.example.com" || vmid != 221 ||
		str(cp1["overlay_tar"]) != "build/pkrtest/nodes/cp1/overlay.tar" || str(cp1["seed_iso"]) != "" {
		t.Errorf("cp1 = %#v", cp1)
	}
	w2, w3 := nodes[2].AsValueMap(), nodes[3].AsValueMap()
	if str(w2["seed_iso"]) != "build/pkrtest/nodes/w2/seed.iso" || str(w2["ignition"]) != "" || str(w3["ignition"]) != "build/pkrtest/nodes/w3/ignition.json" {
		t.Errorf("w2 = %#v\nw3 = %#v", w2, w3)
	}
}

func TestConfigureInvalid(t *testing.T) {
	broken := plugintest.Write(t, strings.Replace(plugintest.Cluster, "vmid: 231", "vmid: 221", 1))
	for _, tc := range []struct {
		raw  map[string]interface{}
		want []string
	}{
		{map[string]interface{}{}, []string{"spec: required"}},
		{map[string]interface{}{"spec": "/nonexistent.yaml"}, []string{"spec: stat /nonexistent.yaml: no such file"}},
		{map[string]interface{}{"spec": broken}, []string{"spec: " + broken + fmt.Sprintf(":%d:", plugintest.Line(t, broken, "name: w1")), "spec.nodes[1].vmid: 221 is used by cp1 too"}},
	} {
		var d Datasource
		err := d.Configure(tc.raw)
		if _, ok := err.(*packersdk.MultiError); !ok {
			t.Fatalf("Configure(%v) = %T %v, want a *packer.MultiError", tc.raw, err, err)
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("Configure(%v) = %q, want it to contain %q", tc.raw, err, w)
			}
		}
	}
}

// TestPathsAreGenerated checks every path the data source returns against
// what `hardway generate` writes: the paths of manifest.json, the rootfs
// directory (of generate --rootfs), and that a node has no path for a
// file it does not get.
func TestPathsAreGenerated(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	doc, _, errs := load.Spec("spec", file)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	out := t.TempDir()
	if _, _, err := load.Generate(context.Background(), doc, out, nil); err != nil {
		t.Fatal(err)
	}
	// rootfs names the trees of generate --rootfs.
	if _, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: out, Rootfs: clusterdir.TreesOn}); err != nil {
		t.Fatal(err)
	}
	o := Describe(doc, out)
	data, err := os.ReadFile(o.Manifest)
	if err != nil {
		t.Fatal(err)
	}
	var m struct{ Artifacts []output.Artifact }
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	written := map[string]bool{}
	for _, a := range m.Artifacts {
		written[filepath.Join(o.Directory, filepath.FromSlash(a.Path))] = true
	}
	for _, dir := range []string{o.Directory, o.PKIDir} {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			t.Errorf("%s is not a directory: %v", dir, err)
		}
	}
	for _, n := range o.Nodes {
		for name, p := range map[string]string{"overlay_tar": n.OverlayTar, "proxmox_conf": n.ProxmoxConf, "seed_iso": n.SeedISO, "ignition": n.Ignition} {
			if p != "" && !written[p] {
				t.Errorf("%s %s = %s: generate wrote no such file", n.Name, name, p)
			}
		}
		for name, p := range map[string]string{"rootfs": n.Rootfs, "cloud_init": n.CloudInit} {
			if p == "" {
				continue
			}
			if st, err := os.Stat(p); err != nil || !st.IsDir() {
				t.Errorf("%s %s = %s: not a directory generate wrote (%v)", n.Name, name, p, err)
			}
		}
		for _, f := range []struct{ name, file, path string }{{"seed_iso", "seed.iso", n.SeedISO}, {"ignition", "ignition.json", n.Ignition}} {
			if f.path == "" && written[filepath.Join(n.Directory, f.file)] {
				t.Errorf("%s has %s in the manifest, but %s is empty", n.Name, f.file, f.name)
			}
		}
	}
}
