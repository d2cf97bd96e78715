package clusterdir

import (
	"slices"
	"testing"

	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
)

// TestActions: what plan tells an operator to do for the artifacts that
// changed, each naming the node's file where a file is to be uploaded or
// applied.
func TestActions(t *testing.T) {
	doc := load(t, "../examples/mixed.yaml", "")
	change := func(node string, a nodefiles.Artifact) output.Change {
		return output.Change{Path: a.Path(node), Node: node, Kind: a.Kind, What: output.Changed}
	}
	got := Actions(doc.Cluster, []output.Change{
		change("w1", nodefiles.ProxmoxConf),
		change("cp1", nodefiles.CloudInit),
		change("w3", nodefiles.Ignition),
	})
	want := []Action{
		{Node: "cp1", Do: "upload its cloud-init snippets again (nodes/cp1/cloud-init/, seed.iso off Proxmox); its role image (controller) holds no node's configuration: nothing to bake"},
		{Node: "w1", Do: "apply the changed nodes/w1/proxmox.conf to its guest (pct set or qm set)"},
		{Node: "w3", Do: "upload nodes/w3/ignition.json again as its cicustom snippet"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("Actions:\n got %q\nwant %q", got, want)
	}
}
