package bake

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"slices"
	"strings"

	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/lb"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
	"github.com/hardway-dev/hardway/unitfile"
)

// BaseError is a base that cannot become an artifact; it lists every reason.
type BaseError struct {
	Base    string
	Missing []string
}

func (e *BaseError) Error() string {
	return fmt.Sprintf("base %s cannot be baked:\n  %s", e.Base, strings.Join(e.Missing, "\n  "))
}

// checkBase checks what every artifact needs from the base: systemd (the
// units are systemd units), an sbin entry and an os-release ID (the
// artifact's name, and pct's OS detection). pct checks the sbin entry (and
// 10 members at least) only in archives it does not trust, such as a backup
// restored by a user who may not create privileged containers
// (pve-container src/PVE/LXC/Create.pm, check_tar_archive), not in
// templates; a base without /sbin is broken either way.
func checkBase(name string, info *rootfs.BaseInfo) error {
	var missing []string
	if info.Systemd() == "" {
		missing = append(missing, "no systemd (neither /lib/systemd/systemd nor /usr/lib/systemd/systemd): install systemd and systemd-sysv in the base")
	}
	if !info.Has("/sbin") {
		missing = append(missing, "no /sbin directory or symlink")
	}
	if info.OS.ID == "" {
		missing = append(missing, "no ID in /etc/os-release or /usr/lib/os-release")
	}
	if len(missing) > 0 {
		return &BaseError{Base: name, Missing: missing}
	}
	return nil
}

// debianVersion is the file pct's Debian setup reads the release from.
const debianVersion = "/etc/debian_version"

// checkTemplateBase is checkBase plus what pct needs to set a container up:
// a Debian base must have /etc/debian_version (pve-container
// src/PVE/LXC/Setup/Debian.pm dies "unable to read version info" without it).
func checkTemplateBase(name string, info *rootfs.BaseInfo) error {
	err := checkBase(name, info)
	if info.OS.ID != "debian" || info.Has(debianVersion) {
		return err
	}
	be := &BaseError{Base: name}
	errors.As(err, &be)
	be.Missing = append(be.Missing, "no "+debianVersion+": pct reads a Debian container's release from it and refuses to start one without it (package base-files)")
	return be
}

// A treeNeed is what a node's tree uses and may leave to the base: a unit it
// enables, or a program one of its unit files runs.
type treeNeed struct {
	name string // the unit's name, or the program's absolute path
	unit string // for a program, the unit file that runs it; "" for a unit
}

// unitNeeds returns what the tree's units need on the node: the enabled
// units' files, and the programs of every Exec setting of the tree's own
// unit files (each once).
func unitNeeds(t *tree.Tree) []treeNeed {
	var out []treeNeed
	for _, u := range t.Units() {
		out = append(out, treeNeed{name: u.Name})
	}
	seen := map[string]bool{}
	for _, e := range t.Entries() {
		if !e.IsFile() || path.Dir(e.Path) != tree.UnitDir {
			continue
		}
		for _, p := range execPrograms(e.Data) {
			if !seen[p] {
				seen[p] = true
				out = append(out, treeNeed{name: p, unit: path.Base(e.Path)})
			}
		}
	}
	return out
}

// execPrograms returns the absolute programs of a unit file's Exec settings,
// read as systemd reads them (continuation lines, quoting, prefixes). A unit
// or line that does not parse names no program here: the generators' tests
// parse every unit they write (commontest.ExecLines), and systemd-analyze
// checks them.
func execPrograms(unit []byte) []string {
	u, err := unitfile.Parse("unit", unit)
	if err != nil {
		return nil
	}
	var out []string
	for _, key := range unitfile.ExecKeys {
		cs, _ := u.Exec(key)
		for _, c := range cs {
			if strings.HasPrefix(c.Argv[0], "/") {
				out = append(out, c.Argv[0])
			}
		}
	}
	return out
}

// baseNeed says, for a need a node's layers leave to the base, which role
// needs it, what provides it and why the node cannot do without it.
type baseNeed struct {
	roles []string // the roles that need it; none: every role of the node
	from  string   // what provides it: its package and the hack/base.sh bases that have it, or a setting
	why   string   // why the node needs it; "" when it is optional: a warning, not an error
}

