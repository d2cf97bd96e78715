package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newVerify() *cobra.Command {
	return &cobra.Command{
		Use:    "verify",
		Short:  "Run the generated control plane in network namespaces and smoke-test it",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("verify is not implemented yet")
		},
	}
}
