//go:generate packer-sdc mapstructure-to-hcl2 -type Config
//go:generate packer-sdc struct-markdown

package node

import (
	"fmt"
	"path"

	"github.com/hashicorp/packer-plugin-sdk/common"
	"github.com/hashicorp/packer-plugin-sdk/template/config"

	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/spec"
)

// Config is the configuration of the hardway-node provisioner.
type Config struct {
	common.PackerConfig `mapstructure:",squash"`
	// The cluster spec (a hardway.dev/v1alpha1 Cluster file). It is checked
	// as `hardway validate` checks it; every problem is reported at once.
	Spec string `mapstructure:"spec" required:"true"`
	// The node whose file tree is installed, of any target.
	Node string `mapstructure:"node" required:"true"`
	// hardway's output root, as `hardway generate --dir`: the provisioner runs
	// `hardway generate` into `<output_directory>/<cluster>/`, which creates
	// or keeps the PKI state in its `pki/` directory, and generates the
	// node's tree with it. Defaults to `out`. Not used when `pki_dir` is set.
	OutputDirectory string `mapstructure:"output_directory"`
	// A PKI state directory to generate the node's tree with, read-only, for
	// example `out/<cluster>/pki` of an earlier `hardway generate`. Nothing
	// is written anywhere; a state that lacks something the spec needs, or
	// holds an expired or outdated certificate, fails the build instead of
	// being re-issued.
	PKIDir string `mapstructure:"pki_dir"`
	// Where the tree is installed on the machine. Defaults to `/`. For any
	// other directory (a chroot, a mounted image) the provisioner only
	// extracts the tree: it skips `systemctl daemon-reload` and the sysprep.
	DestinationRoot string `mapstructure:"destination_root"`
	// Run the installation through `sudo -n`. Defaults to true when the
	// communicator's user is not `root`.
	UseSudo config.Trilean `mapstructure:"use_sudo"`
	// The directory on the machine the overlay tar is uploaded to before it
	// is extracted (and removed afterwards). Defaults to `/tmp`.
	StagingDirectory string `mapstructure:"staging_directory"`
	// Leave the machine's identity alone: do not empty /etc/machine-id,
	// remove the SSH host keys or cloud-init's instance state. Use it for a
	// machine that is not going to become a template.
	SkipSysprep bool `mapstructure:"skip_sysprep"`
}

// Defaults.
const (
	defaultRoot    = "/"
	defaultStaging = "/tmp"
)

// prepare decodes raws into c and checks it; it returns the loaded spec
// and the node.
func (c *Config) prepare(raws ...interface{}) (*spec.Document, spec.Node, []string, error) {
	err := config.Decode(c, &config.DecodeOpts{PluginType: ProvisionerType, Interpolate: true}, raws...)
	if err != nil {
		return nil, spec.Node{}, nil, err
	}
	if c.OutputDirectory == "" {
		c.OutputDirectory = load.DefaultOutputDirectory
	}
	if c.DestinationRoot == "" {
		c.DestinationRoot = defaultRoot
	}
	if c.StagingDirectory == "" {
		c.StagingDirectory = defaultStaging
	}
	doc, warnings, errs := load.Spec(load.FieldSpec, c.Spec)
	var n spec.Node
	if doc != nil {
		n, err = load.Node(doc, load.FieldNode, c.Node)
		if err != nil {
			errs = append(errs, err)
		}
	} else if c.Node == "" {
		errs = append(errs, fmt.Errorf("%s: required: the node whose tree is installed", load.FieldNode))
	}
	for _, f := range []struct{ name, value string }{{"destination_root", c.DestinationRoot}, {"staging_directory", c.StagingDirectory}} {
		if !path.IsAbs(f.value) {
			errs = append(errs, fmt.Errorf("%s: %q is not an absolute path on the machine", f.name, f.value))
		}
	}
	c.DestinationRoot = path.Clean(c.DestinationRoot)
	if err := load.Errors(errs); err != nil {
		return nil, spec.Node{}, warnings, err
	}
	return doc, n, warnings, nil
}
