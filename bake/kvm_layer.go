package bake

import (
	"bufio"
	"bytes"
	"fmt"
	"log/slog"
	"path"
	"strings"

	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/tree"
)

func newDiscardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }

// kvmLayer is what a KVM node image needs on top of sysprep:
//   - /etc/fstab mounts the root partition by PARTUUID with
//     x-systemd.growfs: systemd-growfs grows the file system to its
//     partition at boot (a no-op when it already fills it);
//   - where the base has systemd-repart, /etc/repart.d/50-root.conf lets
//     systemd-repart.service (in sysinit.target) grow the root partition, the
//     disk's last, into space added at the end of the disk (qm resize), and
//     move the backup GPT there; growfs then grows the file system;
//   - where the base has cloud-init, it is disabled: a node image boots with
//     its configuration baked in and no seed;
//   - hardway-ready.service says on the console when the node's role units
//     are active.
func kvmLayer(info *rootfs.BaseInfo, j Job, d *kvmDisk) rootfs.Layer {
	l := rootfs.Layer{Name: "kvm"}
	l.Entries = append(l.Entries, rootfs.Bytes(fstab, 0o644, 0, 0, fmt.Appendf(nil,
		"# hardway bake: the root partition of the node image of %s. x-systemd.growfs grows the\n"+
			"# file system to the partition at boot; systemd-repart grows the partition (/etc/repart.d).\n"+
			"PARTUUID=%s / ext4 rw,errors=remount-ro,x-systemd.growfs 0 1\n", j.Node, d.rootPartUUID)))
	if info.Has("/usr/bin/systemd-repart") {
		l.Entries = append(l.Entries, rootfs.Bytes(RepartRoot, 0o644, 0, 0, []byte(
			"# hardway bake: grow the root partition (the disk's last) into free space at the end\n"+
				"# of the disk, e.g. after qm resize. systemd-repart matches it by its type.\n"+
				"[Partition]\nType=root\n")))
	}
	if info.Has("/usr/bin/cloud-init") {
		l.Entries = append(l.Entries, rootfs.Bytes(CloudInitDisabled, 0o644, 0, 0,
			[]byte("# hardway bake: a node image has its configuration baked in and boots with no seed.\n")))
	}
	if j.Tree != nil {
		unit := path.Join(unitDir, ReadyUnit)
		l.Entries = append(l.Entries,
			rootfs.Bytes(unit, 0o644, 0, 0, readyUnit(j.Node, j.Roles, roleUnits(j.Tree))),
			rootfs.Symlink(path.Join(unitDir, "multi-user.target.wants", ReadyUnit), unit))
	}
	return l
}

const unitDir = "/etc/systemd/system"

// roleUnits are the services the node's tree brings and enables, but the
// one-shot ones that do not stay active (a bootstrap job).
func roleUnits(t *tree.Tree) []string {
	var out []string
	for _, u := range t.Units() {
		if !strings.HasSuffix(u.Name, ".service") {
			continue
		}
		e, ok := t.Get(path.Join(tree.UnitDir, u.Name))
		if !ok || !e.IsFile() {
			continue // a distribution's unit (networkd, chrony)
		}
		if unitValue(e.Data, "Type") == "oneshot" && !isYes(unitValue(e.Data, "RemainAfterExit")) {
			continue
		}
		out = append(out, u.Name)
	}
	return out
}

// unitValue is the last value of key in a unit file.
func unitValue(unit []byte, key string) string {
	var v string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		k, val, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if ok && strings.TrimSpace(k) == key {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}

// ReadyMessage is the console line of a node whose role units are active.
func ReadyMessage(node string, roles []string) string {
	return fmt.Sprintf("hardway: %s %s ready", node, strings.Join(roles, ","))
}

// readyUnit waits, after the role units started, until all of them are
// active, then prints ReadyMessage to the journal and the console.
func readyUnit(node string, roles, units []string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# hardway bake: report on the console that %s is ready.\n[Unit]\n", node)
	fmt.Fprintf(&b, "Description=hardway: %s (%s) is ready\n", node, strings.Join(roles, ","))
	if len(units) > 0 {
		fmt.Fprintf(&b, "Wants=%s\nAfter=%s\n", strings.Join(units, " "), strings.Join(units, " "))
	}
	b.WriteString("\n[Service]\nType=oneshot\nRemainAfterExit=yes\nTimeoutStartSec=infinity\n")
	if len(units) > 0 {
		fmt.Fprintf(&b, "ExecStart=/bin/sh -c 'until systemctl is-active --quiet %s; do sleep 2; done'\n", strings.Join(units, " "))
	}
	fmt.Fprintf(&b, "ExecStart=/bin/echo %s\nStandardOutput=journal+console\n", ReadyMessage(node, roles))
	b.WriteString("\n[Install]\nWantedBy=multi-user.target\n")
	return []byte(b.String())
}
