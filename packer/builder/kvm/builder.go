// Package kvm is the hardway-kvm builder: KVM disk images (a GPT disk with
// an EFI system partition and an ext4 root, raw or qcow2) for a node or a
// role. Its configuration is complete and checked; baking itself waits for
// hardway's KVM image library, which this version does not have yet, so Run
// fails with ErrNotAvailable instead of producing an image.
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

// ErrNotAvailable is what Run returns until hardway's bake library can
// write KVM images.
var ErrNotAvailable = errors.New("KVM baking is not available yet in this hardway version: " +
	"hardway's bake library writes LXC templates only (hardway-lxc, `hardway bake --format lxc`)")

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

// Run returns ErrNotAvailable: there is no KVM image library to call yet.
func (b *Builder) Run(context.Context, packersdk.Ui, packersdk.Hook) (packersdk.Artifact, error) {
	return nil, ErrNotAvailable
}
