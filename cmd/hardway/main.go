// Command hardway turns one cluster spec into everything needed to run
// Kubernetes the hard way on Proxmox: PKI, kubeconfigs, node files and images.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
)

// Set by the linker: -X main.version=...
var version = "dev"

// exitError carries an exit status; its message is already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	root := newRoot()
	err := root.ExecuteContext(ctx)
	var ee exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		os.Exit(ee.code)
	default:
		fmt.Fprintln(os.Stderr, "hardway:", err)
		os.Exit(1)
	}
}

func newRoot() *cobra.Command {
	var verbose bool
	root := &cobra.Command{
		Use:   "hardway",
		Short: "Generate a Kubernetes-the-hard-way cluster for Proxmox from one spec",
		Long: `hardway turns one declarative cluster spec (hardway.dev/v1alpha1 Cluster)
into everything needed to run Kubernetes "the hard way" on Proxmox KVM
virtual machines and LXC containers: a PKI bundle, kubeconfigs, per-node
systemd units and configs, cloud-init or Ignition, and Proxmox fragments.
It orchestrates nothing live; its outputs are files.

Start with:  hardway init && hardway validate -f cluster.yaml && hardway generate -f cluster.yaml`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			level := slog.LevelInfo
			if verbose {
				level = slog.LevelDebug
			}
			slog.SetDefault(slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level, ReplaceAttr: dropTime})))
		},
	}
	root.PersistentFlags().BoolVarP(&verbose, "verbose", "v", false, "log debug details")
	root.AddCommand(newInit(), newValidate(), newGenerate(), newCerts(), newVerify(), newBake(), newPin(), newSchema(), newVersion())
	return root
}

// dropTime keeps log lines short and reproducible.
func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
