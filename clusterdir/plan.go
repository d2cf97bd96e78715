package clusterdir

import (
	"slices"
	"strings"

	"github.com/hardway-dev/hardway/generators/manifests"
	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

// Action is what an operator must do after a run because of what it
// changed: bake and upload an artifact again, or install files elsewhere.
type Action struct {
	Node string `json:"node,omitempty"` // empty: the Proxmox host or the cluster
	Do   string `json:"do"`
}

// Actions turns a plan's changes into what must be re-baked and
// re-uploaded, node by node (in spec order, then removed nodes), then for
// the cluster. An artifact is re-baked only when what it holds changed:
// an LXC template or KVM node image holds the node's overlay; a role image
// holds no node's configuration, which reaches the node by its NoCloud
// seed (cicustom snippets); an Ignition config is a snippet of its own.
func Actions(c *spec.Cluster, changes []output.Change) []Action {
	kinds := map[string]map[string]bool{} // node → kinds changed ("" the cluster)
	added := map[string]bool{}            // nodes whose proxmox.conf is new
	for _, ch := range changes {
		if kinds[ch.Node] == nil {
			kinds[ch.Node] = map[string]bool{}
		}
		kinds[ch.Node][ch.Kind] = true
		if ch.Kind == nodefiles.ProxmoxConf.Kind && ch.What == output.Added {
			added[ch.Node] = true
		}
	}
	var out []Action
	for _, n := range c.Spec.Nodes {
		k := kinds[n.Name]
		add := func(do string) { out = append(out, Action{Node: n.Name, Do: do}) }
		overlay, again := k[nodefiles.OverlayTar.Kind], " again"
		if added[n.Name] {
			again = ""
		}
		switch {
		case n.Target == spec.TargetLXC && overlay:
			add("bake its LXC template" + again + " (hardway bake --node " + n.Name + ") and upload it to spec.proxmox.templateStorage" + recreate(added[n.Name], "container"))
		case n.BootsByIgnition() && n.Sysext() && overlay:
			add("bake its sysext image and Ignition config" + again + " (hardway bake --format sysext --node " + n.Name + "), serve them at spec.ignition.url and upload the config as its snippet")
		case n.BootsByIgnition() && k[nodefiles.Ignition.Kind]:
			add("upload " + nodefiles.Ignition.Path(n.Name) + again + " as its cicustom snippet")
		case n.BootsByCloudInit() && n.RoleImage == "" && overlay:
			add("bake its KVM node image" + again + " (hardway bake --format kvm --node " + n.Name + ") and import it" + recreate(added[n.Name], "VM"))
		}
		if n.BootsByCloudInit() && (k[nodefiles.CloudInit.Kind] || k[nodefiles.SeedISO.Kind]) {
			add("upload its cloud-init snippets" + again + " (" + nodefiles.CloudInit.Path(n.Name) + "/, " + nodefiles.SeedISO.Name + " off Proxmox)" + roleImageNote(n))
		}
		switch {
		case added[n.Name]:
			add("create its guest: proxmox/create-nodes.sh")
		case k[nodefiles.ProxmoxConf.Kind]:
			add("apply the changed " + nodefiles.ProxmoxConf.Path(n.Name) + " to its guest (pct set or qm set)")
		}
	}
	var gone []string
	index := c.Index()
	for node := range kinds {
		if _, ok := index[node]; !ok && node != "" {
			gone = append(gone, node)
		}
	}
	slices.Sort(gone)
	for _, node := range gone {
		out = append(out, Action{Node: node, Do: "no longer in the spec: destroy its guest and delete its template or image"})
	}
	var host []string
	for _, ch := range changes {
		if ch.Node == "" && ch.Kind == proxmox.Kind {
			host = append(host, ch.Path)
		}
	}
	if len(host) > 0 {
		out = append(out, Action{Do: "install on the Proxmox host: " + strings.Join(host, ", ")})
	}
	if kinds[""][manifests.Kind] {
		out = append(out, Action{Do: "manifests/ changed: the bootstrap unit applies them once; apply the changes with kubectl"})
	}
	return out
}

// recreate says what a new artifact of an existing guest asks for: the
// guest was made from the old one.
func recreate(added bool, what string) string {
	if added {
		return ""
	}
	return ", then re-create the " + what + " from it (or copy the changed files in)"
}

// roleImageNote says why a node booted from a role image needs no bake.
func roleImageNote(n spec.Node) string {
	if n.RoleImage == "" {
		return ""
	}
	return "; its role image (" + n.RoleImage + ") holds no node's configuration: nothing to bake"
}
