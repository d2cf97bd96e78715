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

// resolveAndLoad checks the -o flag, then loads the spec of -f (loadSpec):
// the start of every command that reads a spec and prints a document.
func resolveAndLoad(cmd *cobra.Command, out *outputFlag, file string) (*spec.Document, error) {
	if err := out.resolve(); err != nil {
		return nil, err
	}
	return loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
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
