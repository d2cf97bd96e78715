package main

import (
	"os"

	"github.com/hardway-dev/hardway/emit"
)

// sourceDate is SOURCE_DATE_EPOCH (reproducible-builds.org), read here at
// the edge and passed down to generate and bake as their Epoch option; no
// package below reads it.
func sourceDate() emit.Epoch { return emit.ParseEpoch(os.Getenv(emit.EpochEnv)) }
