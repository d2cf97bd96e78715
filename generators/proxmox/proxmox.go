// Package proxmox renders the Proxmox host contract: per-node pct/qm config
// fragments, the host's modules, sysctls and pod routes, and create-nodes.sh.
package proxmox

import "github.com/hardway-dev/hardway/generators/gen"

// Files returns proxmox/... and nodes/<node>/proxmox.conf, relative to the cluster directory.
func Files(x *gen.Context) ([]gen.File, error) {
	return nil, nil
}
