//go:build tools

// Package tools pins CoreDNS, built by hack/tools.sh for the CoreDNS image
// that `make images` packs (tools/images).
package tools

import (
	_ "github.com/coredns/coredns"
)
