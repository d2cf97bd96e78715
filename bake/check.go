package bake

import (
	"bufio"
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/tree"
)

// BaseError is a base that cannot become an artifact; it lists every reason.
type BaseError struct {
	Base    string
	Missing []string
}

func (e *BaseError) Error() string {
	return fmt.Sprintf("base %s cannot be baked: %s", e.Base, strings.Join(e.Missing, "; "))
}

// checkBase checks what every artifact needs from the base: systemd (the
// units are systemd units), an sbin entry (pct refuses a template without
// one) and an os-release ID (the artifact's name, and pct's OS detection).
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

// execKeys are the unit settings whose first word is a program to run.
var execKeys = []string{"ExecStart", "ExecStartPre", "ExecStartPost", "ExecReload", "ExecStop", "ExecStopPost", "ExecCondition"}

// unitNeeds returns, for the units a tree enables, the unit files and
// programs that must be on the node: the enabled units' files, and the
// programs of every Exec setting of the tree's own unit files.
func unitNeeds(t *tree.Tree) (units, programs []string) {
	for _, u := range t.Units() {
		units = append(units, u.Name)
	}
	for _, e := range t.Entries() {
		if !e.IsFile() || path.Dir(e.Path) != tree.UnitDir {
			continue
		}
		programs = append(programs, execPrograms(e.Data)...)
	}
	return units, programs
}

// execPrograms returns the absolute programs of a unit file's Exec settings.
func execPrograms(unit []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok || !isExecKey(strings.TrimSpace(k)) {
			continue
		}
		v = strings.TrimLeft(strings.TrimSpace(v), "@-:+!|")
		if f := strings.Fields(v); len(f) > 0 && strings.HasPrefix(f[0], "/") {
			out = append(out, f[0])
		}
	}
	return out
}

func isExecKey(k string) bool {
	for _, e := range execKeys {
		if k == e {
			return true
		}
	}
	return false
}

// missingOnNode words, for the warnings of an artifact, the enabled units
// and unit programs that neither its layers nor the base provide: the node
// would boot without them. Such a base lacks a package (haproxy for lb
// nodes, say) or, in binaries.mode packaged, the Kubernetes packages.
func missingOnNode(t *tree.Tree, info *rootfs.BaseInfo, layers []rootfs.Layer) []string {
	inLayers := map[string]bool{}
	for _, l := range layers {
		for _, e := range l.Entries {
			inLayers[e.Path] = true
		}
	}
	have := func(p string) bool { return inLayers[p] || info.Has(p) }
	units, programs := unitNeeds(t)
	var out []string
	for _, u := range units {
		found := false
		for _, d := range rootfs.UnitDirs {
			if have(path.Join(d, u)) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, fmt.Sprintf("%s enables %s, which is neither in the base nor in its layers", t.Node, u))
		}
	}
	seen := map[string]bool{}
	for _, p := range programs {
		if seen[p] || have(p) {
			continue
		}
		seen[p] = true
		out = append(out, fmt.Sprintf("%s runs %s from a unit, which is neither in the base nor in its layers", t.Node, p))
	}
	return out
}

// watchNames are the base names a scan must record for missingOnNode.
func watchNames(trees []*tree.Tree) []string {
	var out []string
	for _, t := range trees {
		if t == nil {
			continue
		}
		units, programs := unitNeeds(t)
		out = append(out, units...)
		for _, p := range programs {
			out = append(out, path.Base(p))
		}
	}
	return out
}
