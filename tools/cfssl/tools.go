//go:build tools

// Package tools pins the cfssl command-line tools built by hack/tools.sh.
package tools

import (
	_ "github.com/cloudflare/cfssl/cmd/cfssl"
	_ "github.com/cloudflare/cfssl/cmd/cfssljson"
)
