package main

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
)

func newPin() *cobra.Command {
	var file string
	var write bool
	cmd := &cobra.Command{
		Use:   "pin",
		Short: "Pin the upstream binaries in binaries.dir by their SHA-256",
		Long: `pin hashes every binary the roles of the spec's nodes take from
binaries.dir (binaries.mode upstream; relative to the spec file) that is
there, and prints the spec.binaries.sha256 mapping that pins them. With
--write it sets that mapping in the spec file itself, editing only those
lines (comments and layout stay), atomically.

bake refuses a binary that is not pinned or whose SHA-256 differs from its
pin, so pin once from binaries you trust (checked against the release's
own checksums), not from whatever is in the directory at bake time.
Required binaries that are missing are listed; bake fails for the nodes
that need them until they are there and pinned.`,
		Example: `  hardway pin -f cluster.yaml            # print the mapping
  hardway pin -f cluster.yaml --write    # set it in cluster.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			pins, missing, err := bake.Pins(doc)
			if err != nil {
				return err
			}
			dir := filepath.Join(doc.Dir, doc.Cluster.Spec.Binaries.Dir)
			for _, m := range missing {
				fmt.Fprintf(cmd.ErrOrStderr(), "not pinned: %s is missing\n", m)
			}
			if len(pins) == 0 {
				return fmt.Errorf("no binary of the spec's roles in %s", dir)
			}
			if !write {
				fmt.Fprintf(cmd.OutOrStdout(), "# spec.binaries.sha256 of %s, from %s\nsha256:\n", file, dir)
				for _, k := range slices.Sorted(maps.Keys(pins)) {
					fmt.Fprintf(cmd.OutOrStdout(), "  %s: %q\n", k, pins[k])
				}
				return nil
			}
			data, err := os.ReadFile(file)
			if err != nil {
				return err
			}
			edited, err := spec.SetPins(file, data, pins)
			if err != nil {
				return err
			}
			st, err := os.Stat(file)
			if err != nil {
				return err
			}
			if _, err := output.WriteFileAtomic(file, edited, st.Mode().Perm()); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "pinned %d binaries of %s in %s\n", len(pins), dir, file)
			return nil
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().BoolVar(&write, "write", false, "set the pins in the spec file instead of printing them")
	return cmd
}
