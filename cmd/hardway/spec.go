package main

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/spec"
)

// stdinName names standard input (-f -) in messages.
const stdinName = "<stdin>"

// readSpec parses and validates the spec at file ("-": standard input, whose
// relative paths are relative to the working directory). doc is nil when it
// could not be parsed; err is set when it could not be read at all.
func readSpec(file string, o spec.Options) (*spec.Document, spec.Issues, error) {
	var doc *spec.Document
	var err error
	if file == "-" {
		doc, err = spec.Read(stdinName, ".", os.Stdin)
	} else {
		doc, err = spec.LoadFile(file)
	}
	if err != nil {
		var is spec.Issues
		if errors.As(err, &is) {
			return nil, is, nil
		}
		return nil, nil, err
	}
	return doc, doc.Validate(o), nil
}

// loadSpec parses and validates a spec, printing every issue as
// file:line:col: path: message, but the warnings the spec acknowledges
// (validate shows those). It fails (exit status 1) on any error.
func loadSpec(w io.Writer, file string, o spec.Options) (*spec.Document, error) {
	return checkSpec(w, file, o, false)
}

// clusterFlags are the flags of a command over a spec and its cluster
// directory: -f, --dir (the output root holding <cluster>/) and -o.
type clusterFlags struct {
	file, dir string
	out       *outputFlag
}

// clusterCommand completes cmd (its Use, Short, Long and Example set) as a
// command over the spec of -f and <dir>/<cluster>/: no arguments, -f, --dir
// (dirUsage) and -o; it checks -o, loads the spec (loadSpec) and calls run.
// generate, plan and certs check are such commands.
func clusterCommand(cmd *cobra.Command, dirUsage string, run func(cmd *cobra.Command, doc *spec.Document, f *clusterFlags) error) *clusterFlags {
	f := &clusterFlags{}
	cmd.Args = cobra.NoArgs
	cmd.RunE = func(cmd *cobra.Command, _ []string) error {
		if err := f.out.resolve(); err != nil {
			return err
		}
		doc, err := loadSpec(cmd.ErrOrStderr(), f.file, spec.Options{})
		if err != nil {
			return err
		}
		return run(cmd, doc, f)
	}
	specFlag(cmd, &f.file)
	dirFlag(cmd, &f.dir, defaultDir, dirUsage)
	f.out = addOutput(cmd)
	return f
}

// checkSpec is loadSpec; acknowledged prints the acknowledged warnings too.
func checkSpec(w io.Writer, file string, o spec.Options, acknowledged bool) (*spec.Document, error) {
	doc, is, err := readSpec(file, o)
	if err != nil {
		return nil, err
	}
	shown := is
	if !acknowledged {
		shown = is.Unacknowledged()
	}
	if len(shown) > 0 {
		fmt.Fprintln(w, shown.Error())
	}
	if doc == nil || len(is.Errors()) > 0 {
		return nil, exitError{exitFailed}
	}
	return doc, nil
}
