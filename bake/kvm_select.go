package bake

import (
	"fmt"
	"slices"

	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// KVMJobs selects the KVM images to bake. With role, it is one role image:
// the base, the binaries of every role of the nodes of target kvm that have
// role, and no node: at first boot, cloud-init gives it the identity, files
// and network of whichever of those nodes it boots as, from the node's
// NoCloud seed. Otherwise it is a node image per node of target kvm (all of
// them, or only node), with its node's tree baked in; it boots into its
// role with no seed, so its tree is the node's image tree (generators.Image:
// a node booted by cloud-init gets the network file its seed would bring).
func KVMJobs(x *nodegen.Context, node, role string) ([]Job, error) {
	if role != "" && node == "" {
		return roleJob(x, role)
	}
	return nodeJobs(x, FormatKVM, node, role, func(x *nodegen.Context, n spec.Node) (*tree.Tree, error) {
		if err := debianBased(n); err != nil {
			return nil, err
		}
		return generators.Image(x, n)
	})
}

// debianBased refuses a node whose system does not come from a Debian base.
func debianBased(n spec.Node) error {
	if n.BootsByIgnition() {
		return fmt.Errorf("node %s boots by Ignition (Fedora CoreOS, Flatcar): its image comes from that distribution, not from a Debian base", n.Name)
	}
	return nil
}

// roleJob is the role image of role.
func roleJob(x *nodegen.Context, role string) ([]Job, error) {
	nodes, err := Select(x.C, FormatKVM, "", role)
	if err != nil {
		return nil, err
	}
	var roles []string
	for _, n := range nodes {
		for _, r := range n.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	slices.Sort(roles)
	return []Job{{Subject: role, Roles: roles}}, nil
}

// RoleNodes are the nodes a KVM role image of role serves: those of target kvm,
// booted by cloud-init, with role.
func RoleNodes(c *spec.Cluster, role string) []spec.Node {
	var out []spec.Node
	for _, n := range c.Spec.Nodes {
		if n.Target == spec.TargetKVM && n.Has(role) && debianBased(n) == nil {
			out = append(out, n)
		}
	}
	return out
}
