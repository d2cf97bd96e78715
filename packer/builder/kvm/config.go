//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package kvm

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/hardway-dev/hardway/packer/builder/bakeconfig"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/spec"
)

// Config is the configuration of the hardway-kvm builder.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	bakeconfig.Config   `mapstructure:",squash"`
	// The size of the disk image: a number of MiB, or a number with the
	// suffix `M`, `G` or `T` (MiB, GiB, TiB), as the qemu builder reads it.
	// Defaults to the node's `diskGiB` in the spec; for `role`, the largest
	// `diskGiB` of the role's nodes of target `kvm`.
	DiskSize string `mapstructure:"disk_size"`
	// The image format: `qcow2` (the default; Proxmox imports it with `qm
	// importdisk`) or `raw`.
	Format string `mapstructure:"format"`

	diskMiB int64
}

// Image formats.
const (
	FormatQCOW2 = "qcow2"
	FormatRaw   = "raw"
)

// prepare decodes raws into c and checks it; see bakeconfig.Config.Prepare.
func (c *Config) prepare(raws ...interface{}) (*bakeconfig.Prepared, []string, error) {
	err := config.Decode(c, &config.DecodeOpts{PluginType: BuilderType, Interpolate: true}, raws...)
	if err != nil {
		return nil, nil, err
	}
	p, warnings, errs := c.Config.Prepare(spec.TargetKVM, BuilderType)
	switch c.Format {
	case "":
		c.Format = FormatQCOW2
	case FormatQCOW2, FormatRaw:
	default:
		errs = append(errs, fmt.Errorf("format: %q: want %s or %s", c.Format, FormatQCOW2, FormatRaw))
	}
	if c.DiskSize != "" {
		n, err := parseSize(c.DiskSize)
		if err != nil {
			errs = append(errs, fmt.Errorf("disk_size: %w", err))
		}
		c.diskMiB = n
	} else if p != nil {
		for _, n := range p.Nodes {
			c.diskMiB = max(c.diskMiB, int64(n.DiskGiB)*1024)
		}
		c.DiskSize = strconv.FormatInt(c.diskMiB, 10) + "M"
	}
	if err := load.Errors(errs); err != nil {
		return nil, warnings, err
	}
	return p, warnings, nil
}

// minDiskMiB is the smallest image worth making: an ESP and a root file
// system that holds a base and the role's binaries.
const minDiskMiB = 1024

// parseSize reads a disk size: MiB, or a number with the suffix M, G or T.
func parseSize(s string) (int64, error) {
	num, unit := s, int64(1)
	switch {
	case strings.HasSuffix(s, "M"):
		num = strings.TrimSuffix(s, "M")
	case strings.HasSuffix(s, "G"):
		num, unit = strings.TrimSuffix(s, "G"), 1024
	case strings.HasSuffix(s, "T"):
		num, unit = strings.TrimSuffix(s, "T"), 1024*1024
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n <= 0 || n > (1<<40)/unit {
		return 0, fmt.Errorf("%q is not a size: want a number of MiB, or a number with the suffix M, G or T (for example 20G)", s)
	}
	if n*unit < minDiskMiB {
		return 0, fmt.Errorf("%q is smaller than %d MiB", s, minDiskMiB)
	}
	return n * unit, nil
}