// Where the needs come from, in the bases hack/base.sh builds.
const (
	inEveryBase = "package systemd, in every hack/base.sh base"
	inFullBase  = "in the full base (hack/base.sh with no option; --small and --kvm leave it out)"
	inKVMBase   = "in the KVM base (hack/base.sh --kvm)"
)

// baseNeeds are the needs known by unit name. Everything else a node's
// tree enables or runs is required (see needOf): the node enables a unit,
// or runs a program, it would not have.
var baseNeeds = map[string]baseNeed{
	// Every role: the node's tree writes its address and gateway as
	// a systemd-networkd file; networkd is what applies it.
	common.NetworkdUnit: {from: inEveryBase,
		why: "it applies the node's network file (/etc/systemd/network): without it the node has no address"},
	// The tree's units that need the network are ordered after
	// network-online.target, which this service holds until the address is up.
	common.WaitOnlineUnit: {from: inEveryBase,
		why: "network-online.target waits for it, and the node's units start after that target"},
	// lb: the node's tree configures and enables them; they are the role.
	lb.HAProxyUnit: {roles: []string{spec.RoleLB}, from: "package haproxy, " + inFullBase,
		why: "it runs the node's haproxy.cfg, the load balancer in front of the API servers"},
	lb.KeepalivedUnit: {roles: []string{spec.RoleLB}, from: "package keepalived, " + inFullBase,
		why: "it runs the node's keepalived.conf, which holds the VIP clients reach the API at"},
	// worker, binaries.mode packaged: the tree enables the base's containerd.
	worker.ContainerdUnit: {roles: []string{spec.RoleWorker}, from: "package containerd (binaries.mode packaged takes it from the base), " + inKVMBase,
		why: "the kubelet runs the node's pods through it"},
	// worker: kube-proxy's rules, and the bridge and portmap CNI plugins'
	// masquerade and port maps, are made by running iptables.
	iptables: {roles: []string{spec.RoleWorker}, from: "package iptables, in every hack/base.sh base",
		why: "kube-proxy writes the Services' rules with it, and the CNI plugins their masquerade and port maps"},
	// Optional: a KVM node keeps the host's time through kvm-clock without
	// it; chrony keeps it in step with the gateway over weeks of uptime.
	common.ChronyUnit: {from: "package chrony, " + inFullBase},
}

// iptables is the program kube-proxy and the CNI plugins run (Debian's
// alternatives link to iptables-nft or iptables-legacy).
const iptables = "/usr/sbin/iptables"

// roleNeeds are what role needs from the base in binaries.mode mode,
// whatever a tree says: a role image has no tree, and a program that a
// unit's process runs, rather than its Exec lines, is in no tree. In
// packaged mode that is the distribution's part of the role (fromBase): on a
// worker containerd, which starts its shim and runc and runs the CNI
// plugins; on an etcd member etcd.
func roleNeeds(role, mode string) []treeNeed {
	var out []treeNeed
	switch role {
	case spec.RoleWorker:
		out = append(out, treeNeed{name: iptables, unit: worker.ProxyUnit})
	case spec.RoleLB:
		out = append(out, treeNeed{name: lb.HAProxyUnit}, treeNeed{name: lb.KeepalivedUnit})
	}
	if mode != spec.ModePackaged {
		return out
	}
	if role == spec.RoleWorker {
		out = append(out, treeNeed{name: worker.ContainerdUnit})
	}
	for _, b := range binaries {
		if b.role != role || b.Optional || !b.fromBase(mode) {
			continue
		}
		switch {
		case b.Dir == worker.UpstreamCNIBinDir:
			out = append(out, treeNeed{name: path.Join(worker.PackagedCNIBinDir, b.Name), unit: worker.ContainerdUnit})
		case role == spec.RoleWorker:
			out = append(out, treeNeed{name: path.Join(nodegen.DistBinDir, b.Name), unit: worker.ContainerdUnit})
		default:
			out = append(out, treeNeed{name: path.Join(nodegen.DistBinDir, b.Name), unit: b.Name + ".service"})
		}
	}
	return out
}

