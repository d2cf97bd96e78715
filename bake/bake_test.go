package bake

import (
	"archive/tar"
	"cmp"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

func TestJobs(t *testing.T) {
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	cases := []struct {
		node, role string
		want       []string
		err        string
	}{
		{want: []string{"cp1", "w1"}},
		{node: "w1", want: []string{"w1"}},
		{role: spec.RoleEtcd, want: []string{"cp1"}},
		{node: "w2", err: "target kvm"},
		{node: "nope", err: `no node "nope" in the spec (nodes: cp1, w1, w2)`},
		{role: spec.RoleLB, err: `no node of target lxc has role "lb" (their roles: controller, etcd, worker)`},
		{node: "cp1", role: spec.RoleEtcd, err: "not both"},
	}
	for _, c := range cases {
		jobs, err := Jobs(x, FormatLXC, c.node, c.role)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("node %q role %q: %v, want an error with %q", c.node, c.role, err, c.err)
			}
			continue
		}
		var got []string
		for _, j := range jobs {
			got = append(got, j.Subject)
			if j.Tree == nil || j.Tree.Node != j.Node {
				t.Errorf("job %s has tree %v", j.Subject, j.Tree)
			}
		}
		if err != nil || !slices.Equal(got, c.want) {
			t.Errorf("node %q role %q: %v %v, want %v", c.node, c.role, got, err, c.want)
		}
	}
	if _, err := Jobs(x, "qcow2", "", ""); err == nil {
		t.Error("unknown format accepted")
	}
}

// TestRoleBinariesCoverTrees: every pinned binary a node's tree names (a
// path in nodegen.PinnedBinDir, or in nodegen.SysextDir/bin on a node booted by
// Ignition) is a required row of one of its roles' tables, so bake installs
// it whatever the operator pins: a unit naming a binary its role does not
// list would find nothing there on the node.
func TestRoleBinariesCoverTrees(t *testing.T) {
	ref := regexp.MustCompile("(?:" + regexp.QuoteMeta(nodegen.PinnedBinDir) + "|" + regexp.QuoteMeta(nodegen.SysextDir+"/bin") + ")/([A-Za-z0-9._+-]+)")
	found := 0
	for _, ex := range []string{"seed-lxc", "seed-kvm", "mixed"} {
		x := commontest.Context(t, "../examples/"+ex+".yaml")
		for _, n := range x.C.Spec.Nodes {
			tr, err := generators.Node(x, n)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range tr.Entries() {
				for _, m := range ref.FindAllSubmatch(e.Data, -1) {
					found++
					name := string(m[1])
					if !slices.ContainsFunc(binaries, func(b binary) bool {
						return b.Name == name && b.Dir == nodegen.PinnedBinDir && !b.Optional && n.Has(b.role)
					}) {
						t.Errorf("%s: %s:%s names %s, which no role of %v requires in its Binaries", ex, n.Name, e.Path, m[0], n.Roles)
					}
				}
			}
		}
	}
	if found == 0 {
		t.Fatal("no tree names a pinned binary: the pattern is wrong")
	}
}

