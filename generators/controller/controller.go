// Package controller generates the files of the controller role.
package controller

import (
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Generate adds the controller role's files for node n to t.
func Generate(x *gen.Context, n spec.Node, t *tree.Tree) error {
	return nil
}
