package controller

import (
	"path"

	"github.com/hardway-dev/hardway/generators/manifests"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// BootstrapUnit applies the bootstrap manifests, once, on the first controller.
const BootstrapUnit = "hardway-bootstrap.service"

// Bootstrap paths on the first controller.
var (
	// ManifestDir holds the same files as the cluster's manifests/.
	ManifestDir = path.Join(nodegen.KubeDir, manifests.Dir)
	// BootstrapGuard exists once the manifests were applied.
	BootstrapGuard = path.Join(nodegen.KubeDir, ".bootstrapped")
	// superAdmin is the kubeconfig the bootstrap unit uses, and removes.
	superAdmin = path.Join(nodegen.KubeDir, "super-admin.kubeconfig")
)

// bootstrapData is the data of the bootstrap unit.
type bootstrapData struct {
	Kubectl    string
	Kubeconfig string
	Manifests  string
	Guard      string
}

// bootstrap places the manifests, the super-admin kubeconfig and the unit
// that applies them.
//
// It must use super-admin (O=system:masters, which bypasses RBAC): the admin
// kubeconfig's group kubeadm:cluster-admins is granted cluster-admin only by
// a ClusterRoleBinding that is itself one of the manifests, so admin cannot
// create it. Once the manifests are applied, the unit deletes super-admin
// from the node: it is a break-glass credential that cannot be revoked, and
// its copy stays in the cluster directory (kubeconfigs/super-admin.kubeconfig)
// on the build machine. To re-run the bootstrap, copy it back and remove
// BootstrapGuard.
func bootstrap(x *nodegen.Context, n spec.Node, t *tree.Tree) error {
	files, err := manifests.Files(x)
	if err != nil {
		return err
	}
	for _, f := range files {
		t.File(path.Join(nodegen.KubeDir, f.Path), f.Mode, f.Data)
	}
	x.Kubeconfig(t, superAdmin, "super-admin", x.C.LocalAPIServerURL())
	// A one-shot job: it applies the manifests and exits.
	t.File(tree.UnitFile(BootstrapUnit), 0o644, x.Render("controller/hardway-bootstrap.service", bootstrapData{
		Kubectl:    x.Bin(n, "kubectl"),
		Kubeconfig: superAdmin,
		Manifests:  ManifestDir,
		Guard:      BootstrapGuard,
	}))
	t.EnableJob(BootstrapUnit, "multi-user.target")
	return nil
}
