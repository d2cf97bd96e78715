package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

func newPlan() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what generate would change in <dir>/<cluster>/, and what to re-bake, without writing",
		Long: `plan renders everything generate would write, in memory, and compares it with
<dir>/<cluster>/: it lists the files that would be added, changed or removed,
grouped by node and artifact (overlay-tar, with the node's files that would
change inside it, rootfs with --rootfs, cloud-init, seed-iso, ignition,
proxmox-conf, and for the cluster pki, kubeconfigs, manifests and the
Proxmox host files), then what must be re-baked and re-uploaded: an LXC
template or KVM node image whose overlay changed, cicustom snippets, host
files. It writes nothing (no lock, no directory; a missing <dir>/<cluster>
plans every file as added). Certificates that generate would issue are
issued in memory only, so their files show as added or changed.

It exits 0 when nothing would change and 3 when something would.`,
		Example: `  hardway plan -f cluster.yaml                 # against out/<cluster>/
  hardway plan -f cluster.yaml --dir /srv/hw   # against /srv/hw/<cluster>/
  hardway plan -f cluster.yaml -o json | jq -r '.rebake[].do'`,
	}
	trees := rootfsFlag(cmd)
	clusterCommand(cmd, "output root: plan compares with <dir>/<cluster>/", func(cmd *cobra.Command, doc *spec.Document, f *clusterFlags) error {
		o := generateOptions(f.dir)
		o.Plan = true
		o.Rootfs = trees()
		res, err := clusterdir.Run(cmd.Context(), doc, o)
		if err != nil {
			return err
		}
		po := planOutput{Dir: res.Dir, Changes: res.Planned, Rebake: clusterdir.Actions(doc.Cluster, res.Planned)}
		if po.Changes == nil {
			po.Changes = []output.Change{}
		}
		if po.Rebake == nil {
			po.Rebake = []clusterdir.Action{}
		}
		if f.out.json() {
			err = writeJSON(cmd.OutOrStdout(), po)
		} else {
			printPlan(cmd.OutOrStdout(), po)
		}
		if err == nil && len(po.Changes) > 0 {
			return exitError{exitFindings}
		}
		return err
	})
	return cmd
}

// planShown is how many paths printPlan names per artifact; the rest are counted.
const planShown = 6

// shortList joins the first planShown of list and counts the rest.
func shortList(list []string) string {
	s := strings.Join(list[:min(len(list), planShown)], ", ")
	if len(list) > planShown {
		s += fmt.Sprintf(", … %d more", len(list)-planShown)
	}
	return s
}

// printPlan prints a plan grouped by node (the cluster's files first), then
// by artifact (a node's paths relative to nodes/<node>/), then the actions.
func printPlan(w io.Writer, po planOutput) {
	if len(po.Changes) == 0 {
		fmt.Fprintf(w, "%s: nothing would change\n", po.Dir)
		return
	}
	count := map[string]int{}
	for _, c := range po.Changes {
		count[c.What]++
	}
	fmt.Fprintf(w, "%s: %d files would change (%d added, %d changed, %d removed)\n", po.Dir, len(po.Changes),
		count[output.Added], count[output.Changed], count[output.Removed])
	type key struct{ node, artifact string }
	groups := map[key][]output.Change{}
	var nodes []string
	for _, c := range po.Changes {
		k := key{c.Node, c.Kind}
		if !slices.Contains(nodes, c.Node) {
			nodes = append(nodes, c.Node)
		}
		groups[k] = append(groups[k], c)
	}
	slices.Sort(nodes) // "" (the cluster) first
	for _, node := range nodes {
		title := "node " + node
		if node == "" {
			title = "cluster"
		}
		fmt.Fprintf(w, "\n%s:\n", title)
		var arts []string
		for k := range groups {
			if k.node == node {
				arts = append(arts, k.artifact)
			}
		}
		slices.Sort(arts)
		for _, a := range arts {
			cs := groups[key{node, a}]
			byWhat := map[string][]string{}
			for _, c := range cs {
				p := c.Path
				if node != "" {
					p = strings.TrimPrefix(p, nodefiles.Dir(node)+"/")
				}
				if len(c.Entries) > 0 {
					p += " (" + shortList(c.Entries) + ")"
				}
				byWhat[c.What] = append(byWhat[c.What], p)
			}
			var parts []string
			for _, what := range []string{output.Added, output.Changed, output.Removed} {
				ps := byWhat[what]
				if len(ps) == 0 {
					continue
				}
				parts = append(parts, fmt.Sprintf("%d %s: %s", len(ps), what, shortList(ps)))
			}
			fmt.Fprintf(w, "  %s: %s\n", a, strings.Join(parts, "; "))
		}
	}
	if len(po.Rebake) > 0 {
		fmt.Fprintf(w, "\nre-bake and re-upload:\n")
		for _, a := range po.Rebake {
			who := a.Node
			if who == "" {
				who = "cluster"
			}
			fmt.Fprintf(w, "  %s: %s\n", who, a.Do)
		}
	}
}
