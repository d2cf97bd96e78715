package proxmox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
)

// script is create-nodes.sh of example.
func script(t *testing.T, example string) []byte {
	return []byte(file(t, files(t, example), CreateNodesPath))
}

// onlyLooked fails the test if r made any call but pvesh get: it changed something.
func onlyLooked(t *testing.T, r run) {
	t.Helper()
	for _, c := range calls(t, r.stub) {
		if !slices.Equal(c[:2], []string{"pvesh", "get"}) {
			t.Errorf("%q, although the preflight failed", c)
		}
	}
}

// TestCreateNodesRefuses: the preflight reports, before any change and all
// at once, a VMID held by a guest that is not this cluster's (on another
// Proxmox node, or untagged), one of this cluster's of another name, a
// guest left locked by an interrupted creation, a template and an image
// that were not uploaded, and a snippets storage without content snippets.
func TestCreateNodesRefuses(t *testing.T) {
	x := commontest.Context(t, mixed)
	foreign := resource{VMID: 302, Type: "lxc", Node: "pve2", Name: "web", Tags: "prod", Status: "running"}
	untagged := resource{VMID: 303, Type: "lxc", Node: stubNode, Name: "lb2", Status: "running"}
	renamed := ours(x, "cp1", stubNode)
	renamed.Name = "old-cp1"
	locked := ours(x, "cp2", stubNode)
	locked.Lock = "create"
	all := func(g guest) string { return filepath.Base(artifact(x, g, operator{}, "")) }
	var templates, images []string
	for _, g := range guests(x) {
		switch {
		case g.Name == "w1", g.Name == "w3":
		case g.LXC:
			templates = append(templates, x.C.Spec.Proxmox.TemplateStorage+":vztmpl/"+all(g))
		default:
			images = append(images, all(g))
		}
	}
	r := execScript(t, x, script(t, mixed), operator{Guests: []resource{foreign, untagged, renamed, locked}, Templates: templates, Images: images, NoSnippets: true})
	if r.ok {
		t.Fatalf("create-nodes.sh succeeded:\n%s", r.out)
	}
	onlyLooked(t, r)
	for _, want := range []string{
		"error: 302 (lb1): VMID 302 is taken by lxc 'web' on node pve2 (tags: 'prod'), which is not a guest of this cluster",
		"error: 303 (lb2): VMID 303 is taken by lxc 'lb2' on node pve1 (tags: ''), which is not a guest of this cluster: free the VMID or give the node another spec.nodes[].vmid. If it is this node, made before hardway tagged its guests, tag it: pvesh set /nodes/pve1/lxc/303/config --tags 'hardway;hardway-mixed'",
		"error: 311 (cp1): VMID 311 is this cluster's qemu 'old-cp1' on node pve1, but the spec makes it qemu 'cp1'",
		"error: 312 (cp2): locked (create) on node pve1. A 'create' lock is a creation that was interrupted and left the guest half-made",
		"error: 323 (w3): no " + r.images + "/flatcar_production_proxmoxve_image.img to create it from",
		"error: 321 (w1): no local:vztmpl/debian-12-hardway-w1_1.34.2_amd64.tar.zst to create it from",
		"error: storage local has no content type snippets on node pve1",
		"create-nodes.sh: nothing was changed",
	} {
		if !strings.Contains(r.out, want) {
			t.Errorf("no %q in\n%s", want, r.out)
		}
	}
}

// TestCreateNodesRerun runs mixed's script again over guests it made: lb1
// and cp3 on another Proxmox node, left to it (and started there through
// the API); w1 half-made (pct create done, raw keys not appended) and cp1
// (disk not grown yet) completed; cp2's snippets, from an older generate,
// rewritten. --start starts every guest not running, gateway to workers.
func TestCreateNodesRerun(t *testing.T) {
	x := commontest.Context(t, mixed)
	o := operator{Args: []string{"--start"}, SharedSnippets: true, Guests: []resource{
		ours(x, "lb1", "pve2"), ours(x, "cp3", "pve2"), ours(x, "w1", stubNode), ours(x, "cp1", stubNode), ours(x, "cp2", stubNode),
	}, Snippets: map[string]string{}}
	for _, f := range []string{"user-data", "network-config", "meta-data"} {
		o.Snippets["local:snippets/cp1-"+f+".yaml"] = "fake cp1 " + f + "\n"
		o.Snippets["local:snippets/cp2-"+f+".yaml"] = "older cp2 " + f + "\n"
	}
	r := runScript(t, x, script(t, mixed), o)
	checkCalls(t, r, wantCalls(x, r, o))
	raw, err := os.ReadFile(filepath.Join(r.stub, "lxc", "321.conf"))
	if err != nil || !strings.Contains(string(raw), "lxc.mount.auto: proc:rw sys:mixed\n") {
		t.Errorf("w1's raw keys were not added: %q %v", raw, err)
	}
	for _, want := range []string{
		"302 (lb1): exists on node pve2: left to it (run create-nodes.sh there to check it)", "313 (cp3): exists on node pve2: left to it (run create-nodes.sh there to check it)",
		"321 (w1): exists, checked", "311 (cp1): exists, checked", "303 (lb2): created", "322 (w2): created",
		"312 (cp2): snippet cp2-user-data.yaml written",
		"302 (lb1): started", "321 (w1): started",
	} {
		if !strings.Contains(r.out, want+"\n") {
			t.Errorf("no %q in\n%s", want, r.out)
		}
	}
	if strings.Contains(r.out, "(cp1): snippet") {
		t.Errorf("cp1's snippets, up to date, were written again:\n%s", r.out)
	}
	if strings.Contains(r.out, "warning:") {
		t.Errorf("a warning with shared snippets:\n%s", r.out)
	}
}

// TestCreateNodesLocalSnippets: with the snippets on a storage that is not
// shared, in a Proxmox cluster of two nodes, the script warns that the VMs
// can neither start elsewhere nor migrate.
func TestCreateNodesLocalSnippets(t *testing.T) {
	x := commontest.Context(t, seedKVM)
	r := runScript(t, x, script(t, seedKVM), operator{})
	if !strings.Contains(r.out, "warning: storage local is not shared: the VMs of this cluster start only on pve1, and cannot migrate") {
		t.Errorf("no warning:\n%s", r.out)
	}
}

// TestCheckSnippets: Proxmox's limits, 1 MiB a snippet and 3 MiB a VM, hold
// to the byte.
func TestCheckSnippets(t *testing.T) {
	mib := func(n int) []byte { return make([]byte, n) }
	for _, c := range []struct {
		files map[string][]byte
		err   string
	}{
		{map[string][]byte{"u": mib(SnippetMax), "n": mib(SnippetMax), "m": mib(SnippetMax)}, ""},
		{map[string][]byte{"nodes/cp1/cloud-init/user-data": mib(SnippetMax + 1)}, "node cp1: nodes/cp1/cloud-init/user-data is 1048577 bytes (1.00 MiB), more than the 1 MiB Proxmox reads of a cicustom snippet"},
		{map[string][]byte{"u": mib(SnippetMax), "n": mib(SnippetMax), "m": mib(SnippetMax), "v": mib(1)}, "node cp1: its cicustom snippets (m, n, u, v) are 3145729 bytes (3.00 MiB) together, more than the 3 MiB"},
	} {
		err := CheckSnippets("cp1", c.files)
		if (err == nil) != (c.err == "") || err != nil && !strings.Contains(err.Error(), c.err) {
			t.Errorf("CheckSnippets: %v, want %q", err, c.err)
		}
	}
}
