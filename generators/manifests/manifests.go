// Package manifests renders the Kubernetes objects the bootstrap unit applies
// once the API answers (RBAC, CoreDNS), into manifests/ and onto the first controller.
package manifests

import (
	"fmt"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
)

// Dir is the directory of the manifests, relative to the cluster directory.
// The controller generator places the same files under nodegen.KubeDir/Dir.
const Dir = "manifests"

// CoreDNSImage is the pinned CoreDNS image. Nodes pull nothing: the image
// must be among spec.images (imported into containerd at first boot), which
// is why the Deployment says imagePullPolicy: IfNotPresent.
const CoreDNSImage = spec.CoreDNSImage

// manifest is one file of manifests/: kubectl applies a directory in
// lexical order, so the number sets the order.
type manifest struct {
	file string // <nn>-<name>.yaml, also the template's name under manifests/
	data func(x *nodegen.Context) (any, error)
}

// set is every manifest, in apply order.
var set = []manifest{
	{"00-apiserver-to-kubelet.yaml", apiServerToKubelet},
	{"01-cluster-admins.yaml", noData},
	{"10-coredns.yaml", coreDNS},
}

// Kind is the manifest kind of the files under manifests/.
const Kind = "manifest"

// Files returns the manifests, with paths relative to the cluster directory (manifests/...).
func Files(x *nodegen.Context) ([]nodegen.File, error) {
	var out []nodegen.File
	for _, m := range set {
		data, err := m.data(x)
		if err != nil {
			return nil, fmt.Errorf("manifest %s: %w", m.file, err)
		}
		out = append(out, nodegen.File{
			Path: Dir + "/" + m.file,
			Mode: 0o644,
			Data: x.Render(Dir+"/"+m.file, data),
			Kind: Kind,
		})
	}
	return out, nil
}

func noData(*nodegen.Context) (any, error) { return struct{}{}, nil }

// apiServerToKubelet binds the apiserver's kubelet-client identity (the CN of
// pki row apiserver-kubelet-client) to the kubelet API, so that logs, exec
// and port-forward work against kubelets that authorize by webhook.
func apiServerToKubelet(x *nodegen.Context) (any, error) {
	row, err := pki.Find(x.PKI.Plan, "apiserver-kubelet-client")
	if err != nil {
		return nil, err
	}
	return struct{ User string }{row.CN}, nil
}

// coreDNS is the data of the CoreDNS manifest.
func coreDNS(x *nodegen.Context) (any, error) {
	n := x.C.Spec.Network
	if len(n.DNS) == 0 {
		return nil, fmt.Errorf("spec.network.dns is empty: CoreDNS needs an upstream resolver")
	}
	return struct {
		Image, ClusterDomain, ClusterIP string
		Upstreams                       []string
	}{CoreDNSImage, x.C.Spec.ClusterDomain, n.ClusterDNS, n.DNS}, nil
}
