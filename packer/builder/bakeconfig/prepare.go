package bakeconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/spec"
)

// Prepared is a checked configuration: the loaded spec and the nodes the
// build is for, in spec order.
type Prepared struct {
	Doc   *spec.Document
	Nodes []spec.Node
}

// Prepare fills in the defaults and checks the configuration for a builder
// of target (spec.TargetLXC or spec.TargetKVM) called builder. It returns
// every problem at once, each naming its field.
func (c *Config) Prepare(target, builder string) (*Prepared, []string, []error) {
	if c.OutputDirectory == "" {
		c.OutputDirectory = load.DefaultOutputDirectory
	}
	var errs []error
	if err := checkBase(c.BaseRootfs); err != nil {
		errs = append(errs, err)
	}
	doc, warnings, specErrs := load.Spec(load.FieldSpec, c.Spec)
	errs = append(errs, specErrs...)
	var nodes []spec.Node
	switch {
	case c.Node != "" && c.Role != "":
		errs = append(errs, fmt.Errorf("%s, %s: set one of them, not both", load.FieldNode, load.FieldRole))
	case c.Node == "" && c.Role == "":
		errs = append(errs, fmt.Errorf("%s: required: set %s (one node of target %s) or %s (a role)", load.FieldNode, load.FieldNode, target, load.FieldRole))
	case doc == nil:
		// The spec's errors say it all.
	case c.Node != "":
		n, err := load.Node(doc, load.FieldNode, c.Node)
		switch {
		case err != nil:
			errs = append(errs, err)
		case n.Target != target:
			errs = append(errs, fmt.Errorf("%s: %s has target %s; %s bakes nodes of target %s (use hardway-%s)", load.FieldNode, n.Name, n.Target, builder, target, n.Target))
		default:
			nodes = []spec.Node{n}
		}
	case target == spec.TargetKVM:
		// One role image serves these nodes (those booted by cloud-init).
		nodes = bake.RoleNodes(doc.Cluster, c.Role)
		if len(nodes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no node of target kvm booted by cloud-init has role %q in %s (their roles: %s)", load.FieldRole, c.Role, doc.File, strings.Join(rolesOf(doc.Cluster, target), ", ")))
		}
	default:
		nodes = withRole(doc.Cluster, target, c.Role)
		if len(nodes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no node of target %s has role %q in %s (their roles: %s)", load.FieldRole, target, c.Role, doc.File, strings.Join(rolesOf(doc.Cluster, target), ", ")))
		}
	}
	if doc != nil && c.ArtifactDirectory == "" {
		c.ArtifactDirectory = filepath.Join(load.ClusterDir(doc, c.OutputDirectory), nodefiles.BakeDir)
	}
	if len(errs) > 0 {
		return nil, warnings, errs
	}
	return &Prepared{Doc: doc, Nodes: nodes}, warnings, nil
}

// checkBase checks that the base is a file; bake checks its content.
func checkBase(name string) error {
	if name == "" {
		return fmt.Errorf("base_rootfs: required: a base root file system tarball (hack/base.sh builds one)")
	}
	st, err := os.Stat(name)
	if err != nil {
		return fmt.Errorf("base_rootfs: %w", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("base_rootfs: %s is not a regular file (a tarball: plain, gzip, xz, zstd or bzip2)", name)
	}
	return nil
}

// withRole returns the nodes of target that have role, in spec order.
func withRole(c *spec.Cluster, target, role string) []spec.Node {
	var out []spec.Node
	for _, n := range c.Spec.Nodes {
		if n.Target == target && n.Has(role) {
			out = append(out, n)
		}
	}
	return out
}

// rolesOf returns the roles the nodes of target hold, sorted; of kvm nodes,
// those booted by cloud-init (bake makes no image of a node booted by Ignition).
func rolesOf(c *spec.Cluster, target string) []string {
	var out []string
	for _, n := range c.Spec.Nodes {
		if n.Target != target || n.BootsByIgnition() {
			continue
		}
		for _, r := range n.Roles {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	slices.Sort(out)
	if len(out) == 0 {
		return []string{"none: no node has target " + target}
	}
	return out
}
