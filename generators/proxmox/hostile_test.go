package proxmox

import (
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/spec"
)

// TestHostileRefused: values that validation refuses, set behind its back,
// are refused by Files too, with the field named, and no file is returned:
// no file name is built from them and no configuration line takes them.
// Each would otherwise have done what its comment says.
func TestHostileRefused(t *testing.T) {
	for _, c := range []struct {
		field string
		edit  func(c *spec.Cluster)
	}{
		// A post-up command in the host's interfaces.d file.
		{"spec.proxmox.bridge", func(c *spec.Cluster) { c.Spec.Proxmox.Bridge = "vmbr1\n\tpost-up touch /tmp/hardway-canary" }},
		// interfaces.d/hardway-x\n/../../../../tmp/hardway-escape: a file outside out/.
		{"spec.proxmox.bridge", func(c *spec.Cluster) { c.Spec.Proxmox.Bridge = "x\n/../../../../tmp/hardway-escape" }},
		// "dev vmbr1;touch ..." in a post-up line, which ifupdown runs with /bin/sh.
		{"spec.proxmox.bridge", func(c *spec.Cluster) { c.Spec.Proxmox.Bridge = "vmbr1;touch /tmp/hardway-canary" }},
		// An AppArmor-free unprivileged container.
		{"spec.proxmox.storage", func(c *spec.Cluster) { c.Spec.Proxmox.Storage = "local-lvm\nlxc.apparmor.profile: unconfined" }},
		// A command in create-nodes.sh.
		{"spec.proxmox.storage", func(c *spec.Cluster) { c.Spec.Proxmox.Storage = "$(touch /tmp/hardway-canary)" }},
		// Another property in a pct/qm property string.
		{"spec.proxmox.storage", func(c *spec.Cluster) { c.Spec.Proxmox.Storage = "local-lvm,mountoptions=noexec" }},
		// A command after create-nodes.sh's header comment.
		{"spec.proxmox.templateStorage", func(c *spec.Cluster) { c.Spec.Proxmox.TemplateStorage = "local\ntouch /tmp/hardway-canary" }},
		{"spec.proxmox.snippetsStorage", func(c *spec.Cluster) { c.Spec.Proxmox.SnippetsStorage = `local'"; touch /tmp/hardway-canary` }},
		// nodes/../../../tmp/hardway-escape/proxmox.conf.
		{"spec.nodes[0].name", func(c *spec.Cluster) { c.Spec.Nodes[0].Name = "../../../tmp/hardway-escape" }},
		{"spec.nodes[0].address", func(c *spec.Cluster) { c.Spec.Nodes[0].Address = "192.168.50.2/24,gw=192.168.50.99" }},
		{"spec.network.gateway", func(c *spec.Cluster) { c.Spec.Network.Gateway = "192.168.50.1\n\tpost-up touch /tmp/hardway-canary" }},
		{"spec.network.dns[0]", func(c *spec.Cluster) { c.Spec.Network.DNS[0] = "192.168.50.1 --onboot 0" }},
		{"spec.domain", func(c *spec.Cluster) { c.Spec.Domain = "lab.internal\nlxc.apparmor.profile: unconfined" }},
		{"spec.kubernetesVersion", func(c *spec.Cluster) { c.Spec.KubernetesVersion = "v1.34.2$(touch /tmp/hardway-canary)" }},
		{"metadata.name", func(c *spec.Cluster) { c.Metadata.Name = "mixed\ntouch /tmp/hardway-canary" }},
		{"spec.nodes[1].roles[0]", func(c *spec.Cluster) { c.Spec.Nodes[1].Roles[0] = "lb\ntouch /tmp/hardway-canary" }},
	} {
		fs, err := Files(commontest.Hostile(t, mixed, c.edit))
		if err == nil || !strings.Contains(err.Error(), c.field+": ") {
			t.Errorf("%s: Files returned %d files and error %v, want an error naming the field", c.field, len(fs), err)
			for _, f := range fs {
				if path.Clean(f.Path) != f.Path || strings.HasPrefix(f.Path, "../") || strings.ContainsAny(f.Path, "\n\r") {
					t.Errorf("%s: %q would be written outside its directory", c.field, f.Path)
				}
			}
		}
	}
}

