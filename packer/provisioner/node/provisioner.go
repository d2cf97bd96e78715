// Package node is the hardway-node provisioner: it installs a node's file
// tree, the same entries `hardway generate` writes to
// nodes/<node>/overlay.tar, into a machine that another builder made
// (proxmox-clone, qemu, null over SSH...), then prepares that machine to
// become a template. The tree comes from hardway's generators and emit.Tar;
// the provisioner only moves it and runs the commands that install it.
package node

import (
	"bytes"
	"context"
	"fmt"
	"path"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/packer/internal/load"
	"github.com/hardway-dev/hardway/packer/internal/uilog"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// ProvisionerType is the provisioner's name in templates.
const ProvisionerType = "hardway-node"

// Provisioner installs a node's tree through the build's communicator.
type Provisioner struct {
	config   Config
	doc      *spec.Document
	node     spec.Node
	warnings []string
}

// ConfigSpec is the HCL2 schema of Config.
func (p *Provisioner) ConfigSpec() hcldec.ObjectSpec { return p.config.FlatMapstructure().HCL2Spec() }

// Prepare checks the configuration: the spec, the node, the paths.
func (p *Provisioner) Prepare(raws ...interface{}) error {
	doc, n, warnings, err := p.config.prepare(raws...)
	p.doc, p.node, p.warnings = doc, n, warnings
	return err
}

// Provision generates the node's tree, uploads it as a tar, extracts it
// under destination_root and, when that is /, reloads systemd and runs the
// sysprep.
func (p *Provisioner) Provision(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, generated map[string]interface{}) error {
	c := &p.config
	for _, w := range p.warnings {
		ui.Message("warning: " + w)
	}
	t, err := p.tree(ctx, ui)
	if err != nil {
		return err
	}
	var overlay bytes.Buffer
	if err := emit.Tar(&overlay, t, load.Epoch().Time()); err != nil {
		return err
	}
	staged := path.Join(c.StagingDirectory, "hardway-"+p.node.Name+"-overlay.tar")
	ui.Say(fmt.Sprintf("Uploading the tree of %s (%d bytes) to %s", p.node.Name, overlay.Len(), staged))
	if err := comm.Upload(staged, &overlay, nil); err != nil {
		return fmt.Errorf("upload %s: %w", staged, err)
	}
	defer func() {
		// The staged tar belongs to the communicator's user: no sudo.
		if err := run(context.WithoutCancel(ctx), ui, comm, "rm -f "+quote(staged)); err != nil {
			ui.Error(fmt.Sprintf("removing %s: %v", staged, err))
		}
	}()

	sudo := useSudo(c, generated)
	for _, s := range steps(c, staged, t) {
		if s.skip != "" {
			ui.Say(s.skip)
			continue
		}
		ui.Say(s.say)
		cmd := "sh -c " + quote("set -e\n"+s.script)
		if sudo {
			cmd = "sudo -n " + cmd
		}
		if err := run(ctx, ui, comm, cmd); err != nil {
			return fmt.Errorf("%s: %w", s.say, err)
		}
	}
	return nil
}

// tree generates the node's file tree: from the PKI state in pki_dir when
// set (read-only), else after running `hardway generate` into
// output_directory.
func (p *Provisioner) tree(ctx context.Context, ui packersdk.Ui) (*tree.Tree, error) {
	var x *gen.Context
	var err error
	if p.config.PKIDir != "" {
		ui.Say(fmt.Sprintf("Generating the tree of %s with the PKI state in %s", p.node.Name, p.config.PKIDir))
		x, err = load.PKI(p.doc, p.config.PKIDir)
	} else {
		ui.Say(fmt.Sprintf("Generating %s into %s", p.doc.File, load.ClusterDir(p.doc, p.config.OutputDirectory)))
		x, _, err = load.Generate(ctx, p.doc, p.config.OutputDirectory, uilog.New(ui))
	}
	if err != nil {
		return nil, err
	}
	return generators.Node(x, p.node)
}

// useSudo says whether to install through sudo: use_sudo when set, else
// whenever the communicator's user is known and is not root.
func useSudo(c *Config, generated map[string]interface{}) bool {
	if b := c.UseSudo.ToBoolPointer(); b != nil {
		return *b
	}
	user, _ := generated["User"].(string)
	return user != "" && user != "root"
}

// step is one remote shell script of the installation.
type step struct {
	say    string // what the build output says it does
	script string // run by sh -e, as root when through sudo
	skip   string // when set, the step is skipped and this says why
}

// steps is the installation of the staged tar of t, in order:
//   - extract it under destination_root, with the tree's numeric owners and
//     modes; directories that exist keep theirs (as bake keeps the base's
//     for parents the tree does not declare) and symlinks to directories
//     (merged /usr) are followed, not replaced;
//   - on /, reload systemd so that it sees the units (the tree carries the
//     enablement symlinks `systemctl enable` would create);
//   - on /, the sysprep every bake applies, for a machine becoming a
//     template: an empty /etc/machine-id (and dbus's copy a link to it), no
//     SSH host keys, cloud-init's state cleaned so that clones run it again.
func steps(c *Config, staged string, t *tree.Tree) []step {
	root := c.DestinationRoot
	var units []string
	for _, u := range t.Units() {
		units = append(units, u.Name)
	}
	out := []step{{
		say: fmt.Sprintf("Installing %d entries of %s under %s (enabling %s)", len(t.Entries()), t.Node, root, strings.Join(units, ", ")),
		script: fmt.Sprintf("mkdir -p %s\ntar -x -p --numeric-owner --no-overwrite-dir --keep-directory-symlink -f %s -C %s",
			quote(root), quote(staged), quote(root)),
	}}
	if root != "/" {
		return append(out, step{skip: fmt.Sprintf("destination_root is %s, not /: skipping systemctl daemon-reload and the sysprep", root)})
	}
	out = append(out, step{
		say:    "Reloading systemd",
		script: "if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi",
	})
	if c.SkipSysprep {
		return append(out, step{skip: "skip_sysprep is set: leaving machine-id, SSH host keys and cloud-init's state alone"})
	}
	return append(out, step{
		say:    "Sysprep: emptying " + rootfs.MachineID + ", removing the SSH host keys, cleaning cloud-init's state",
		script: sysprep,
	})
}

// sysprep is the live counterpart of rootfs.Sysprep.
var sysprep = strings.Join([]string{
	"if [ -e " + rootfs.MachineID + " ]; then truncate -s 0 " + rootfs.MachineID + "; fi",
	"if [ -f /var/lib/dbus/machine-id ] && [ ! -L /var/lib/dbus/machine-id ]; then ln -sf " + rootfs.MachineID + " /var/lib/dbus/machine-id; fi",
	"rm -f " + rootfs.SSHHostKeys,
	"if command -v cloud-init >/dev/null 2>&1; then cloud-init clean; fi",
}, "\n")

// run runs cmd on the machine and fails on a non-zero exit status.
func run(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, cmd string) error {
	rc := &packersdk.RemoteCmd{Command: cmd}
	if err := rc.RunWithUi(ctx, comm, ui); err != nil {
		return err
	}
	if s := rc.ExitStatus(); s != 0 {
		return fmt.Errorf("exit status %d", s)
	}
	return nil
}

// quote returns s as one POSIX shell word.
func quote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
