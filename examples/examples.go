// Package examples embeds the example specs; `hardway init` writes one of them.
package examples

import "embed"

// FS holds every example spec.
//
//go:embed *.yaml
var FS embed.FS
