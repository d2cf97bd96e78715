// Package node is the hardway-node provisioner: it installs a node's file
// tree, the same entries `hardway generate` writes to
// nodes/<node>/overlay.tar, into a machine that another builder made
// (proxmox-clone, qemu, null over SSH...), then prepares that machine to
// become a template. The tree comes from hardway's generators and emit.Tar;
// the provisioner only moves it and runs the commands that install it.
package node

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2/hcldec"
	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/nodegen"
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
	overlay, err := emit.Tar(t, load.Epoch().Time())
	if err != nil {
		return err
	}
	staged := path.Join(c.StagingDirectory, "hardway-"+p.node.Name+"-overlay.tar")
	ui.Say(fmt.Sprintf("Uploading the tree of %s (%d bytes) to %s", p.node.Name, len(overlay), staged))
	unstage, err := upload(ctx, ui, comm, staged, bytes.NewReader(overlay))
	if err != nil {
		return err
	}
	defer unstage()

	sudo := useSudo(c, generated)
	for _, s := range steps(c, staged, t) {
		if s.skip != "" {
			ui.Say(s.skip)
			continue
		}
		ui.Say(s.say)
		var err error
		if s.sysprep {
			err = sysprep(ctx, ui, comm, sudo, "/", path.Join(c.StagingDirectory, "hardway-"+p.node.Name+"-sysprep.tar"))
		} else {
			err = run(ctx, ui, comm, shell(sudo, s.script), nil)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", s.say, err)
		}
	}
	return nil
}

// shell is the command that runs script with sh -e, through sudo when asked.
func shell(sudo bool, script string) string {
	cmd := "sh -c " + quote("set -e\n"+script)
	if sudo {
		cmd = "sudo -n " + cmd
	}
	return cmd
}

// tree generates the node's file tree: from the PKI state in pki_dir when
// set (read-only), else after running `hardway generate` into
// output_directory.
func (p *Provisioner) tree(ctx context.Context, ui packersdk.Ui) (*tree.Tree, error) {
	var x *nodegen.Context
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
	say     string // what the build output says it does
	script  string // run by sh -e, as root when through sudo
	skip    string // when set, the step is skipped and this says why
	sysprep bool   // the step is the sysprep (see sysprep), not a script
}

// steps is the installation of the staged tar of t, in order:
//   - extract it under destination_root, with the tree's numeric owners and
//     modes; directories that exist keep theirs (as bake keeps the base's
//     for parents the tree does not declare) and symlinks to directories
//     (merged /usr) are followed, not replaced;
//   - on /, reload systemd so that it sees the units (the tree carries the
//     enablement symlinks `systemctl enable` would create);
//   - on /, the sysprep every bake applies (rootfs.Sysprep), for a machine
//     becoming a template.
func steps(c *Config, staged string, t *tree.Tree) []step {
	root := c.DestinationRoot
	var units []string
	for _, u := range t.Units() {
		units = append(units, u.Name)
	}
	out := []step{{
		say:    fmt.Sprintf("Installing %d entries of %s under %s (enabling %s)", len(t.Entries()), t.Node, root, strings.Join(units, ", ")),
		script: extract(staged, root),
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
		say:     "Sysprep: emptying " + rootfs.MachineID + ", removing the SSH host keys and cloud-init's instance state",
		sysprep: true,
	})
}

// extract is the script that extracts the staged tar under root.
func extract(staged, root string) string {
	return fmt.Sprintf("mkdir -p %s\ntar -x -p --numeric-owner --no-overwrite-dir --keep-directory-symlink -f %s -C %s",
		quote(root), quote(staged), quote(root))
}

// sysprep applies rootfs.Sysprep, the layer every bake lays on its base, to
// the machine's file system at root: it asks the machine for the paths
// Sysprep looks at (rootfs.SysprepProbes), removes the layer's Remove
// patterns and extracts its entries, uploaded as a tar to staged.
func sysprep(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, sudo bool, root, staged string) error {
	var out bytes.Buffer
	if err := run(ctx, ui, comm, shell(sudo, probeScript(root)), &out); err != nil {
		return fmt.Errorf("probe: %w", err)
	}
	m, err := parseProbe(root, out.String())
	if err != nil {
		return err
	}
	l := rootfs.Sysprep(m)
	var layer bytes.Buffer
	if err := l.Tar(&layer, load.Epoch().Time()); err != nil {
		return err
	}
	unstage, err := upload(ctx, ui, comm, staged, &layer)
	if err != nil {
		return err
	}
	defer unstage()
	var rm []string
	for _, r := range l.Remove {
		rm = append(rm, quoteGlob(path.Join(root, r)))
	}
	return run(ctx, ui, comm, shell(sudo, "rm -rf -- "+strings.Join(rm, " ")+"\n"+extract(staged, root)), nil)
}

// upload stages data at staged on the machine and returns what removes it
// again (reporting, not failing on, an error).
func upload(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, staged string, data io.Reader) (func(), error) {
	if err := comm.Upload(staged, data, nil); err != nil {
		return nil, fmt.Errorf("upload %s: %w", staged, err)
	}
	return func() {
		// The staged file belongs to the communicator's user: no sudo.
		if err := run(context.WithoutCancel(ctx), ui, comm, "rm -f "+quote(staged), nil); err != nil {
			ui.Error(fmt.Sprintf("removing %s: %v", staged, err))
		}
	}, nil
}

// probeScript prints, for each path of rootfs.SysprepProbes under root that
// exists, its kind (d, f, l for a dangling link, o for another type) and the
// path, links followed as rootfs.BaseInfo.Kind follows them.
func probeScript(root string) string {
	var ps []string
	for _, p := range rootfs.SysprepProbes() {
		ps = append(ps, quote(path.Join(root, p)))
	}
	return "for p in " + strings.Join(ps, " ") + `; do
if [ -d "$p" ]; then k=d; elif [ -f "$p" ]; then k=f; elif [ -e "$p" ]; then k=o; elif [ -L "$p" ]; then k=l; else continue; fi
printf '%s %s\n' "$k" "$p"
done`
}

// probed is a machine's answer to probeScript: rootfs.Machine.
type probed map[string]byte

func (m probed) Kind(p string) (byte, bool) { k, ok := m[p]; return k, ok }

// parseProbe reads probeScript's output; paths are given back relative to root.
func parseProbe(root, out string) (probed, error) {
	kinds := map[string]byte{"d": tar.TypeDir, "f": tar.TypeReg, "l": tar.TypeSymlink, "o": tar.TypeFifo}
	m := probed{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		k, p, ok := strings.Cut(line, " ")
		typ, known := kinds[k]
		rel, err := filepath.Rel(root, p)
		if !ok || !known || err != nil {
			return nil, fmt.Errorf("probe: unexpected line %q", line)
		}
		m["/"+filepath.ToSlash(rel)] = typ
	}
	return m, nil
}

// quoteGlob quotes p as a shell word in which only * stays a pattern.
func quoteGlob(p string) string {
	parts := strings.Split(p, "*")
	for i := range parts {
		parts[i] = quote(parts[i])
	}
	return strings.Join(parts, "*")
}

// run runs cmd on the machine and fails on a non-zero exit status; its
// standard output also goes to stdout when set.
func run(ctx context.Context, ui packersdk.Ui, comm packersdk.Communicator, cmd string, stdout io.Writer) error {
	rc := &packersdk.RemoteCmd{Command: cmd, Stdout: stdout}
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
