package bakeconfig

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

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
	default:
		nodes = withRole(doc.Cluster, target, c.Role)
		if len(nodes) == 0 {
			errs = append(errs, fmt.Errorf("%s: no node of target %s has role %q in %s (their roles: %s)", load.FieldRole, target, c.Role, doc.File, strings.Join(rolesOf(doc.Cluster, target), ", ")))
		}
	}
	if doc != nil && c.ArtifactDirectory == "" {
		c.ArtifactDirectory = filepath.Join(load.ClusterDir(doc, c.OutputDirectory), "bake")
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

// rolesOf returns the roles the nodes of target hold, sorted.
func rolesOf(c *spec.Cluster, target string) []string {
	var out []string
	for _, n := range c.Spec.Nodes {
		if n.Target != target {
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

// Keys of the generated data a bake builder exposes to post-processors, as
// build.<key> in HCL2 and {{ .<key> }} in templates.
const (
	KeyNode     = "node"     // the node's name; for a role, the names of its nodes, comma-separated
	KeyRoles    = "roles"    // the node's roles, comma-separated
	KeyVMID     = "vmid"     // the node's Proxmox id; for a role, the ids of its nodes, comma-separated
	KeyArtifact = "artifact" // the artifact file; for a role, the files, comma-separated
	KeySHA256   = "sha256"   // the artifact's SHA-256; for a role, the checksums, comma-separated
)

// GeneratedVars lists the generated data keys, for Prepare.
func GeneratedVars() []string {
	return []string{KeyNode, KeyRoles, KeyVMID, KeyArtifact, KeySHA256}
}

// GeneratedData is the generated data of a build of nodes whose artifacts
// are files with checksums sums (both may be empty). Every value is a
// string: Packer carries generated data to post-processors through its RPC
// codec, which turns lists into values HCL2 cannot read back.
func GeneratedData(nodes []spec.Node, files, sums []string) map[string]interface{} {
	var names, ids, roles []string
	for _, n := range nodes {
		names = append(names, n.Name)
		ids = append(ids, strconv.Itoa(n.VMID))
		for _, r := range n.Roles {
			if !slices.Contains(roles, r) {
				roles = append(roles, r)
			}
		}
	}
	return map[string]interface{}{
		KeyNode:     strings.Join(names, ","),
		KeyRoles:    strings.Join(roles, ","),
		KeyVMID:     strings.Join(ids, ","),
		KeyArtifact: strings.Join(files, ","),
		KeySHA256:   strings.Join(sums, ","),
	}
}
