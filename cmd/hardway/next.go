package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"text/tabwriter"

	"golang.org/x/term"

	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/templates"
)

// isTerminal reports whether w is a terminal: what only a person reads
// (next steps, a live progress line) goes there and not into a pipe.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// nextSteps prints, after generate, the commands that usually follow it for
// this spec, the way kubeadm init prints its join command.
func nextSteps(w io.Writer, doc *spec.Document, file, dir, clusterDir string) {
	c := doc.Cluster
	f := "-f " + templates.ShellQuote(file)
	if file == "-" {
		f = "-f SPEC"
	}
	if dir != defaultDir {
		f += " --dir " + templates.ShellQuote(dir)
	}
	targets := map[string]bool{}
	controlPlane := false
	for _, n := range c.Spec.Nodes {
		targets[n.Target] = true
		controlPlane = controlPlane || n.Has(spec.RoleEtcd) || n.Has(spec.RoleController)
	}
	type step struct{ cmd, why string }
	steps := []step{{"hardway certs check " + f, "expiry of every certificate"}}
	// packaged mode pins Kubernetes, which no distribution packages.
	kube := len(c.NodesWith(spec.RoleController))+len(c.NodesWith(spec.RoleWorker)) > 0
	if (c.Spec.Binaries.Mode == spec.ModeUpstream || kube) && len(c.Spec.Binaries.SHA256) == 0 {
		steps = append(steps, step{"hardway pin -f " + templates.ShellQuote(file) + " --write",
			"pin the binaries in " + doc.BinariesDir() + "/ (bake takes pinned ones only)"})
	}
	if targets[spec.TargetLXC] {
		steps = append(steps, step{"hardway bake " + f + " --base BASE.tar.zst", "an LXC template per lxc node (base: hack/base.sh)"})
	}
	if targets[spec.TargetKVM] {
		steps = append(steps, step{"hardway bake " + f + " --base BASE.tar.zst --format kvm", "a disk image per kvm node (base: hack/base.sh --kvm)"})
	}
	if controlPlane {
		steps = append(steps, step{"sudo hardway verify " + f + " --no-generate --bin-dir bin/tools", "the control plane here, smoke-tested"})
	}
	fmt.Fprintln(w, "\nNext steps:")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, s := range steps {
		fmt.Fprintf(tw, "  %s\t# %s\n", s.cmd, s.why)
	}
	tw.Flush()
	fmt.Fprintf(w, "  On the Proxmox host: read %s, then run it there.\n", filepath.Join(clusterDir, proxmox.CreateNodesPath))
}
