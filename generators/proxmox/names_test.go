package proxmox_test

import (
	"io/fs"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/examples"
	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// debian12 is hack/base.sh's base, create-nodes.sh's default OS and OS_VERSION.
var debian12 = rootfs.OSRelease{ID: "debian", VersionID: "12"}

// bakeName is the file hardway bake writes for node n, from a Debian 12
// base, by bake's own selection (Jobs, KVMJobs) and naming (FileName,
// KVMFileName): its LXC template; for a KVM node its node image, or the
// role image of its roleImage, which bake makes for n (RoleNodes). "" for a
// node bake makes nothing for (boot: ignition).
func bakeName(t *testing.T, x *nodegen.Context, n spec.Node) string {
	t.Helper()
	k8s := x.C.Spec.KubernetesVersion
	if n.Target == spec.TargetLXC {
		jobs, err := bake.Jobs(x, bake.FormatLXC, n.Name, "")
		if err != nil || len(jobs) != 1 {
			t.Fatalf("%s: bake.Jobs: %v %v", n.Name, jobs, err)
		}
		return bake.FileName(debian12, jobs[0].Subject, k8s)
	}
	if n.BootsByIgnition() {
		return ""
	}
	node, role := n.Name, ""
	if n.RoleImage != "" {
		node, role = "", n.RoleImage
		if !slices.ContainsFunc(bake.RoleNodes(x.C, role), func(m spec.Node) bool { return m.Name == n.Name }) {
			t.Errorf("%s: the %s role image is not made for it", n.Name, role)
		}
	}
	jobs, err := bake.KVMJobs(x, node, role)
	if err != nil || len(jobs) != 1 {
		t.Fatalf("%s: bake.KVMJobs: %v %v", n.Name, jobs, err)
	}
	return bake.KVMFileName(debian12, jobs[0].Subject, k8s, bake.ImageQCOW2)
}

// missing matches the preflight's error for a template or image not uploaded.
var missing = regexp.MustCompile(`(?m)^error: ([0-9]+) \(([^)]*)\): no (\S+) to create it from`)

// TestCreateNodesNamesAreBakes: for every node of every example,
// create-nodes.sh asks for the very file hardway bake writes for it. Run
// with nothing uploaded, its preflight names, for each node, the template or
// image it lacks (and changes nothing); run with exactly bake's files
// uploaded, it creates every guest from them.
func TestCreateNodesNamesAreBakes(t *testing.T) {
	specs, err := fs.Glob(examples.FS, "*.yaml")
	if err != nil || len(specs) == 0 {
		t.Fatalf("examples: %v %v", specs, err)
	}
	roleImages := 0
	for _, ex := range specs {
		x := commontest.Context(t, filepath.Join("../../examples", ex))
		files, err := proxmox.Files(x)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(files, func(f nodegen.File) bool { return f.Path == proxmox.CreateNodesPath })
		script := files[i].Data

		r := proxmox.ExecScript(t, x, script, proxmox.Operator{Templates: []string{}, Images: []string{}})
		if r.OK() {
			t.Fatalf("%s: create-nodes.sh succeeded with nothing uploaded:\n%s", ex, r.Out())
		}
		asked := map[string]string{}
		for _, m := range missing.FindAllStringSubmatch(r.Out(), -1) {
			asked[m[2]] = m[3]
		}
		for _, c := range proxmox.Calls(t, r.StubDir()) {
			if !slices.Equal(c[:2], []string{"pvesh", "get"}) {
				t.Errorf("%s: %q before the preflight failed", ex, c)
			}
		}
		var templates, images []string
		for _, n := range x.C.Spec.Nodes {
			want := bakeName(t, x, n)
			got := asked[n.Name]
			if want == "" { // boot: ignition: the distribution's image, which the spec names
				want = filepath.Join(r.ImageDir(), x.C.Spec.Ignition.Images[n.Ignition])
				images = append(images, path.Base(want))
				if got != want {
					t.Errorf("%s: create-nodes.sh wants %q for %s, spec.ignition.images names %q", ex, got, n.Name, want)
				}
				continue
			}
			if n.RoleImage != "" {
				roleImages++
			}
			if n.Target == spec.TargetLXC {
				want = x.C.Spec.Proxmox.TemplateStorage + ":vztmpl/" + want
				templates = append(templates, want)
			} else {
				want = filepath.Join(r.ImageDir(), want)
				images = append(images, path.Base(want))
			}
			if got != want {
				t.Errorf("%s: create-nodes.sh wants %q for %s, hardway bake writes %q", ex, got, n.Name, want)
			}
		}

		r = proxmox.ExecScript(t, x, script, proxmox.Operator{Templates: templates, Images: images})
		if !r.OK() {
			t.Fatalf("%s: create-nodes.sh failed with bake's files uploaded:\n%s", ex, r.Out())
		}
		for _, n := range x.C.Spec.Nodes {
			if !strings.Contains(r.Out(), strconv.Itoa(n.VMID)+" ("+n.Name+"): created\n") {
				t.Errorf("%s: %s not created:\n%s", ex, n.Name, r.Out())
			}
		}
	}
	if roleImages == 0 {
		t.Error("no example has a node with roleImage: the role images' names are not checked")
	}
}
