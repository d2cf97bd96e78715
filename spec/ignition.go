package spec

// sysextRoles are the roles whose binaries are pinned files (binaries.mode
// upstream): on a node booted by Ignition they come in a systemd-sysext image.
var sysextRoles = []string{RoleEtcd, RoleController, RoleWorker}

// Sysext reports whether node n boots by Ignition and runs pinned binaries:
// its distribution carries none of them, so hardway bake --format sysext
// bakes them into a systemd-sysext image that its Ignition config fetches
// from spec.ignition.url.
func (n Node) Sysext() bool {
	if !n.BootsByIgnition() {
		return false
	}
	for _, r := range sysextRoles {
		if n.Has(r) {
			return true
		}
	}
	return false
}

// ignitionNode checks what a node booted by Ignition (at path p) needs:
//   - no role lb: HAProxy and keepalived are packages neither distribution
//     ships, and hardway bakes pinned binaries only;
//   - with pinned binaries (Node.Sysext): Flatcar, whose systemd-sysext merges
//     an unlabelled image (Fedora CoreOS enforces SELinux, and an image's
//     files need its policy's labels, which hardway cannot give them);
//     binaries.mode upstream (packaged takes containerd, runc, the CNI
//     plugins and etcd from a Debian base's packages, and a node booted by
//     Ignition has no such base); spec.ignition.url to fetch it from;
//   - spec.ignition.images for its variant, the disk create-nodes.sh imports.
func (v *validator) ignitionNode(p string, n Node) {
	if !n.BootsByIgnition() {
		return
	}
	s := v.d.Cluster.Spec
	// A defaulted ignitionVariant is reported at boot, which the user wrote.
	variant := p + ".ignitionVariant"
	if !v.d.Has(variant) {
		variant = p + ".boot"
	}
	if n.Has(RoleLB) {
		v.errf(p+".roles", "role lb runs HAProxy and keepalived, which %s does not ship and hardway does not bake; give lb to an lxc node or a kvm node booted by cloud-init", distro(n.Ignition))
	}
	if n.Sysext() {
		switch {
		case n.Ignition != IgnitionFlatcar:
			v.errf(variant, "%s runs pinned binaries, which hardway delivers as a systemd-sysext image; Fedora CoreOS enforces SELinux and refuses the image's unlabelled binaries: use ignitionVariant: flatcar", n.Name)
		case s.Binaries.Mode != ModeUpstream:
			v.errf(p+".boot", "%s runs pinned binaries and binaries.mode is %s, which takes them from a base's packages; Flatcar has none: a node booted by Ignition needs binaries.mode upstream", n.Name, s.Binaries.Mode)
		case s.Ignition.URL == "":
			v.errf(p+".boot", "%s fetches its systemd-sysext image (hardway bake --format sysext) at first boot: set spec.ignition.url to where you serve it", n.Name)
		}
	}
	if s.Ignition.Images[n.Ignition] == "" {
		v.errf(variant, "no spec.ignition.images.%s: name the %s disk image create-nodes.sh imports for %s", n.Ignition, distro(n.Ignition), n.Name)
	}
}

// distro is the distribution of an Ignition variant.
func distro(variant string) string {
	if variant == IgnitionFlatcar {
		return "Flatcar"
	}
	return "Fedora CoreOS"
}
