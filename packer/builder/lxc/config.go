//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package lxc

import (
	"fmt"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
	"github.com/hardway-dev/hardway/packer/internal/load"
)

// Config is the configuration of the hardway-lxc builder.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	bakeconfig.Config   `mapstructure:",squash"`
	// The zstd level of the template. This version of hardway's bake
	// library writes level 3 (zstd's default, as `zstd -T0` and Proxmox's
	// vzdump use it) and has no other setting yet: leave it unset, or 3.
	CompressionLevel int `mapstructure:"compression_level"`
}

// bakeLevel is the zstd level hardway's bake library writes.
const bakeLevel = 3

// prepare decodes raws into c and checks it; see bakeconfig.Config.Prepare.
func (c *Config) prepare(raws ...interface{}) (*bakeconfig.Prepared, []string, error) {
	err := config.Decode(c, &config.DecodeOpts{PluginType: BuilderType, Interpolate: true}, raws...)
	if err != nil {
		return nil, nil, err
	}
	p, warnings, errs := c.Config.Prepare(bake.FormatLXC)
	if c.CompressionLevel != 0 && c.CompressionLevel != bakeLevel {
		errs = append(errs, fmt.Errorf("compression_level: %d: this hardway version's bake library writes zstd level %d only; leave it unset or set %d",
			c.CompressionLevel, bakeLevel, bakeLevel))
	}
	if err := load.Errors(errs); err != nil {
		return nil, warnings, err
	}
	return p, warnings, nil
}
