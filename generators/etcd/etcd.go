// Package etcd generates the files of the etcd role.
package etcd

import (
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Generate adds the etcd role's files for node n to t.
func Generate(x *gen.Context, n spec.Node, t *tree.Tree) error {
	return nil
}
