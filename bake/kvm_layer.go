package bake

import (
	"path"

	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/templates"
	"github.com/hardway-dev/hardway/tree"
)

// kvmLayer is what a KVM image needs on top of sysprep:
//   - /etc/fstab mounts the root partition by PARTUUID with
//     x-systemd.growfs: systemd-growfs grows the file system to its
//     partition at boot (a no-op when it already fills it);
//   - where the base has systemd-repart, /etc/repart.d/50-root.conf lets
//     systemd-repart.service (in sysinit.target) grow the root partition, the
//     disk's last, into space added at the end of the disk (qm resize), and
//     move the backup GPT there; growfs then grows the file system;
//   - the base's services of roles the node lacks (haproxy and keepalived
//     of lb, etcd, containerd of worker) are not enabled (unusedServices);
//   - a node image has its configuration baked in and boots with no seed:
//     where the base has cloud-init, it is disabled;
//   - a role image (j.Tree is nil) has none: cloud-init takes the node's
//     identity, files and network from the node's NoCloud seed at first
//     boot (CloudInitRoleConfig), rendered for systemd-networkd, which is
//     enabled. The seed's tree brings hardway-ready.service, as a node
//     image's tree does.
func kvmLayer(info *rootfs.BaseInfo, j Job, d *kvmDisk) rootfs.Layer {
	l := rootfs.Layer{Name: "kvm", Remove: unusedServices(j, false)}
	what := "node image of " + j.Node
	if j.Tree == nil {
		what = "role image " + j.Subject
	}
	l.Entries = append(l.Entries, rootfs.Bytes(fstab, 0o644, 0, 0, templates.MustRender("bake/fstab", map[string]any{"What": what, "PartUUID": d.rootPartUUID})))
	if info.Has("/usr/bin/systemd-repart") {
		l.Entries = append(l.Entries, rootfs.Bytes(RepartRoot, 0o644, 0, 0, templates.MustRender("bake/repart-root.conf", nil)))
	}
	switch {
	case j.Tree == nil:
		l.Entries = append(l.Entries, rootfs.Bytes(CloudInitRoleConfig, 0o644, 0, 0, templates.MustRender("bake/cloud-init-role.cfg", map[string]any{"Subject": j.Subject, "Roles": j.Roles})))
		for _, e := range []struct{ unit, target string }{
			{common.NetworkdUnit, "multi-user.target"},
			{common.WaitOnlineUnit, "network-online.target"},
		} {
			l.Entries = append(l.Entries, rootfs.Symlink(tree.WantsLink(e.unit, e.target), path.Join(tree.VendorUnitDir, e.unit)))
		}
	case info.Has("/usr/bin/cloud-init"):
		l.Entries = append(l.Entries, rootfs.Bytes(CloudInitDisabled, 0o644, 0, 0, templates.MustRender("bake/cloud-init-disabled-kvm", nil)))
	}
	return l
}

// CloudInitRoleConfig is cloud-init's configuration in a role image.
const CloudInitRoleConfig = "/etc/cloud/cloud.cfg.d/90-hardway.cfg"
