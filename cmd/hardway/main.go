// Command hardway turns one cluster spec into everything needed to run
// Kubernetes the hard way on Proxmox: PKI, kubeconfigs, node files and images.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/spec"
)

// Set by the linker: -X main.version=...
var version = "dev"

// Exit statuses: one meaning each, listed by exitCodes (hardway --help and
// docs/cli.md print that table).
const (
	exitFailed   = 1 // the spec or another input is invalid, or the work failed
	exitUsage    = 2 // the command line is wrong
	exitFindings = 3 // a check ran and found problems
)

// exitCodes documents every exit status.
var exitCodes = []struct {
	Code    string
	Meaning string
}{
	{"0", "success (warnings do not fail a command)"},
	{strconv.Itoa(exitFailed), "the spec or another input is invalid (every problem printed as file:line:col: field: message), or the work failed"},
	{strconv.Itoa(exitUsage), "usage: an unknown command or flag, a bad flag value, a missing or extra argument"},
	{strconv.Itoa(exitFindings), "findings: certs check found a certificate that is not ok; verify ran and a check failed; plan found something generate would change"},
	{"128+N", "stopped by signal N (130 for Ctrl-C, 143 for SIGTERM)"},
}

// exitError carries an exit status; its message is already printed.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

// usageError is a wrong command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// ranError is an error a command's RunE returned: the command line was
// right (exit status 1). Every other error cobra returns (an unknown flag
// or command, arguments its Args refuses, a missing required flag) is a
// usage error.
type ranError struct{ err error }

func (e ranError) Error() string { return e.err.Error() }
func (e ranError) Unwrap() error { return e.err }

// markRunErrors wraps the RunE of c and its subcommands so that their
// errors are told apart from cobra's usage errors.
func markRunErrors(c *cobra.Command) {
	if f := c.RunE; f != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			err := f(cmd, args)
			var ue usageError
			var ee exitError
			if err == nil || errors.As(err, &ue) || errors.As(err, &ee) {
				return err
			}
			return ranError{err}
		}
	}
	for _, sub := range c.Commands() {
		markRunErrors(sub)
	}
}

// exitStatus prints err (unless printed already) and returns its exit status.
func exitStatus(err error, cmd *cobra.Command, stderr io.Writer) int {
	var ee exitError
	var re ranError
	switch {
	case errors.As(err, &ee):
		return ee.code
	case errors.As(err, &re):
		fmt.Fprintln(stderr, "hardway:", err)
		return exitFailed
	}
	fmt.Fprintln(stderr, "hardway:", err)
	if cmd != nil {
		fmt.Fprintf(stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
	}
	return exitUsage
}

func main() {
	os.Exit(run(os.Args[1:], os.Stderr))
}

// run executes one command line and returns the exit status. SIGINT and
// SIGTERM stop it (see stopOnSignal).
func run(args []string, stderr io.Writer) int {
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sigs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	root := newRoot()
	root.SetArgs(args)
	root.SetErr(stderr)
	var stopping atomic.Int32 // the signal being handled, 0 before one arrives
	go stopOnSignal(sigs, cancel, &stopping, graceOf(root, args), stderr, os.Exit)

	cmd, err := root.ExecuteContextC(ctx)
	var ee exitError
	var ended signalEnds
	if errors.As(err, &ended) {
		// The signal ended a wait the user asked for (verify --keep):
		// the command's own result is the exit status.
		stopping.Store(0)
		err = ended.err
	}
	switch {
	case stopping.Load() != 0:
		// The command returned after cleaning up: say what it stopped,
		// and report the signal the way a shell does.
		if err != nil && !errors.As(err, &ee) {
			fmt.Fprintln(stderr, "hardway:", err)
		}
		return 128 + int(stopping.Load())
	case err == nil:
		return 0
	default:
		return exitStatus(err, cmd, stderr)
	}
}

// signalEnds is returned by a command whose normal end is a signal (verify
// --keep waits for Ctrl-C): err, possibly nil, is its result.
type signalEnds struct{ err error }

func (s signalEnds) Error() string {
	if s.err == nil {
		return "ended by a signal"
	}
	return s.err.Error()
}

func (s signalEnds) Unwrap() error { return s.err }

// stopOnSignal waits for SIGINT or SIGTERM and cancels the run's context, so
// long work (bake, verify) stops at its next chunk and removes what it
// started. A command that has not returned within its grace period (one
// blocked in a read that never looks at the context) or a second signal
// ends the process with 128+signal: a pipeline's timeout or Ctrl-C always
// stops hardway, and every write is atomic, so nothing half-done is left
// for the next run to trust.
func stopOnSignal(sigs <-chan os.Signal, cancel func(), stopping *atomic.Int32, grace time.Duration, stderr io.Writer, exit func(int)) {
	sig, ok := <-sigs
	if !ok {
		return
	}
	num := int32(syscall.SIGTERM)
	if s, isSys := sig.(syscall.Signal); isSys {
		num = int32(s)
	}
	stopping.Store(num)
	cancel()
	select {
	case <-sigs:
		fmt.Fprintf(stderr, "hardway: %s again: exiting now\n", sig)
	case <-time.After(grace):
		fmt.Fprintf(stderr, "hardway: %s: did not stop within %s; exiting\n", sig, grace)
	}
	exit(128 + int(num))
}

// Grace periods between the first signal and a forced exit. Commands that
// start processes or write large temporary files get longer to stop them and
// clean up (see the "grace" annotation); the rest stop within a second.
const (
	quickGrace   = 500 * time.Millisecond
	cleanupGrace = 30 * time.Second
)

// graceOf returns the grace period of the command args select.
func graceOf(root *cobra.Command, args []string) time.Duration {
	cmd, _, err := root.Find(args)
	if err != nil || cmd == nil {
		return quickGrace
	}
	if cmd.Annotations["grace"] == "cleanup" {
		return cleanupGrace
	}
	return quickGrace
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

Start with:  hardway init && hardway validate -f cluster.yaml && hardway generate -f cluster.yaml

` + exitStatusHelp(),
		Version:       versionString() + " (spec " + spec.APIVersion + ")",
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
	root.SetVersionTemplate("hardway {{.Version}}\n")
	root.AddCommand(newInit(), newValidate(), newGenerate(), newPlan(), newCerts(), newVerify(), newBake(), newBase(), newPin(), newSchema(), newVersion())
	markRunErrors(root)
	return root
}

// exitStatusHelp is the exit status table of hardway --help.
func exitStatusHelp() string {
	var b strings.Builder
	b.WriteString("Exit status:\n")
	for _, e := range exitCodes {
		fmt.Fprintf(&b, "  %-6s %s\n", e.Code, e.Meaning)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// dropTime keeps log lines short and reproducible.
func dropTime(_ []string, a slog.Attr) slog.Attr {
	if a.Key == slog.TimeKey {
		return slog.Attr{}
	}
	return a
}