// evil runs `touch "$CANARY"` whichever way a shell reads it: after closing
// a single or a double quote, as a command substitution, in backquotes,
// after ";", and on a new line (after a comment too).
const evil = `'"$(touch "$CANARY")` + "`touch \"$CANARY\"`" + `; touch "$CANARY" # \` + "\ntouch \"$CANARY\"\n%s$HOME"

// TestCreateNodesHostile renders create-nodes.sh with every free-text value
// of the spec set to evil, bypassing validation and Check (createNodes is
// what Files calls after them): quoting alone must carry each value to pct,
// qm, pvesm and install as one unchanged argument, run nothing else, and
// keep every comment a comment. shellcheck passes on the script, but for
// its note SC2016 that "$(...)" does not expand in single quotes: that is
// the point.
func TestCreateNodesHostile(t *testing.T) {
	x := commontest.Hostile(t, mixed, func(c *spec.Cluster) {
		c.Metadata.Name += evil
		c.Spec.KubernetesVersion += evil
		c.Spec.Domain += evil
		c.Spec.Network.Gateway += evil
		c.Spec.Network.DNS = append(c.Spec.Network.DNS, "1.1.1.1"+evil)
		p := &c.Spec.Proxmox
		p.Bridge += evil
		p.Storage += evil
		p.TemplateStorage += evil
		p.SnippetsStorage += evil
		for i := range c.Spec.Nodes {
			n := &c.Spec.Nodes[i]
			switch n.Name {
			case "lb1", "cp1", "w1", "w3":
				n.Name += evil
				n.Address += evil
			case "lb2":
				n.Roles = append(n.Roles, evil)
			}
		}
	})
	script := createNodes(x, guests(x)).Data
	o := operator{SharedSnippets: true}
	r := runScript(t, x, script, o)
	checkCalls(t, r, wantCalls(x, r, o))

	var out strings.Builder
	for _, g := range guests(x) {
		for _, s := range g.Snippets {
			fmt.Fprintf(&out, "%d (%s): snippet %s written\n", g.VMID, g.Name, s.Name)
		}
		fmt.Fprintf(&out, "%d (%s): created\n", g.VMID, g.Name)
	}
	if r.out != out.String() {
		t.Errorf("create-nodes.sh printed\n%s\nwant\n%s", r.out, out.String())
	}
	shellcheck := commontest.Tool(t, "shellcheck", "shellcheck")
	p := commontest.WriteFile(t, t.TempDir(), "create-nodes.sh", script)
	if out, ok := commontest.Run(t, shellcheck, "--exclude=SC2016", p); !ok {
		t.Errorf("shellcheck:\n%s", out)
	}
}

// TestCreateNodesMetacharacters runs the script of a spec whose Proxmox
// names, domain and node names hold every punctuation validation lets
// through ('.', '_', '-'): each reaches pct and qm unchanged, and the host's
// bridge stanza names the bridge as ifupdown reads it.
func TestCreateNodesMetacharacters(t *testing.T) {
	x := commontest.Context(t, mixed, func(c *spec.Cluster) {
		c.Spec.Domain = "lab-1.example.internal"
		c.Spec.Proxmox = spec.Proxmox{Bridge: "vmbr_1.2-x", Storage: "store.a_1-b", TemplateStorage: "tmpl.x_1-y", SnippetsStorage: "snip.p_2-q"}
		for i := range c.Spec.Nodes {
			c.Spec.Nodes[i].Name = "node-" + strconv.Itoa(i) + "-" + c.Spec.Nodes[i].Name
		}
	})
	fs, err := Files(x)
	if err != nil {
		t.Fatal(err)
	}
	byPath := map[string][]byte{}
	for _, f := range fs {
		byPath[f.Path] = f.Data
	}
	if got := conf(t, string(byPath["nodes/node-5-w1/proxmox.conf"])); !slices.Contains(got, [2]string{"rootfs", "store.a_1-b:20"}) ||
		!slices.ContainsFunc(got, func(kv [2]string) bool { return kv[0] == "net0" && strings.Contains(kv[1], ",bridge=vmbr_1.2-x,") }) {
		t.Errorf("node-5-w1's proxmox.conf: %q", got)
	}
	ifquery := commontest.Tool(t, "ifquery", "ifupdown")
	p := commontest.WriteFile(t, t.TempDir(), "hardway", byPath["proxmox/interfaces.d/hardway"])
	if out, ok := commontest.Run(t, ifquery, "-i", p, "vmbr_1.2-x"); !ok || !strings.Contains(out, "up: ip route replace 10.244.0.0/24 via 192.168.50.21 dev vmbr_1.2-x\n") {
		t.Errorf("ifquery vmbr_1.2-x: %s", out)
	}
	o := operator{Guests: []resource{ours(x, "node-1-lb2", stubNode)}}
	r := runScript(t, x, byPath["proxmox/create-nodes.sh"], o)
	want := wantCalls(x, r, o)
	checkCalls(t, r, want)
	if !slices.ContainsFunc(want, func(c []string) bool {
		return slices.Contains(c, "store.a_1-b:0,import-from="+r.images+"/debian-12-hardway-controller_1.34.2_amd64.qcow2")
	}) {
		t.Errorf("no qm create of node-2-cp1 from store.a_1-b and the controller role image in %q", want)
	}
}
