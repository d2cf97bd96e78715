// Package worker generates the files of the worker role.
package worker

import (
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Generate adds the worker role's files for node n to t.
func Generate(x *gen.Context, n spec.Node, t *tree.Tree) error {
	return nil
}
