package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/generate"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/verify"
)

func newVerify() *cobra.Command {
	var file, out, workDir string
	var binDirs []string
	var noGenerate bool
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
table and tears everything down. It exits 1 if any check fails.

It generates the cluster into -o first (default: a temp dir), or with
--no-generate uses what is already there. Every etcd and controller node (and
the first lb node, when HAProxy is installed) gets a network namespace holding
its own address, joined by a bridge in a hub namespace; nothing on the host's
interfaces changes. etcd, kube-apiserver, kube-controller-manager and
kube-scheduler run with the ExecStart= of the generated unit files, binaries
taken by base name from --bin-dir, and every path of the node (in its tree, or
under /etc, /var, /run) prefixed with a per-node root directory holding a copy
of the node's tree. Every process is stopped by PID and every namespace is
deleted, on success, failure and Ctrl-C.

Needs root on Linux, iproute2, and the pinned binaries (make tools).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if out == "" {
				if noGenerate {
					return fmt.Errorf("--no-generate needs -o, the directory holding %s/", doc.Cluster.Metadata.Name)
				}
				tmp, err := os.MkdirTemp("", "hardway-verify-out-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(tmp)
				out = tmp
			}
			dir := filepath.Join(out, doc.Cluster.Metadata.Name)
			if !noGenerate {
				start := time.Now()
				res, err := generate.Run(cmd.Context(), doc, generate.Options{Out: out, Log: slog.Default()})
				if err != nil {
					return err
				}
				fmt.Fprintf(w, "phase %-48s ok   %6s  %s (%d files changed)\n", "generate", time.Since(start).Round(time.Millisecond), res.Dir, len(res.Changed))
			}
			rep, err := verify.Run(cmd.Context(), verify.Options{
				Cluster: doc.Cluster,
				Dir:     dir,
				BinDirs: binDirs,
				WorkDir: workDir,
				Out:     w,
				Log:     slog.Default(),
			})
			if rep != nil && len(rep.Rows) > 0 {
				fmt.Fprintln(w, rep.Summary())
			}
			if err != nil {
				return err
			}
			if !rep.OK() {
				return exitError{1}
			}
			return nil
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().StringVarP(&out, "output", "o", "", "output directory to generate into (or, with --no-generate, to use); default a temp dir")
	cmd.Flags().BoolVar(&noGenerate, "no-generate", false, "use the existing <output>/<cluster> as is")
	cmd.Flags().StringArrayVar(&binDirs, "bin-dir", defaultBin, "directory of the pinned binaries, looked up by base name (repeatable; default $HARDWAY_BIN_DIR or bin/tools)")
	cmd.Flags().StringVar(&workDir, "work-dir", "", "directory for node roots and logs, kept (default: a temp dir, removed after a passing run)")
	return cmd
}
