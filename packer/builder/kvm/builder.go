// Package kvm is the hardway-kvm builder: KVM disk images (a GPT disk with
// an EFI system partition and an ext4 root, raw or qcow2) for a node or a
// role. Its configuration is complete and checked; Run is not wired to the
// bake library's KVM images (bake.KVMJobs, bake.RunKVM) yet, so it fails
// with ErrNotAvailable instead of producing an image.
package kvm

import (
	"context"
	"errors"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
)

// BuilderType is the builder's name in templates.
const BuilderType = "hardway-kvm"

// BuilderID identifies the builder's artifacts.
const BuilderID = "hardway.kvm"

// ErrNotAvailable is what Run returns until the builder calls the bake
// library's KVM images.
var ErrNotAvailable = errors.New("KVM baking is not available yet in this hardway version: " +
	"the Packer builder is not wired to it; bake KVM images with `hardway bake --format kvm`")

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

// Run returns ErrNotAvailable: the builder does not call bake.RunKVM yet.
func (b *Builder) Run(context.Context, packersdk.Ui, packersdk.Hook) (packersdk.Artifact, error) {
	return nil, ErrNotAvailable
}
