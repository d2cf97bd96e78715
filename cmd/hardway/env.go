package main

import (
	"log/slog"
	"os"

	"github.com/spf13/cobra"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/emit"
)

// sourceDate is SOURCE_DATE_EPOCH (reproducible-builds.org), read here at
// the edge and passed down to generate and bake as their Epoch option; no
// package below reads it.
func sourceDate() emit.Epoch { return emit.ParseEpoch(os.Getenv(emit.EpochEnv)) }

// generateOptions are the options of every command's generate run into
// <dir>/<cluster>/: the same epoch for all, so that what plan renders is
// what generate, bake and verify write.
func generateOptions(dir string) clusterdir.Options {
	return clusterdir.Options{Out: dir, Log: slog.Default(), Epoch: sourceDate()}
}

// rootfsFlag adds --rootfs to cmd, a command that runs generate, and
// returns what it asks for: without it, the output keeps the rootfs/
// trees when the last run wrote them (clusterdir.TreesAsBefore).
func rootfsFlag(cmd *cobra.Command) func() clusterdir.Trees {
	on := cmd.Flags().Bool("rootfs", false, "also write each node's tree as files, nodes/<node>/rootfs/ (the entries of its overlay.tar), for reading and diffing; later runs keep them until --rootfs=false")
	return func() clusterdir.Trees {
		switch {
		case !cmd.Flags().Changed("rootfs"):
			return clusterdir.TreesAsBefore
		case *on:
			return clusterdir.TreesOn
		}
		return clusterdir.TreesOff
	}
}
