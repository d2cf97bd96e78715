package clusterdir

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

const seed = "../examples/seed-lxc.yaml"

// variant is the seed with worker1's memory doubled (the same number of
// digits: the files keep their sizes) and, with lb3, one node more.
func variant(t *testing.T, lb3 bool) string {
	t.Helper()
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(data), "vmid: 231, cores: 8, memoryMiB: 16384", "vmid: 231, cores: 8, memoryMiB: 32768", 1)
	if lb3 {
		s += "    - {name: lb3, roles: [lb], target: lxc, address: 10.240.0.43/24, vmid: 243, cores: 1, memoryMiB: 512}\n"
	}
	return s
}

func load(t *testing.T, name, text string) *spec.Document {
	t.Helper()
	if text == "" {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		text = string(data)
	}
	doc, err := spec.Parse(name, filepath.Dir(seed), []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatal(is)
	}
	return doc
}

func generate(t *testing.T, doc *spec.Document, out string) *Result {
	t.Helper()
	return generateWith(t, doc, Options{Out: out})
}

// generateWith runs generate with o, failing t on an error.
func generateWith(t *testing.T, doc *spec.Document, o Options) *Result {
	t.Helper()
	res, err := Run(context.Background(), doc, o)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// consistent checks that every file of the manifest is on disk with its
// sha256 and mode, and returns the manifest's paths.
func consistent(t *testing.T, dir string) map[string]output.Artifact {
	t.Helper()
	all, err := output.ReadManifest(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range all {
		p := filepath.Join(dir, a.Path)
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", a.Path, err)
			continue
		}
		var content []byte
		if st.Mode()&fs.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			content = []byte(target)
		} else {
			content, _ = os.ReadFile(p)
			if want := a.Mode; want != "" && want != modeOf(st) {
				t.Errorf("%s: mode %s, manifest %s", a.Path, modeOf(st), want)
			}
		}
		if sum := sha256.Sum256(content); hex.EncodeToString(sum[:]) != a.SHA256 {
			t.Errorf("%s: sha256 differs from the manifest", a.Path)
		}
	}
	return all
}

func modeOf(st fs.FileInfo) string {
	if st.Mode()&fs.ModeSymlink != 0 {
		return "symlink"
	}
	return fmt.Sprintf("%04o", st.Mode().Perm())
}

