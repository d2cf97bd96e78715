package bake

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/templates"
	"github.com/hardway-dev/hardway/tree"
)

// Artifact kinds in bake-manifest.json.
const KindLXC = "lxc-template"

// pct's rules for a container template (pve-container src/PVE/LXC/Create.pm):
// check_tar_archive wants a sbin directory or symlink and at least 10
// members; restore_archive extracts with --numeric-owner, --anchored
// --exclude ./dev/* and --xattrs-include of user.* and security.capability.
const pctMinMembers = 10

// lxcExclude leaves out everything below /dev: pct's extraction excludes it
// (the container gets a fresh /dev), so nothing there may be needed. /dev
// itself stays.
func lxcExclude(p string) bool { return strings.HasPrefix(p, "/dev/") }

// lxcXattr keeps the extended attributes pct restores; the others would be
// silently lost at extraction, so they are dropped and counted instead.
func lxcXattr(name string) bool {
	return strings.HasPrefix(name, "user.") || name == "security.capability"
}

// unusedServices are the enablement links of the base's services that the
// artifact of j must not start (Remove patterns): a base made for every role
// (hack/base.sh's full base) enables haproxy and keepalived, which only lb
// nodes run, and chrony, which must not run in a container: a privileged
// one (a worker) keeps CAP_SYS_TIME, which chrony.service's only condition
// checks, and would set the Proxmox host's clock. Debian's etcd-server and
// containerd packages enable their services too (hack/base.sh --kvm
// disables them; another base may not): a stray etcd on 127.0.0.1:2379 on
// every node, a containerd on every node that is no worker. The node's tree
// enables what the node runs (chrony on KVM nodes, haproxy and keepalived
// on lb, etcd on etcd members, containerd on workers).
func unusedServices(j Job, container bool) []string {
	var units []string
	for _, r := range []struct {
		role  string
		units []string
	}{
		{spec.RoleLB, []string{lb.HAProxyUnit, lb.KeepalivedUnit}},
		{spec.RoleEtcd, []string{etcd.Unit}},
		{spec.RoleWorker, []string{worker.ContainerdUnit}},
	} {
		if !slices.Contains(j.Roles, r.role) {
			units = append(units, r.units...)
		}
	}
	if container {
		units = append(units, common.ChronyUnit)
	}
	var out []string
	for _, u := range units {
		out = append(out, tree.WantsLink(u, "*")) // wanted by any target
	}
	return out
}

// kernelFiles are the base's kernel, initrd and modules (Remove patterns),
// which a container never uses: it runs on the Proxmox host's kernel, whose
// version is not the base's, and the host loads the modules it needs
// (proxmox/modules-load.d). A base made for KVM images too (hack/base.sh's
// full base) would otherwise put ~450 MB of them in every template. The
// directories stay; the package database still lists the package.
var kernelFiles = []string{"/boot/*", "/usr/lib/modules/*", "/lib/modules/*",
	"/vmlinuz", "/vmlinuz.old", "/initrd.img", "/initrd.img.old"}

// CloudInitDisabled is cloud-init's off switch (cloud-init's
// ds-identify and generator honour it).
const CloudInitDisabled = "/etc/cloud/cloud-init.disabled"

// lxcLayer holds what a container template needs on top of sysprep: no
// kernel (kernelFiles), no service the node does not run (unusedServices),
// and, where the base has cloud-init, cloud-init disabled, because Proxmox
// gives containers no cloud-init data source and the node's configuration
// is baked in (as distrobuilder does for LXC images).
func lxcLayer(info *rootfs.BaseInfo, j Job) rootfs.Layer {
	l := rootfs.Layer{Name: "lxc", Remove: append(unusedServices(j, true), kernelFiles...)}
	if info.Has("/usr/bin/cloud-init") {
		l.Entries = append(l.Entries, rootfs.Bytes(CloudInitDisabled, 0o644, 0, 0, templates.MustRender("bake/cloud-init-disabled-lxc", nil)))
	}
	return l
}

// checkPCT verifies pct's rules on a merged stream before it is published.
func checkPCT(st *rootfs.Stats) error {
	var errs []error
	if !st.HasSbin {
		errs = append(errs, errors.New("no sbin directory or symlink (pct's check_tar_archive requires one)"))
	}
	if st.Members < pctMinMembers {
		errs = append(errs, fmt.Errorf("%d members, pct requires at least %d", st.Members, pctMinMembers))
	}
	if st.Dev > 0 {
		errs = append(errs, fmt.Errorf("%d members below /dev, which pct does not extract", st.Dev))
	}
	if len(errs) > 0 {
		return fmt.Errorf("not a valid Proxmox template: %w", errors.Join(errs...))
	}
	return nil
}

// FileName is the Proxmox name of a template (pvename.Name), for example
// debian-12-hardway-etcd1_1.34.2_amd64.tar.zst.
func FileName(os rootfs.OSRelease, subject, kubernetesVersion string) string {
	return pvename.Name(os.ID, os.VersionID, subject, kubernetesVersion, pvename.ExtTemplate)
}

// xattrSummary words the dropped xattrs for a log line: name×count, sorted.
func xattrSummary(m map[string]int) string {
	names := make([]string, 0, len(m))
	for n := range m {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s×%d", n, m[n])
	}
	return strings.Join(parts, ", ")
}
