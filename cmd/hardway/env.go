package main

import (
	"log/slog"
	"os"

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