// TestInterruptedRunRepaired: a run of another spec killed before its
// manifest (simulated: its manifest is replaced by the one before) leaves
// files of that spec behind, of the same sizes; a rerun of the first spec
// must put its own bytes back, not take the directory over as unchanged.
func TestInterruptedRunRepaired(t *testing.T) {
	out := t.TempDir()
	a := load(t, seed, "")
	dir := generate(t, a, out).Dir
	manifest, err := os.ReadFile(filepath.Join(dir, output.ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	conf := filepath.Join(dir, "nodes/worker1/proxmox.conf")
	want, _ := os.ReadFile(conf)
	generate(t, load(t, "variant.yaml", variant(t, false)), out)
	if got, _ := os.ReadFile(conf); string(got) == string(want) {
		t.Fatal("the variant did not change worker1's proxmox.conf")
	}
	if err := os.WriteFile(filepath.Join(dir, output.ManifestFile), manifest, 0o644); err != nil {
		t.Fatal(err)
	}
	res := generate(t, a, out)
	if got, _ := os.ReadFile(conf); string(got) != string(want) {
		t.Errorf("proxmox.conf still holds the variant's memory after a rerun (%d files changed)", len(res.Changed))
	}
	consistent(t, dir)
}

// TestRerunRepairsBytesAndModes: a same-size edit (of a rootfs/ tree's
// file) and wrong modes are put right by a rerun with unchanged inputs.
func TestRerunRepairsBytesAndModes(t *testing.T) {
	out := t.TempDir()
	doc := load(t, seed, "")
	dir := generateWith(t, doc, Options{Out: out, Rootfs: TreesOn}).Dir
	hosts := filepath.Join(dir, "nodes/worker1/rootfs/etc/hosts")
	orig, _ := os.ReadFile(hosts)
	tampered := []byte(strings.Replace(string(orig), "127.0.0.1", "127.0.0.2", 1))
	if len(tampered) != len(orig) || string(tampered) == string(orig) {
		t.Fatal("no same-size edit of /etc/hosts")
	}
	os.WriteFile(hosts, tampered, 0o644)
	// worker2's proxmox.conf lies in worker2's part of the outputs but is
	// written with the cluster files: an edit of it must be put right too.
	conf := filepath.Join(dir, "nodes/worker2/proxmox.conf")
	origConf, _ := os.ReadFile(conf)
	if err := os.WriteFile(conf, []byte(strings.Replace(string(origConf), "cores: 8", "cores: 9", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"pki/ca.key", "pki/etcd/ca.key", "pki/sa.key", "pki/encryption.key", "pki/admin.key", "kubeconfigs/admin.kubeconfig", "nodes/worker1/overlay.tar"} {
		if err := os.Chmod(filepath.Join(dir, p), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	res := generate(t, doc, out)
	if got, _ := os.ReadFile(hosts); string(got) != string(orig) {
		t.Error("a same-size edit survived the rerun")
	}
	if got, _ := os.ReadFile(conf); string(got) != string(origConf) {
		t.Error("an edit of worker2's proxmox.conf survived the rerun")
	}
	if len(res.Changed) != 9 {
		t.Errorf("changed %v, want the 9 files put right", res.Changed)
	}
	for p, a := range consistent(t, dir) {
		if strings.HasSuffix(p, ".key") && a.Mode != "0600" {
			t.Errorf("%s: manifest mode %s", p, a.Mode)
		}
	}
}

// TestSymlinkedDirsRefused: pki/, kubeconfigs/ and a node directory that
// are symlinks stop the run with an error naming the link, and the link's
// target receives nothing.
func TestSymlinkedDirsRefused(t *testing.T) {
	doc := load(t, seed, "")
	for _, link := range []string{"pki", "pki/etcd", "kubeconfigs", "nodes", "nodes/worker1", "nodes/worker1/rootfs", "proxmox"} {
		t.Run(strings.ReplaceAll(link, "/", "_"), func(t *testing.T) {
			out, elsewhere := t.TempDir(), t.TempDir()
			p := filepath.Join(out, "kublxc", link)
			os.MkdirAll(filepath.Dir(p), 0o755)
			if err := os.Symlink(elsewhere, p); err != nil {
				t.Fatal(err)
			}
			_, err := Run(context.Background(), doc, Options{Out: out, Rootfs: TreesOn})
			if err == nil || !strings.Contains(err.Error(), p+" is a symlink") {
				t.Errorf("err = %v, want %s refused", err, p)
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) > 0 {
				t.Errorf("the link target received %d entries", len(ents))
			}
		})
	}
}

// TestRemovedNodeBehindSymlink: the files of a node that left the spec are
// not removed through a symlinked node directory.
func TestRemovedNodeBehindSymlink(t *testing.T) {
	out, elsewhere := t.TempDir(), t.TempDir()
	dir := generate(t, load(t, "variant.yaml", variant(t, true)), out).Dir
	node := filepath.Join(dir, "nodes/lb3")
	if err := os.Rename(node, filepath.Join(elsewhere, "lb3")); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(elsewhere, "lb3"), node)
	_, err := Run(context.Background(), load(t, seed, ""), Options{Out: out})
	if err == nil || !strings.Contains(err.Error(), node+" is a symlink") {
		t.Errorf("err = %v, want the symlinked node directory refused", err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "lb3/proxmox.conf")); err != nil {
		t.Errorf("a file behind the symlink was removed: %v", err)
	}
}

// TestHostileSpecWritesNothing: a spec changed in Go after validation (so
// only the generators' own check stands in the way) with a node name that
// climbs out of nodes/ and a cluster name that climbs out of the output
// directory is refused before the first write.
func TestHostileSpecWritesNothing(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*spec.Document)
	}{
		{"node name", func(d *spec.Document) { d.Cluster.Spec.Nodes[0].Name = "../../escape" }},
		{"cluster name", func(d *spec.Document) { d.Cluster.Metadata.Name = "../escape" }},
		{"storage line", func(d *spec.Document) {
			d.Cluster.Spec.Proxmox.Storage = "local\nlxc.apparmor.profile: unconfined"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc := load(t, seed, "")
			tc.mutate(doc)
			parent := t.TempDir()
			out := filepath.Join(parent, "out")
			_, err := Run(context.Background(), doc, Options{Out: out})
			if err == nil || !strings.Contains(err.Error(), "cannot be written safely") {
				t.Fatalf("Run: %v, want the generators' check to refuse", err)
			}
			var left []string
			filepath.WalkDir(parent, func(p string, _ os.DirEntry, _ error) error {
				if p != parent {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("written before the refusal: %v", left)
			}
		})
	}
}

// TestSnippetsTooBig: a VM whose cloud-init user-data passes the 1 MiB
// Proxmox reads of a cicustom snippet (here with 6,000 SSH keys) is refused
// at generate time, naming the node and the file, and nothing is written.
func TestSnippetsTooBig(t *testing.T) {
	doc := load(t, "../examples/seed-kvm.yaml", "")
	key := doc.Cluster.Spec.SSH.AuthorizedKeys[0]
	for i := range 6000 {
		doc.Cluster.Spec.SSH.AuthorizedKeys = append(doc.Cluster.Spec.SSH.AuthorizedKeys, fmt.Sprintf("%s ops%d@example.com", strings.Join(strings.Fields(key)[:2], " "), i))
	}
	out := filepath.Join(t.TempDir(), "out")
	_, err := Run(context.Background(), doc, Options{Out: out})
	if err == nil || !strings.Contains(err.Error(), "/cloud-init/user-data is ") || !strings.Contains(err.Error(), "more than the 1 MiB Proxmox reads of a cicustom snippet") {
		t.Fatalf("Run: %v, want user-data refused for its size", err)
	}
}

// TestNodeFiles: every file generate records for a node lies in one of
// its nodefiles artifacts, recorded with that artifact's kind, and the
// examples between them write each artifact (Ignition made for a node booted
// by Ignition without a sysext image; rootfs/ trees asked for).
func TestNodeFiles(t *testing.T) {
	seen := map[nodefiles.Artifact]bool{}
	text := ""
	for _, ex := range []string{"../examples/mixed.yaml", "../examples/seed-kvm.yaml", "ignition"} {
		name := ex
		if ex == "ignition" {
			// w3 with role gateway: booted by Ignition, no sysext image.
			name = "../examples/mixed.yaml"
			data, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			text = strings.Replace(string(data), "{name: w3,  roles: [worker], target: kvm", "{name: w3,  roles: [gateway], target: kvm", 1)
		}
		res := generateWith(t, load(t, name, text), Options{Out: t.TempDir(), Rootfs: TreesOn})
		for p, a := range consistent(t, res.Dir) {
			if a.Node == "" || !strings.HasPrefix(p, nodefiles.NodesDir+"/") {
				continue // a node's certificates and kubeconfigs are the cluster's
			}
			var in *nodefiles.Artifact
			for _, f := range nodefiles.All {
				if f.Path(a.Node) == p || strings.HasPrefix(p, f.Path(a.Node)+"/") {
					in = &f
				}
			}
			switch {
			case in == nil:
				t.Errorf("%s: %s is in no artifact of node %s", ex, p, a.Node)
			case a.Kind != in.Kind:
				t.Errorf("%s: %s has kind %s, its artifact %s kind %s", ex, p, a.Kind, in.Name, in.Kind)
			default:
				seen[*in] = true
			}
		}
	}
	for _, f := range nodefiles.All {
		if !seen[f] {
			t.Errorf("no example wrote %s", f.Name)
		}
	}
}
