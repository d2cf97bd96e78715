// Package manifests renders the Kubernetes objects the bootstrap unit applies
// once the API answers (RBAC, CoreDNS), into manifests/ and onto the first controller.
package manifests

import "github.com/hardway-dev/hardway/generators/gen"

// Files returns the manifests, with paths relative to the cluster directory (manifests/...).
func Files(x *gen.Context) ([]gen.File, error) {
	return nil, nil
}
