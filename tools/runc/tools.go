//go:build tools

// Package tools pins runc, built by hack/tools.sh (cgo, libseccomp).
package tools

import (
	_ "github.com/opencontainers/runc"
)
