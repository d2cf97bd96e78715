package emit

import (
	"io"

	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// Rootfs writes t under rel (e.g. nodes/<node>/rootfs) in d.
func Rootfs(d *output.Dir, rel string, t *tree.Tree) error { return nil }

// Tar writes t as a reproducible tar stream.
func Tar(w io.Writer, t *tree.Tree) error { return nil }

// CloudInit returns the NoCloud user-data, meta-data and network-config of node n.
func CloudInit(x *gen.Context, n spec.Node, t *tree.Tree) (userData, metaData, networkConfig []byte, err error) {
	return nil, nil, nil, nil
}

// SeedISO returns a NoCloud seed ISO (volume id cidata) holding files.
func SeedISO(files map[string][]byte) ([]byte, error) { return nil, nil }

// Ignition returns the Ignition config of node n, translated from Butane.
func Ignition(x *gen.Context, n spec.Node, t *tree.Tree) ([]byte, error) { return nil, nil }
