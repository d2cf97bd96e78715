package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func newBake() *cobra.Command {
	return &cobra.Command{
		Use:    "bake",
		Short:  "Bake LXC templates and KVM disk images from a base rootfs and the node trees",
		Hidden: true,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("bake is not implemented yet")
		},
	}
}
