package main

import (
	"errors"
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
	var file, dir, workDir string
	var binDirs []string
	var noGenerate bool
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

Needs root on Linux, iproute2, and the pinned binaries (make tools).`,
		Example: `  sudo hardway verify -f cluster.yaml --bin-dir bin/tools
  sudo hardway verify -f cluster.yaml --dir out --no-generate -o json | jq '.checks[] | select(.pass | not)'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.resolve(); err != nil {
				return err
			}
			if noGenerate && dir == "" {
				return usageErrorf("--no-generate needs --dir, the output root holding the generated <cluster>/")
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
			if !noGenerate {
				start := time.Now()
				res, err := generate.Run(cmd.Context(), doc, generate.Options{Out: dir, Log: slog.Default()})
				if err != nil {
					return err
				}
				p := verify.Phase{Name: "generate", Took: time.Since(start), Detail: fmt.Sprintf("%s (%d files changed)", res.Dir, len(res.Changed))}
				p.Print(w)
				gen = append(gen, phaseJSON(p))
			}
			rep, err := verify.Run(cmd.Context(), verify.Options{
				Cluster: doc.Cluster,
				Dir:     filepath.Join(dir, doc.Cluster.Metadata.Name),
				BinDirs: binDirs,
				WorkDir: workDir,
				Out:     w,
				Log:     slog.Default(),
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
			switch {
			case err != nil && rep != nil && len(rep.Phases) > 0 && errors.Is(err, rep.Phases[len(rep.Phases)-1].Err):
				return exitError{exitFailed} // its phase line said it
			case err != nil:
				return err
			case !rep.OK():
				return exitError{exitFindings}
			}
			return nil
		},
	}
	specFlag(cmd, &file)
	dirFlag(cmd, &dir, "", "output root to generate <cluster>/ into (or, with --no-generate, to use) (default a temp dir)")
	out = addOutput(cmd).legacyOutput(&dir, "--dir")
	cmd.Flags().BoolVar(&noGenerate, "no-generate", false, "use the existing <dir>/<cluster> as is")
	cmd.Flags().StringArrayVar(&binDirs, "bin-dir", defaultBin, "directory of the pinned binaries, looked up by base name (repeatable; $HARDWAY_BIN_DIR, when set, replaces bin/tools)")
	_ = cmd.MarkFlagDirname("bin-dir")
	cmd.Flags().StringVar(&workDir, "work-dir", "", "directory for node roots and logs, kept (default: a temp dir, removed after a passing run)")
	_ = cmd.MarkFlagDirname("work-dir")
	return cmd
}
