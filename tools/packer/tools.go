//go:build tools

// Package tools pins the Packer core binary built by hack/packer.sh; the
// acceptance tests of the packer/ module drive it.
package tools

import _ "github.com/hashicorp/packer"
