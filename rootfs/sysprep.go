package rootfs

import (
	"path"

	"github.com/hardway-dev/hardway/templates"
	"github.com/hardway-dev/hardway/tree"
)

// Sysprep paths.
const (
	MachineID     = "/etc/machine-id"
	dbusMachineID = "/var/lib/dbus/machine-id"
	// SSHHostKeys matches the SSH host keys (private and public) of the base.
	SSHHostKeys = "/etc/ssh/ssh_host_*"
	// SSHKeygenUnit creates the host keys at boot when the base has sshd and
	// nothing else that would.
	SSHKeygenUnit = "hardway-ssh-keygen.service"
)

// keygenUnits are units that already create missing SSH host keys at boot
// (Fedora's and RHEL's sshd-keygen); with one of them in the base, ours is not added.
var keygenUnits = []string{"sshd-keygen.service", "sshd-keygen@.service"}

// sshd is the SSH server whose presence asks for the keygen unit.
const sshd = "/usr/sbin/sshd"

// CloudInitState is what `cloud-init clean` removes with cloud-init's default
// cloud_dir: everything in /var/lib/cloud but the seed, so that a machine
// made from the image runs cloud-init as a new instance.
var CloudInitState = []string{
	"/var/lib/cloud/data", "/var/lib/cloud/handlers", "/var/lib/cloud/instance",
	"/var/lib/cloud/instances", "/var/lib/cloud/scripts", "/var/lib/cloud/sem",
}

// Machine is what Sysprep asks of the system it prepares: the tar type of
// the entry at p, following symlinks, and whether there is one. A base's
// BaseInfo answers it; so does the Packer provisioner from a probe of the
// paths SysprepProbes lists on a live machine.
type Machine interface {
	Kind(p string) (byte, bool)
}

// SysprepProbes are the paths whose Kind Sysprep asks.
func SysprepProbes() []string {
	out := []string{dbusMachineID, sshd}
	for _, n := range keygenUnits {
		for _, d := range UnitDirs {
			out = append(out, path.Join(d, n))
		}
	}
	return out
}

// Sysprep is the layer every bake applies right on top of the base, and the
// Packer provisioner applies to a live machine becoming a template, so that
// no two machines made from one image share an identity:
//   - /etc/machine-id is empty: systemd generates the machine's id at its
//     first boot (machine-id(5)); where dbus keeps its own copy as a file
//     (/var/lib/dbus/machine-id), it becomes a link to /etc/machine-id, as
//     Debian's dbus creates it;
//   - the base's SSH host keys (/etc/ssh/ssh_host_*) are removed; when the
//     base has sshd, hardway-ssh-keygen.service (enabled) runs `ssh-keygen -A`
//     at boot before sshd, because Debian's openssh-server creates host keys
//     only when the package is installed, and sshd does not start without
//     them. Proxmox also creates them when it creates a container;
//   - cloud-init's instance state is removed (CloudInitState, as `cloud-init
//     clean`), so that a machine made from a base that cloud-init already
//     ran on reads its own seed instead of taking the base's identity.
//
// Later layers (the node's tree) may still bring their own of any of these.
func Sysprep(m Machine) Layer {
	l := Layer{
		Name:    "sysprep",
		Remove:  append([]string{SSHHostKeys}, CloudInitState...),
		Entries: []Entry{Bytes(MachineID, 0o444, 0, 0, nil)},
	}
	if k, ok := m.Kind(dbusMachineID); ok && isRegular(k) {
		l.Entries = append(l.Entries, Symlink(dbusMachineID, MachineID))
	}
	if has(m, sshd) && !hasUnit(m, keygenUnits...) {
		unit := tree.UnitFile(SSHKeygenUnit)
		l.Entries = append(l.Entries,
			Bytes(unit, 0o644, 0, 0, templates.MustRender("rootfs/"+SSHKeygenUnit, nil)),
			Symlink(tree.WantsLink(SSHKeygenUnit, "multi-user.target"), unit))
	}
	return l
}

// UnitDirs are where systemd finds unit files, local first.
var UnitDirs = []string{tree.UnitDir, "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", tree.VendorUnitDir}

// has reports whether m has an entry at p.
func has(m Machine, p string) bool {
	_, ok := m.Kind(p)
	return ok
}

// hasUnit reports whether m has any of the units (watched names only).
func hasUnit(m Machine, names ...string) bool {
	for _, n := range names {
		for _, d := range UnitDirs {
			if has(m, path.Join(d, n)) {
				return true
			}
		}
	}
	return false
}