// jobNeeds are what job j's node needs from the base or its layers in
// binaries.mode mode: its tree's units (unitNeeds) and its roles' needs,
// each once.
func jobNeeds(j Job, mode string) []treeNeed {
	var out []treeNeed
	if j.Tree != nil {
		out = unitNeeds(j.Tree)
	}
	for _, r := range j.Roles {
		for _, n := range roleNeeds(r, mode) {
			if !slices.Contains(out, n) {
				out = append(out, n)
			}
		}
	}
	return out
}

// needOf says, for node job j in binaries.mode mode, who needs n, what
// provides it and why.
func needOf(j Job, mode string, n treeNeed) baseNeed {
	if b, ok := baseNeeds[n.name]; ok {
		return b
	}
	if n.unit == "" {
		return baseNeed{roles: j.Roles, from: "a package of the base", why: "the node's tree enables it"}
	}
	why := n.unit + " runs it"
	name := path.Base(n.name)
	for _, b := range binaries {
		if b.Name != name || !slices.Contains(j.Roles, b.role) || !b.fromBase(mode) {
			continue
		}
		p := nodegen.Distributed[name]
		if b.Dir == worker.UpstreamCNIBinDir {
			p = "containernetworking-plugins"
		}
		return baseNeed{roles: []string{b.role}, from: "Debian's package " + p + " (binaries.mode packaged takes it from the base), " + inKVMBase, why: why}
	}
	return baseNeed{roles: j.Roles, from: "a package of the base", why: why}
}

// checkNeeds checks, before anything is published, that the base and the
// layers of each job bring what the node's tree enables and runs and what
// its roles need (jobNeeds; a role image has only the latter). A
// missing optional need is a warning (log); any other is in the
// BaseError, naming the node, the role, what is missing and what provides it.
func checkNeeds(log *slog.Logger, base, mode string, jobs []Job, layers [][]rootfs.Layer, info *rootfs.BaseInfo) error {
	var missing []string
	for i, j := range jobs {
		for _, n := range missingOnNode(jobNeeds(j, mode), info, layers[i]) {
			b := needOf(j, mode, n)
			role := "every role"
			switch len(b.roles) {
			case 0:
			case 1:
				role = "role " + b.roles[0]
			default:
				role = "roles " + strings.Join(b.roles, ",")
			}
			if b.why == "" {
				log.Warn(fmt.Sprintf("node %s (%s) enables %s, which the base lacks (%s); it is optional", j.Node, role, n.name, b.from))
				continue
			}
			missing = append(missing, fmt.Sprintf("node %s (%s) needs %s, which the base lacks: %s; provide it with %s", j.Node, role, n.name, b.why, b.from))
		}
	}
	if len(missing) > 0 {
		return &BaseError{Base: base, Missing: missing}
	}
	return nil
}

// missingOnNode returns the needs that neither the layers nor the base provide.
func missingOnNode(needs []treeNeed, info *rootfs.BaseInfo, layers []rootfs.Layer) []treeNeed {
	inLayers := map[string]bool{}
	for _, l := range layers {
		for _, e := range l.Entries {
			inLayers[e.Path] = true
		}
	}
	have := func(p string) bool { return inLayers[p] || info.Has(p) }
	provided := func(n treeNeed) bool {
		if n.unit != "" {
			return have(n.name)
		}
		return slices.ContainsFunc(rootfs.UnitDirs, func(d string) bool { return have(path.Join(d, n.name)) })
	}
	var out []treeNeed
	for _, n := range needs {
		if !provided(n) {
			out = append(out, n)
		}
	}
	return out
}

// watchNames are the base names a read of the base must record for
// missingOnNode.
func watchNames(jobs []Job, mode string) []string {
	var out []string
	for _, j := range jobs {
		for _, n := range jobNeeds(j, mode) {
			out = append(out, path.Base(n.name))
		}
	}
	return out
}
