package rootfs

import (
	_ "embed"
	"path"

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

//go:embed files/hardway-ssh-keygen.service
var sshKeygenUnit []byte

// keygenUnits are units that already create missing SSH host keys at boot
// (Fedora's and RHEL's sshd-keygen); with one of them in the base, ours is not added.
var keygenUnits = []string{"sshd-keygen.service", "sshd-keygen@.service"}

// Sysprep is the layer every bake applies right on top of the base, so that
// no two machines made from one image share an identity:
//   - /etc/machine-id is empty: systemd generates the machine's id at its
//     first boot (machine-id(5)); where dbus keeps its own copy as a file
//     (/var/lib/dbus/machine-id), it becomes a link to /etc/machine-id, as
//     Debian's dbus creates it;
//   - the base's SSH host keys (/etc/ssh/ssh_host_*) are removed; when the
//     base has sshd, hardway-ssh-keygen.service (enabled) runs `ssh-keygen -A`
//     at boot before sshd, because Debian's openssh-server creates host keys
//     only when the package is installed, and sshd does not start without
//     them. Proxmox also creates them when it creates a container.
//
// Later layers (the node's tree) may still bring their own of any of these.
func Sysprep(info *BaseInfo) Layer {
	l := Layer{
		Name:    "sysprep",
		Remove:  []string{SSHHostKeys},
		Entries: []Entry{Bytes(MachineID, 0o444, 0, 0, nil)},
	}
	if k, ok := info.Kind(dbusMachineID); ok && isRegular(k) {
		l.Entries = append(l.Entries, Symlink(dbusMachineID, MachineID))
	}
	if info.Has("/usr/sbin/sshd") && !hasUnit(info, keygenUnits...) {
		unit := tree.UnitFile(SSHKeygenUnit)
		l.Entries = append(l.Entries,
			Bytes(unit, 0o644, 0, 0, sshKeygenUnit),
			Symlink(tree.WantsLink(SSHKeygenUnit, "multi-user.target"), unit))
	}
	return l
}

// UnitDirs are where systemd finds unit files, local first.
var UnitDirs = []string{tree.UnitDir, "/usr/local/lib/systemd/system", "/usr/lib/systemd/system", tree.VendorUnitDir}

// hasUnit reports whether the base has any of the units (watched names only).
func hasUnit(info *BaseInfo, names ...string) bool {
	for _, n := range names {
		for _, d := range UnitDirs {
			if info.Has(path.Join(d, n)) {
				return true
			}
		}
	}
	return false
}