func TestBinariesLayer(t *testing.T) {
	all := append(append([]string{}, controllerBins...), "containerd", "containerd-shim-runc-v2", "ctr", "runc",
		"kubelet", "kube-proxy", "bridge", "host-local", "portmap", "loopback")
	t.Run("upstream", func(t *testing.T) {
		doc := testSpec(t, spec.ModeUpstream, fakeBins(t, all...), nil)
		l, err := binariesLayer(doc, "cp1", []string{spec.RoleController, spec.RoleEtcd}, pinCache{})
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, e := range l.Entries {
			got = append(got, e.Path)
			if e.Mode != 0o755 || e.UID != 0 {
				t.Errorf("%s: mode %v uid %d", e.Path, e.Mode, e.UID)
			}
		}
		want := []string{"/usr/local/bin/etcd", "/usr/local/bin/etcdctl", "/usr/local/bin/kube-apiserver",
			"/usr/local/bin/kube-controller-manager", "/usr/local/bin/kube-scheduler", "/usr/local/bin/kubectl"}
		if !slices.Equal(got, want) {
			t.Errorf("controller+etcd binaries %v, want %v (nothing of the worker's)", got, want)
		}
		w, err := binariesLayer(doc, "w1", []string{spec.RoleWorker}, pinCache{})
		if err != nil {
			t.Fatal(err)
		}
		paths := map[string]bool{}
		for _, e := range w.Entries {
			paths[e.Path] = true
		}
		if !paths["/opt/cni/bin/bridge"] || !paths["/usr/local/bin/kubelet"] || paths["/usr/local/bin/etcd"] || len(w.Entries) != 10 {
			t.Errorf("worker binaries %v", paths)
		}
	})
	t.Run("optional unpinned", func(t *testing.T) {
		bins := fakeBins(t, controllerBins...)
		delete(bins, "etcdctl")
		doc := testSpec(t, spec.ModeUpstream, bins, nil)
		l, err := binariesLayer(doc, "cp1", []string{spec.RoleEtcd}, pinCache{})
		if err != nil || len(l.Entries) != 1 || l.Entries[0].Path != "/usr/local/bin/etcd" {
			t.Errorf("%v %v, want etcd alone", l.Entries, err)
		}
	})
	t.Run("missing pin", func(t *testing.T) {
		bins := fakeBins(t, controllerBins...)
		delete(bins, "kube-apiserver")
		doc := testSpec(t, spec.ModeUpstream, bins, nil)
		_, err := binariesLayer(doc, "cp1", []string{spec.RoleController}, pinCache{})
		var mp *MissingPinError
		if !errors.As(err, &mp) || mp.Name != "kube-apiserver" || !strings.Contains(err.Error(), "role controller of cp1") {
			t.Errorf("err = %v, want a missing pin for kube-apiserver", err)
		}
	})
	// A file an optional row and a required row both name is required,
	// whichever row the table lists first.
	t.Run("required wins", func(t *testing.T) {
		bins := fakeBins(t, controllerBins...)
		delete(bins, "kubectl")
		doc := testSpec(t, spec.ModeUpstream, bins, nil)
		saved := binaries
		t.Cleanup(func() { binaries = saved })
		reversed := slices.Clone(saved)
		slices.Reverse(reversed)
		for _, table := range [][]binary{saved, reversed} {
			binaries = table
			_, err := binariesLayer(doc, "gw1", []string{spec.RoleGateway, spec.RoleController}, pinCache{})
			var mp *MissingPinError
			if !errors.As(err, &mp) || mp.Name != "kubectl" || mp.Role != spec.RoleController {
				t.Errorf("err = %v, want the controller's missing pin for kubectl", err)
			}
		}
	})
	t.Run("sha256 mismatch", func(t *testing.T) {
		wrong := strings.Repeat("ab", 32)
		bins := fakeBins(t, controllerBins...)
		doc := testSpec(t, spec.ModeUpstream, bins, map[string]string{"etcd": wrong})
		file := filepath.Join(doc.Dir, "artifacts", "etcd")
		data, _ := os.ReadFile(file)
		_, err := binariesLayer(doc, "cp1", []string{spec.RoleEtcd}, pinCache{})
		var hm *rootfs.HashMismatchError
		if !errors.As(err, &hm) {
			t.Fatalf("err = %v, want a hash mismatch", err)
		}
		for _, s := range []string{file, wrong, sha256hex(data), "spec.binaries.sha256.etcd"} {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("error %q does not name %s", err, s)
			}
		}
	})
	t.Run("packaged", func(t *testing.T) {
		doc := testSpec(t, spec.ModePackaged, nil, nil)
		l, err := binariesLayer(doc, "cp1", []string{spec.RoleController, spec.RoleEtcd, spec.RoleWorker}, pinCache{})
		var got []string
		for _, e := range l.Entries {
			got = append(got, e.Path)
		}
		// Kubernetes, which Debian does not package; not etcd, containerd,
		// runc or the CNI plugins, which the base's packages provide.
		want := []string{"/usr/local/bin/kube-apiserver", "/usr/local/bin/kube-controller-manager", "/usr/local/bin/kube-proxy",
			"/usr/local/bin/kube-scheduler", "/usr/local/bin/kubectl", "/usr/local/bin/kubelet"}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("packaged mode: %v %v, want %v", got, err, want)
		}
	})
}

func TestFileName(t *testing.T) {
	got := FileName(rootfs.OSRelease{ID: "debian", VersionID: "12"}, "etcd1", "v1.34.2")
	if got != "debian-12-hardway-etcd1_1.34.2_amd64.tar.zst" {
		t.Errorf("FileName = %s", got)
	}
}

// bakeOne bakes node ("": every lxc node) of x's spec doc from base into out.
func bakeOne(t testing.TB, ctx context.Context, x *nodegen.Context, doc *spec.Document, base, out, node string) ([]Result, error) {
	t.Helper()
	jobs, err := Jobs(x, FormatLXC, node, "")
	if err != nil {
		t.Fatal(err)
	}
	return Run(ctx, Config{Doc: doc, Base: base, Out: out, Parallel: 2}, jobs)
}

