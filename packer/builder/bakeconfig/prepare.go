package bakeconfig

import (
	"fmt"
	"os"
	"path/filepath"

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
// of bake's format (bake.FormatLXC or bake.FormatKVM). It returns every
// problem at once, each naming its field.
func (c *Config) Prepare(format string) (*Prepared, []string, []error) {
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
		errs = append(errs, fmt.Errorf("%s: required: set %s (one node of target %s) or %s (a role)", load.FieldNode, load.FieldNode, format, load.FieldRole))
	case doc == nil:
		// The spec's errors say it all.
	default:
		// The nodes `hardway bake` would bake: one node, each node of
		// target lxc with the role, or the nodes a kvm role image serves.
		field := load.FieldNode
		if c.Role != "" {
			field = load.FieldRole
		}
		var err error
		if nodes, err = bake.Select(doc.Cluster, format, c.Node, c.Role); err != nil {
			errs = append(errs, fmt.Errorf("%s: %s: %w", field, doc.File, err))
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
