// Package kvm is the hardway-kvm builder: it bakes KVM disk images (a GPT
// disk with an EFI system partition and an ext4 root, raw or qcow2) with
// hardway's bake library, exactly as `hardway bake --format kvm` does, from a
// spec, a node (or role) and a base root file system. It needs no root, no
// VM and no communicator.
package kvm

import (
	"context"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
)

// BuilderType is the builder's name in templates.
const BuilderType = "hardway-kvm"

// BuilderID identifies the builder's artifacts.
const BuilderID = "hardway.kvm"

// Builder bakes KVM images.
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

// Run generates the cluster (PKI state, node trees) and bakes the image of
// the node, or the image(s) bake makes for the role, into the artifact
// directory.
func (b *Builder) Run(ctx context.Context, ui packersdk.Ui, _ packersdk.Hook) (packersdk.Artifact, error) {
	c := &b.config
	opts := bake.KVMOptions{DiskSize: c.diskBytes, Formats: []string{c.Format}}
	run := func(ctx context.Context, cfg bake.Config, jobs []bake.Job) ([]bake.Result, error) {
		return bake.RunKVM(ctx, cfg, opts, jobs)
	}
	results, err := c.Bake(ctx, ui, b.prepared.Doc, c.Format+" image(s)", bake.KVMJobs, run)
	if err != nil {
		return nil, err
	}
	return bakeconfig.NewArtifact(BuilderID, "KVM disk images", b.prepared.Nodes, results), nil
}
