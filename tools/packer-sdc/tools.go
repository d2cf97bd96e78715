//go:build tools

// Package tools pins packer-sdc, the code and docs generator of
// packer-plugin-sdk, built by hack/packer.sh.
package tools

import _ "github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc"