// TestBakeSynthetic bakes cp1 from a synthetic base and checks the template:
// pct's rules, sysprep, the layers, the sidecar and the manifest.
func TestBakeSynthetic(t *testing.T) {
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, controllerBins...), nil)
	base := syntheticBase(t)
	x, _ := generated(t, doc)
	out := t.TempDir()
	// What a killed bake leaves: the next bake into the directory removes it
	// (the entries check at the end).
	if err := os.WriteFile(filepath.Join(out, ".old.tar.zst.tmp-42"), []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(out, ".old.work-43", "etc"), 0o555); err != nil {
		t.Fatal(err)
	}
	jobs, err := Jobs(x, FormatLXC, "cp1", "")
	if err != nil {
		t.Fatal(err)
	}
	epoch := emit.ParseEpoch("1700000000") // as SOURCE_DATE_EPOCH=1700000000 gives it
	res, err := Run(context.Background(), Config{Doc: doc, Base: base, Out: out, Parallel: 2, Epoch: epoch}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	name := "debian-12-hardway-cp1_1.34.2_amd64.tar.zst"
	if len(res) != 1 || res[0].Path != filepath.Join(out, name) {
		t.Fatalf("results %+v, want %s", res, name)
	}
	hs, data := listZstdTar(t, res[0].Path)
	byName := map[string]*tar.Header{}
	for _, h := range hs {
		byName[h.Name] = h
		if strings.HasPrefix(h.Name, "./dev/") && h.Name != "./dev/" {
			t.Errorf("%s below /dev", h.Name)
		}
		for k := range h.PAXRecords {
			if x, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok && !strings.HasPrefix(x, "user.") && x != "security.capability" {
				t.Errorf("%s keeps xattr %s", h.Name, x)
			}
		}
		if h.ModTime.Unix() > 1700000000 || h.Uname != "" {
			t.Errorf("%s: mtime %v, uname %q", h.Name, h.ModTime, h.Uname)
		}
	}
	if byName["./sbin"] == nil || len(hs) < pctMinMembers || byName["./dev/"] == nil {
		t.Errorf("pct: sbin %v, %d members, /dev %v", byName["./sbin"], len(hs), byName["./dev/"])
	}
	if byName["./usr/bin/ping"].PAXRecords["SCHILY.xattr.security.capability"] == "" {
		t.Error("security.capability of ./usr/bin/ping dropped")
	}
	for _, gone := range []string{"./etc/ssh/ssh_host_ed25519_key", "./etc/ssh/ssh_host_ed25519_key.pub", "./dev/null"} {
		if byName[gone] != nil {
			t.Errorf("%s kept", gone)
		}
	}
	if string(data["./etc/machine-id"]) != "" || string(data["./etc/hostname"]) != "cp1\n" {
		t.Errorf("machine-id %q hostname %q", data["./etc/machine-id"], data["./etc/hostname"])
	}
	for _, want := range []string{"./usr/local/bin/etcd", "./usr/local/bin/kube-apiserver", "./etc/systemd/system/etcd.service",
		"./etc/systemd/system/" + rootfs.SSHKeygenUnit, "./etc/systemd/system/multi-user.target.wants/" + rootfs.SSHKeygenUnit} {
		if byName[want] == nil {
			t.Errorf("missing %s", want)
		}
	}
	if h := byName["./usr/local/bin/etcd"]; h != nil && (h.Mode != 0o755 || string(data[h.Name]) != "#!/bin/sh\necho fake etcd\n") {
		t.Errorf("etcd: mode %o content %q", h.Mode, data[h.Name])
	}
	side, err := os.ReadFile(res[0].Path + ".sha256")
	if err != nil || string(side) != res[0].SHA256+"  "+name+"\n" {
		t.Errorf("sidecar %q %v", side, err)
	}
	man, err := os.ReadFile(filepath.Join(out, ManifestFile))
	if err != nil || !strings.Contains(string(man), `"kind": "lxc-template"`) || !strings.Contains(string(man), res[0].SHA256) {
		t.Errorf("manifest %s %v", man, err)
	}
	if got := entries(t, out); !slices.Equal(got, []string{ManifestFile, name, name + ".sha256"}) {
		t.Errorf("output dir holds %v", got)
	}

	// Progress: the bake, which reads the base once, done.
	p := &Progress{}
	if _, err := Run(context.Background(), Config{Doc: doc, Base: base, Out: t.TempDir(), Progress: p}, jobs); err != nil {
		t.Fatal(err)
	}
	steps := p.Steps()
	if len(steps) != 1 || steps[0].Name != provisional(jobs[0].Subject, "tar.zst") {
		t.Errorf("steps %v", steps)
	}
	for _, s := range steps {
		if s.Fraction() != 1 || s.Read.Load() != s.Total || s.Members.Load() == 0 && s.Name == name {
			t.Errorf("step %s: fraction %v, read %d of %d, %d members", s.Name, s.Fraction(), s.Read.Load(), s.Total, s.Members.Load())
		}
	}

	// The same inputs give the same bytes, also baked in parallel with another node.
	out2 := t.TempDir()
	if _, err := bakeOne(t, context.Background(), x, doc, base, out2, ""); err == nil {
		t.Fatal("baking w1 without its binaries pinned succeeded")
	}
	res2, err := Run(context.Background(), Config{Doc: doc, Base: base, Out: out2, Parallel: 2, Epoch: epoch}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(res[0].Path)
	b, _ := os.ReadFile(res2[0].Path)
	if string(a) != string(b) {
		t.Error("two bakes of the same inputs differ")
	}
}

// TestBakeBadInputs: a bad input is an error that says what is wrong, and
// no artifact (nor temporary file) is left behind, whether one template
// reads the base or two share one read of it (fanOut).
func TestBakeBadInputs(t *testing.T) {
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, append(workerBins, controllerBins...)...), nil)
	x, _ := generated(t, doc)
	good, err := os.ReadFile(syntheticBase(t))
	if err != nil {
		t.Fatal(err)
	}
	write := func(data []byte) string {
		p := filepath.Join(t.TempDir(), "base.tar.zst")
		os.WriteFile(p, data, 0o644)
		return p
	}
	corrupt := append([]byte{}, good...)
	corrupt[len(corrupt)/2] ^= 0xff
	cases := []struct {
		name, base string
		want       []string
	}{
		{"truncated", write(good[:len(good)*2/3]), []string{"truncated zstd stream"}},
		{"corrupt", write(corrupt), []string{"zstd"}},
		{"not a tarball", write([]byte("#!/bin/sh\necho this is not a tarball\n")), []string{"not a tar archive"}},
		{"missing", filepath.Join(t.TempDir(), "nope.tar.zst"), []string{"no such file"}},
		{"no systemd", syntheticBase(t, "./usr/lib/systemd/systemd"), []string{"no systemd", "/lib/systemd/systemd"}},
		{"no sbin", syntheticBase(t, "./sbin"), []string{"no /sbin"}},
	}
	for _, c := range cases {
		for _, node := range []string{"cp1", ""} {
			t.Run(c.name+"/"+cmp.Or(node, "all"), func(t *testing.T) {
				out := t.TempDir()
				_, err := bakeOne(t, context.Background(), x, doc, c.base, out, node)
				t.Log(err)
				for _, w := range c.want {
					if err == nil || !strings.Contains(err.Error(), w) {
						t.Errorf("err = %v, want it to say %q", err, w)
					}
				}
				if got := entries(t, out); len(got) != 0 {
					t.Errorf("output dir holds %v", got)
				}
			})
		}
	}
	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Millisecond)
		defer cancel()
		<-ctx.Done()
		out := t.TempDir()
		_, err := bakeOne(t, ctx, x, doc, syntheticBase(t), out, "cp1")
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
		if got := entries(t, out); len(got) != 0 {
			t.Errorf("output dir holds %v", got)
		}
	})
}

// TestBakeBadPin: a pinned binary whose bytes are not the pin's (changed
// after `hardway pin`, same size) fails the bake, naming the pin, and
// leaves nothing in the output directory: for the worker's template alone
// and for every LXC node baked from one read of the base.
func TestBakeBadPin(t *testing.T) {
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, append(workerBins, controllerBins...)...), nil)
	x, _ := generated(t, doc)
	kubelet := filepath.Join(doc.BinariesDir(), "kubelet")
	data, err := os.ReadFile(kubelet)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-2] ^= 0x20
	if err := os.WriteFile(kubelet, data, 0o755); err != nil {
		t.Fatal(err)
	}
	base := syntheticBase(t)
	for _, node := range []string{"w1", ""} {
		t.Run(cmp.Or(node, "all"), func(t *testing.T) {
			out := t.TempDir()
			_, err := bakeOne(t, context.Background(), x, doc, base, out, node)
			if err == nil || !strings.Contains(err.Error(), "spec.binaries.sha256.kubelet") {
				t.Errorf("err = %v, want it to name spec.binaries.sha256.kubelet", err)
			}
			if got := entries(t, out); len(got) != 0 {
				t.Errorf("output dir holds %v", got)
			}
		})
	}
}
