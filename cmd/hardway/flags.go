package main

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
)

// The flags below have one meaning in every command that takes them:
//
//	-f, --file    the cluster spec ("-" for standard input; init: the file it writes, "-" for standard output)
//	-o, --output  the output format, text or json, as kubectl's -o
//	--dir         the output root of generate, holding <cluster>/ (generate, certs, bake, verify)
//
// Until this release -o also named a file (init) or a directory (generate,
// bake, verify); those spellings still work, with a notice (see legacyOutput).

// specFlag adds the -f flag every spec-reading command shares.
func specFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "file", "f", "cluster.yaml", `cluster spec (hardway.dev/v1alpha1 Cluster); "-" reads standard input`)
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
}

// defaultDir is the output root --dir names when not given (verify's is a
// temporary directory instead).
const defaultDir = "out"

// dirFlag adds --dir, the output root holding <cluster>/.
func dirFlag(cmd *cobra.Command, p *string, def, usage string) {
	cmd.Flags().StringVar(p, "dir", def, usage)
	_ = cmd.MarkFlagDirname("dir")
}

// Output formats of -o.
const (
	formatText = "text"
	formatJSON = "json"
)

// outputFlag is a command's -o/--output: the format of what it prints on
// standard output.
type outputFlag struct {
	cmd    *cobra.Command
	format string
	// legacy, when set, is where the previous release's -o DIR went: a
	// value of -o that is no format still goes there, with a notice
	// naming the flag that replaces it (legacyFlag).
	legacy     *string
	legacyFlag string
}

// addOutput adds -o/--output to cmd.
func addOutput(cmd *cobra.Command) *outputFlag {
	o := &outputFlag{cmd: cmd, format: formatText}
	cmd.Flags().StringVarP(&o.format, "output", "o", formatText, "output format: text or json")
	_ = cmd.RegisterFlagCompletionFunc("output", cobra.FixedCompletions([]string{formatText, formatJSON}, cobra.ShellCompDirectiveNoFileComp))
	return o
}

// legacyOutput makes a value of -o that is no format set *dir instead,
// as -o DIR did before this release, and say that flag replaces it.
func (o *outputFlag) legacyOutput(dir *string, flag string) *outputFlag {
	o.legacy, o.legacyFlag = dir, flag
	f := o.cmd.Flags().Lookup("output")
	f.Usage += fmt.Sprintf(" (-o DIR, the previous release's %s DIR, works until the next release)", flag)
	return o
}

// resolve checks the format, or moves a previous release's -o DIR to its
// new flag and says so on standard error.
func (o *outputFlag) resolve() error {
	if o.format == formatText || o.format == formatJSON {
		return nil
	}
	if o.legacy == nil || strings.TrimSpace(o.format) == "" {
		return usageErrorf("unknown output format %q (text or json)", o.format)
	}
	if o.cmd.Flags().Changed(strings.TrimPrefix(o.legacyFlag, "--")) {
		return usageErrorf("-o %s and %s both name the directory: -o is the output format (text or json), use %s", o.format, o.legacyFlag, o.legacyFlag)
	}
	deprecated(o.cmd, "-o "+o.format, o.legacyFlag+" "+o.format)
	*o.legacy, o.format = o.format, formatText
	return nil
}

func (o *outputFlag) json() bool { return o.format == formatJSON }

// deprecated says on standard error that a spelling of the previous release
// still works in this one only.
func deprecated(cmd *cobra.Command, old, now string) {
	fmt.Fprintf(cmd.ErrOrStderr(), "hardway: warning: %s %s is deprecated and will be removed in the next release: use %s %s\n",
		cmd.CommandPath(), old, cmd.CommandPath(), now)
}

// oneOf checks a flag's value against its allowed ones (a usage error).
func oneOf(flag, value string, allowed ...string) error {
	if slices.Contains(allowed, value) {
		return nil
	}
	return usageErrorf("--%s: unknown value %q (have: %s)", flag, value, strings.Join(allowed, ", "))
}
