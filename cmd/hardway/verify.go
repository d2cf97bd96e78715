package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/verify"
)

// bakeEveryNode bakes what each node of the spec boots from, as
// create-nodes.sh would import it, into <cluster>/bake: an LXC template per
// container; a KVM node's role image (once per role) or its own node image.
// It returns node → artifact, and node → why it is not booted for the nodes
// that cannot boot here: those booted by Ignition, whose image is the
// distribution's (Flatcar, Fedora CoreOS), which a build machine has no copy of.
func bakeEveryNode(ctx context.Context, doc *spec.Document, res *clusterdir.Result, base, kvmBase string) (artifacts, skipped map[string]string, err error) {
	x := nodegen.New(doc.Cluster, res.Bundle)
	cfg := bake.Config{Doc: doc, Out: filepath.Join(res.Dir, nodefiles.BakeDir), Parallel: 2, Log: slog.Default(), Epoch: sourceDate()}
	artifacts, skipped = map[string]string{}, map[string]string{}
	var kvmJobs []bake.Job
	lxc, roles := false, map[string][]string{} // role image → its nodes
	for _, n := range doc.Cluster.Spec.Nodes {
		switch {
		case n.Target == spec.TargetLXC:
			lxc = true
		case n.BootsByIgnition():
			skipped[n.Name] = fmt.Sprintf("boots by Ignition from the %s image, which is not on this machine", n.Ignition)
		case n.RoleImage != "":
			if roles[n.RoleImage] == nil {
				jobs, err := bake.KVMJobs(x, "", n.RoleImage)
				if err != nil {
					return nil, nil, err
				}
				kvmJobs = append(kvmJobs, jobs...)
			}
			roles[n.RoleImage] = append(roles[n.RoleImage], n.Name)
		default:
			jobs, err := bake.KVMJobs(x, n.Name, "")
			if err != nil {
				return nil, nil, err
			}
			kvmJobs = append(kvmJobs, jobs...)
		}
	}
	if lxc {
		jobs, err := bake.Jobs(x, bake.FormatLXC, "", "")
		if err != nil {
			return nil, nil, err
		}
		cfg.Base = base
		rs, err := bake.Run(ctx, cfg, jobs)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rs {
			artifacts[r.Job.Node] = r.Path
		}
	}
	if len(kvmJobs) > 0 {
		if kvmBase == "" {
			return nil, nil, errors.New("the spec has KVM nodes: --kvm-base names the base of their images (hack/base.sh --kvm)")
		}
		cfg.Base = kvmBase
		rs, err := bake.RunKVM(ctx, cfg, bake.KVMOptions{Formats: []string{bake.ImageRaw}}, kvmJobs)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range rs {
			if r.Job.Node != "" {
				artifacts[r.Job.Node] = r.Path
				continue
			}
			for _, n := range roles[r.Job.Subject] {
				artifacts[n] = r.Path
			}
		}
	}
	return artifacts, skipped, nil
}

