package main

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/spec"
)

// specFlag adds the -f flag every spec-reading command shares.
func specFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVarP(p, "file", "f", "cluster.yaml", "cluster spec (hardway.dev/v1alpha1 Cluster)")
	_ = cmd.MarkFlagFilename("file", "yaml", "yml")
}

// loadSpec parses and validates a spec, printing every issue as
// file:line:col: path: message. It fails (exit status 1) on any error.
func loadSpec(w io.Writer, file string, o spec.Options) (*spec.Document, error) {
	doc, err := spec.LoadFile(file)
	if err != nil {
		var is spec.Issues
		if errors.As(err, &is) {
			fmt.Fprintln(w, is.Error())
			return nil, exitError{1}
		}
		return nil, err
	}
	is := doc.Validate(o)
	if len(is) > 0 {
		fmt.Fprintln(w, is.Error())
	}
	if len(is.Errors()) > 0 {
		return nil, exitError{1}
	}
	return doc, nil
}
