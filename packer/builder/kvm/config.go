//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package kvm

import (
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
	"github.com/hardway-dev/hardway/packer/internal/load"
)

// Config is the configuration of the hardway-kvm builder.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	bakeconfig.Config   `mapstructure:",squash"`
	// The size of the disk image, at least 1024 MiB: a number with the unit
	// `K`, `M`, `G` or `T` (KiB, MiB, GiB, TiB: `20G`, `20GiB`, `4096M`), as
	// `hardway bake --disk-size` reads it. A bare number is an error (the
	// qemu builder reads one as MiB, other tools as bytes). Defaults to what
	// `hardway bake --format kvm` gives: the node's `diskGiB` in the spec;
	// for `role`, the largest `diskGiB` of the nodes the role image serves.
	DiskSize string `mapstructure:"disk_size"`
	// The image format: `qcow2` (the default; Proxmox imports it with `qm
	// importdisk`) or `raw`.
	Format string `mapstructure:"format"`

	diskBytes int64 // disk_size in bytes; 0 leaves the size to bake
}

// Image formats.
const (
	FormatQCOW2 = bake.ImageQCOW2
	FormatRaw   = bake.ImageRaw
)

// prepare decodes raws into c and checks it; see bakeconfig.Config.Prepare.
func (c *Config) prepare(raws ...interface{}) (*bakeconfig.Prepared, []string, error) {
	err := config.Decode(c, &config.DecodeOpts{PluginType: BuilderType, Interpolate: true}, raws...)
	if err != nil {
		return nil, nil, err
	}
	p, warnings, errs := c.Config.Prepare(bake.FormatKVM)
	switch c.Format {
	case "":
		c.Format = FormatQCOW2
	case FormatQCOW2, FormatRaw:
	default:
		errs = append(errs, fmt.Errorf("format: %q: want %s or %s", c.Format, FormatQCOW2, FormatRaw))
	}
	if c.DiskSize != "" {
		n, err := bake.ParseDiskSize(c.DiskSize)
		if err != nil {
			errs = append(errs, fmt.Errorf("disk_size: %w", err))
		}
		c.diskBytes = n
	}
	if err := load.Errors(errs); err != nil {
		return nil, warnings, err
	}
	return p, warnings, nil
}