func newVerify() *cobra.Command {
	var file, dir, workDir, base, kvmBase, sshIdentity string
	var binDirs []string
	var noGenerate, boot, failFast, keep bool
	var out *outputFlag
	defaultBin := []string{"bin/tools"}
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		defaultBin = []string{d}
	}
	cmd := &cobra.Command{
		Use: "verify",
		// Stopping removes temporary artifacts and processes: give it time.
		Annotations: map[string]string{"grace": "cleanup"},
		Short:       "Run the generated control plane in network namespaces and smoke-test it",
		Long: `verify starts the spec's control plane on this machine exactly as the nodes will
run it, runs the smoke checks of Kubernetes The Hard Way, prints a pass/fail
table and tears everything down. It exits 3 if any check fails, 1 if it
could not run them. With -o json it prints the phases and checks as one
document (see docs/cli.md) and its progress on standard error.

It generates the cluster into --dir first (default: a temp dir), or with
--no-generate uses what is already there. Every etcd and controller node (and
the first lb node, when HAProxy is installed) gets a network namespace holding
its own address, joined by a bridge in a hub namespace; nothing on the host's
interfaces changes. etcd, kube-apiserver, kube-controller-manager and
kube-scheduler run with the ExecStart= of the generated unit files, binaries
taken by base name from --bin-dir, and every path of the node (in its tree, or
under /etc, /var, /run) prefixed with a per-node root directory holding a copy
of the node's tree. Every process is stopped by PID and every namespace is
deleted, on success, failure and Ctrl-C.

With --boot it checks what ships instead: it bakes every node's artifact
into <dir>/<cluster>/bake (LXC templates from --base, KVM images from
--kvm-base) and boots every node from it, each at its spec address on a
bridge of its own with no route off it: LXC templates unpacked with pct's
tar flags and started by lxc-start with the LXC configuration pve-container
writes from the node's proxmox.conf, KVM images under qemu with OVMF and the
devices qemu-server makes of it. The hub namespace plays the Proxmox host.
The rows then check the booted cluster from there: every node's systemd
running, etcd, the VIP on exactly one lb, the API through it, the admin
kubeconfigs, encryption at rest; the workers' rows (Ready, pods, a
Deployment spread over two workers, logs and exec, port-forward, a ClusterIP
Service across workers, CoreDNS, a NodePort Service from the gateway, pod to
pod); the gateway (SSH on the bastion port, kubectl there, ssh -J to a
worker: with --ssh-identity, the private half of a key in
spec.ssh.authorizedKeys, else the SSH handshake only); and last the
failovers, which stop nodes for good: the lb holding the VIP, then the
controller leading the controller-manager (the API must keep answering and
the leader leases move), each with the time it took. The spec's binaries
must be pinned (hardway pin --write) and its images built (make images).

Needs root on Linux, iproute2, and the pinned binaries (make tools); with
--boot also lxc, and for KVM nodes qemu-system-x86 and ovmf.`,
		Example: `  sudo hardway verify -f cluster.yaml --bin-dir bin/tools
  sudo hardway verify -f cluster.yaml --dir out --no-generate -o json | jq '.checks[] | select(.pass | not)'
  sudo hardway verify -f cluster.yaml --boot --base ~/.cache/hardway/base/debian-12-base.tar.zst --dir out`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.resolve(); err != nil {
				return err
			}
			if noGenerate && dir == "" {
				return usageErrorf("--no-generate needs --dir, the output root holding the generated <cluster>/")
			}
			if boot && noGenerate {
				return usageErrorf("--boot bakes from what it generates: drop --no-generate")
			}
			if sshIdentity != "" && !boot {
				return usageErrorf("--ssh-identity goes with --boot (the gateway row)")
			}
			if boot != (base != "") || (kvmBase != "" && !boot) {
				return usageErrorf("--boot and --base go together (--kvm-base too, for KVM nodes)")
			}
			// Before anything is generated: a wrong --bin-dir would
			// otherwise show only after the whole bundle was written.
			for _, d := range binDirs {
				if fi, err := os.Stat(d); err != nil || !fi.IsDir() {
					return fmt.Errorf("--bin-dir %s: not a directory (make tools builds bin/tools)", d)
				}
			}
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out.json() {
				w = cmd.ErrOrStderr() // progress; the document goes to standard output
			}
			if dir == "" {
				tmp, err := os.MkdirTemp("", "hardway-verify-out-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				dir = tmp
			}
			var gen []phaseOutput
			var artifacts, skipped map[string]string
			if !noGenerate {
				start := time.Now()
				res, err := clusterdir.Run(cmd.Context(), doc, generateOptions(dir))
				if err != nil {
					return err
				}
				p := verify.Phase{Name: "generate", Took: time.Since(start), Detail: fmt.Sprintf("%s (%d files changed)", res.Dir, len(res.Changed))}
				p.Print(w)
				gen = append(gen, phaseJSON(p))
				if boot {
					start = time.Now()
					artifacts, skipped, err = bakeEveryNode(cmd.Context(), doc, res, base, kvmBase)
					p := verify.Phase{Name: "bake", Took: time.Since(start), Detail: fmt.Sprintf("%d artifacts in %s", len(artifacts), filepath.Join(res.Dir, nodefiles.BakeDir)), Err: err}
					p.Print(w)
					gen = append(gen, phaseJSON(p))
					if err != nil {
						return exitError{exitFailed}
					}
				}
			}
			rep, err := verify.Run(cmd.Context(), verify.Options{
				Cluster:     doc.Cluster,
				Dir:         filepath.Join(dir, doc.Cluster.Metadata.Name),
				BinDirs:     binDirs,
				WorkDir:     workDir,
				Out:         w,
				Log:         slog.Default(),
				Artifacts:   artifacts,
				Skipped:     skipped,
				Boot:        boot,
				FailFast:    failFast,
				SSHIdentity: sshIdentity,
				Keep:        keep,
			})
			if rep != nil && len(rep.Rows) > 0 {
				fmt.Fprintln(w, rep.Summary())
			}
			if out.json() {
				doc := verifyReport(rep)
				doc.Phases = append(gen, doc.Phases...)
				if jerr := writeJSON(cmd.OutOrStdout(), doc); jerr != nil && err == nil {
					err = jerr
				}
			}
			result := func() error {
				switch {
				case err != nil && rep != nil && len(rep.Phases) > 0 && errors.Is(err, rep.Phases[len(rep.Phases)-1].Err):
					return exitError{exitFailed} // its phase line said it
				case err != nil:
					return err
				case !rep.OK():
					return exitError{exitFindings}
				}
				return nil
			}()
			if rep != nil && rep.Kept {
				return signalEnds{result} // Ctrl-C is how --keep ends
			}
			return result
		},
	}
	specFlag(cmd, &file)
	dirFlag(cmd, &dir, "", "output root to generate <cluster>/ into (or, with --no-generate, to use) (default a temp dir)")
	out = addOutput(cmd).legacyOutput(&dir, "--dir")
	cmd.Flags().BoolVar(&noGenerate, "no-generate", false, "use the existing <dir>/<cluster> as is")
	cmd.Flags().StringArrayVar(&binDirs, "bin-dir", defaultBin, "directory of the pinned binaries, looked up by base name (repeatable; $HARDWAY_BIN_DIR, when set, replaces bin/tools)")
	_ = cmd.MarkFlagDirname("bin-dir")
	cmd.Flags().BoolVar(&failFast, "fail-fast", false, "after a failing check, record the others as not run instead of running each to its timeout")
	cmd.Flags().BoolVar(&boot, "boot", false, "bake every node's artifact and boot the whole cluster from them (needs --base)")
	cmd.Flags().StringVar(&base, "base", "", "with --boot: the base LXC templates are baked from (hack/base.sh)")
	_ = cmd.MarkFlagFilename("base")
	cmd.Flags().StringVar(&kvmBase, "kvm-base", "", "with --boot: the base KVM images are baked from (hack/base.sh --kvm), for a spec with KVM nodes")
	_ = cmd.MarkFlagFilename("kvm-base")
	cmd.Flags().BoolVar(&keep, "keep", false, "after the rows, leave the cluster up and print how to enter its nodes until interrupted (Ctrl-C), which tears it down; the exit status is then that of the rows, not 130")
	cmd.Flags().StringVar(&sshIdentity, "ssh-identity", "", "with --boot: an OpenSSH private key (unencrypted) whose public half spec.ssh.authorizedKeys holds, for the gateway row's login")
	_ = cmd.MarkFlagFilename("ssh-identity")
	cmd.Flags().StringVar(&workDir, "work-dir", "", "directory for node roots and logs, kept (default: a temp dir, removed after a passing run)")
	_ = cmd.MarkFlagDirname("work-dir")
	return cmd
}
