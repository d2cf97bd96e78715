package proxmox

import "github.com/hardway-dev/hardway/generators/nodegen"

// Files is what a run writes of this package, for its tests: Conf of every
// node, then HostFiles (nothing for a spec that nodegen.Check refuses).
func Files(x *nodegen.Context) ([]nodegen.File, error) {
	host, err := HostFiles(x)
	if err != nil {
		return nil, err
	}
	var out []nodegen.File
	for _, n := range x.C.Spec.Nodes {
		out = append(out, Conf(x, n))
	}
	return append(out, host...), nil
}
