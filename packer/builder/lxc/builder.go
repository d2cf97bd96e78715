// Package lxc is the hardway-lxc builder: it bakes Proxmox container
// templates (.tar.zst) with hardway's bake library, exactly as `hardway bake
// --format lxc` does, from a spec, a node (or role) and a base root file
// system. It needs no root, no VM and no communicator.
package lxc

import (
	"context"
	"fmt"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
)

// BuilderType is the builder's name in templates.
const BuilderType = "hardway-lxc"

// BuilderID identifies the builder's artifacts.
const BuilderID = "hardway.lxc"

// Builder bakes LXC templates.
type Builder struct {
	config   Config
	prepared *bakeconfig.Prepared
}

// ConfigSpec is the HCL2 schema of Config.
func (b *Builder) ConfigSpec() hcldec.ObjectSpec { return b.config.FlatMapstructure().HCL2Spec() }

// Prepare checks the configuration and returns the generated data keys.
func (b *Builder) Prepare(raws ...interface{}) ([]string, []string, error) {
	p, warnings, err := b.config.prepare(raws...)
	if err != nil {
		return nil, warnings, err
	}
	b.prepared = p
	return bakeconfig.GeneratedVars(), warnings, nil
}

// Run generates the cluster (PKI state, node trees) and bakes the selected
// nodes' templates into the artifact directory.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, _ packersdk.Hook) (packersdk.Artifact, error) {
	results, err := b.config.Bake(ctx, ui, b.prepared.Doc, "template(s)", lxcJobs, bake.Run)
	if err != nil {
		return nil, err
	}
	// The templates in the order of the nodes (bake sorts them by file name).
	byNode := map[string]bake.Result{}
	for _, r := range results {
		byNode[r.Job.Node] = r
	}
	ordered := make([]bake.Result, 0, len(b.prepared.Nodes))
	for _, n := range b.prepared.Nodes {
		r, ok := byNode[n.Name]
		if !ok {
			return nil, fmt.Errorf("bake made no template for %s", n.Name)
		}
		ordered = append(ordered, r)
	}
	return bakeconfig.NewArtifact(BuilderID, "Proxmox LXC templates", b.prepared.Nodes, ordered), nil
}

// lxcJobs selects the templates of node or role.
func lxcJobs(x *nodegen.Context, node, role string) ([]bake.Job, error) {
	return bake.Jobs(x, bake.FormatLXC, node, role)
}
