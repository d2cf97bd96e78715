// Package tree is the node file tree: the in-memory set of files, directories
// and symlinks a node needs, with the systemd units to enable. Generators
// produce trees; emitters (overlay dir, tar, cloud-init, Ignition, bake) consume them.
package tree

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
)

// Entry is one file system object at its final path on the node.
type Entry struct {
	Path   string      // absolute and clean, e.g. /etc/etcd/ca.crt
	Mode   fs.FileMode // type bits (fs.ModeDir, fs.ModeSymlink or none) and permissions
	UID    int
	GID    int
	Data   []byte // file content
	Target string // symlink target
	Secret bool   // private key material: mode must be 0600 or stricter, never logged
}

// IsDir, IsSymlink and IsFile tell the entry's type.
func (e *Entry) IsDir() bool     { return e.Mode&fs.ModeDir != 0 }
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }
func (e *Entry) IsFile() bool    { return e.Mode&fs.ModeType == 0 }

// Unit is a systemd unit to enable.
type Unit struct {
	Name     string // e.g. etcd.service
	WantedBy string // e.g. multi-user.target
	// Exits marks a one-shot job that is done once it exits (Type=oneshot
	// without RemainAfterExit): started, it does not stay active, so a
	// node's ready unit does not wait for it. Every other unit stays.
	Exits bool
}

// Tree is a node's file tree. Adding an entry cannot fail where it is
// added: a path that is not absolute, or one written twice with different
// content, is kept as an error that Check returns, which every emitter
// calls before it writes anything.
type Tree struct {
	Node    string
	entries map[string]*Entry
	units   []Unit
	errs    []error // what add refused, for Check
}

// New returns an empty tree for node.
func New(node string) *Tree { return &Tree{Node: node, entries: map[string]*Entry{}} }

// add inserts e. A path that is not absolute, or a path already written
// with different content (by two generators, say), is an error for Check,
// and the tree keeps what it had.
func (t *Tree) add(e *Entry) {
	if !path.IsAbs(e.Path) {
		t.errs = append(t.errs, fmt.Errorf("tree %s: path %q is not absolute", t.Node, e.Path))
		return
	}
	e.Path = path.Clean(e.Path)
	if old, ok := t.entries[e.Path]; ok {
		if old.Mode == e.Mode && string(old.Data) == string(e.Data) && old.Target == e.Target && old.UID == e.UID && old.GID == e.GID {
			return
		}
		t.errs = append(t.errs, fmt.Errorf("tree %s: %s is written twice with different content", t.Node, e.Path))
		return
	}
	t.entries[e.Path] = e
}

// File adds a regular file owned by root.
func (t *Tree) File(p string, perm fs.FileMode, data []byte) {
	t.add(&Entry{Path: p, Mode: perm.Perm(), Data: data})
}

// Secret adds a private key or other secret: 0600 root:root.
func (t *Tree) Secret(p string, data []byte) {
	t.add(&Entry{Path: p, Mode: 0o600, Data: data, Secret: true})
}

// FileOwned adds a regular file with an owner.
func (t *Tree) FileOwned(p string, perm fs.FileMode, uid, gid int, data []byte, secret bool) {
	t.add(&Entry{Path: p, Mode: perm.Perm(), UID: uid, GID: gid, Data: data, Secret: secret})
}

// Dir adds a directory (parents of files are added implicitly as 0755 root:root).
func (t *Tree) Dir(p string, perm fs.FileMode) {
	t.add(&Entry{Path: p, Mode: fs.ModeDir | perm.Perm()})
}

// DirOwned adds a directory with an owner.
func (t *Tree) DirOwned(p string, perm fs.FileMode, uid, gid int) {
	t.add(&Entry{Path: p, Mode: fs.ModeDir | perm.Perm(), UID: uid, GID: gid})
}

// Symlink adds a symbolic link at p pointing to target.
func (t *Tree) Symlink(p, target string) {
	t.add(&Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Target: target})
}

// UnitDir is where hardway installs its units.
const UnitDir = "/etc/systemd/system"

// VendorUnitDir is where the distribution's packages install their units
// (Debian; /lib is /usr/lib on merged-/usr systems, so the path works on both).
const VendorUnitDir = "/lib/systemd/system"

// UnitFile is the path of unit's file among hardway's units (UnitDir).
func UnitFile(unit string) string { return path.Join(UnitDir, unit) }

// WantsLink is the path of the symlink that `systemctl enable` makes for
// unit when wantedBy wants it: <UnitDir>/<wantedBy>.wants/<unit>.
func WantsLink(unit, wantedBy string) string { return path.Join(UnitDir, wantedBy+".wants", unit) }

// Enable records that unit must start at boot. Every emitter carries the
// symlink `systemctl enable` would create: <UnitDir>/<wantedBy>.wants/<unit>
// pointing at the tree's own unit file when the tree has one, else at the
// distribution's copy in VendorUnitDir (chrony, haproxy, systemd-networkd...).
func (t *Tree) Enable(unit, wantedBy string) { t.enable(Unit{Name: unit, WantedBy: wantedBy}) }

// EnableJob is Enable for a one-shot job that exits when done (Unit.Exits).
func (t *Tree) EnableJob(unit, wantedBy string) {
	t.enable(Unit{Name: unit, WantedBy: wantedBy, Exits: true})
}

// enable records u, unless a unit of its name is recorded already.
func (t *Tree) enable(u Unit) {
	for _, v := range t.units {
		if v.Name == u.Name {
			return
		}
	}
	t.units = append(t.units, u)
}

// enablement returns the enablement symlinks of the recorded units.
func (t *Tree) enablement() []*Entry {
	var out []*Entry
	for _, u := range t.units {
		target := path.Join(VendorUnitDir, u.Name)
		if _, ok := t.entries[UnitFile(u.Name)]; ok {
			target = UnitFile(u.Name)
		}
		out = append(out, &Entry{Path: WantsLink(u.Name, u.WantedBy), Mode: fs.ModeSymlink | 0o777, Target: target})
	}
	return out
}

// Units returns the units to enable, in the order they were enabled.
func (t *Tree) Units() []Unit { return append([]Unit(nil), t.units...) }

// Get returns the entry at p, including enablement symlinks; a path that
// is not absolute has none.
func (t *Tree) Get(p string) (*Entry, bool) {
	if !path.IsAbs(p) {
		return nil, false
	}
	p = path.Clean(p)
	if e, ok := t.entries[p]; ok {
		return e, true
	}
	for _, e := range t.enablement() {
		if e.Path == p {
			return e, true
		}
	}
	return nil, false
}

// Entries returns every entry sorted by path, including the parent
// directories that were not added explicitly (0755 root:root).
func (t *Tree) Entries() []*Entry {
	all := make(map[string]*Entry, len(t.entries)*2)
	own := make(map[string]*Entry, len(t.entries)+len(t.units))
	for p, e := range t.entries {
		own[p] = e
	}
	for _, e := range t.enablement() {
		if _, ok := own[e.Path]; !ok {
			own[e.Path] = e
		}
	}
	for p, e := range own {
		all[p] = e
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if _, ok := own[d]; ok {
				continue
			}
			if _, ok := all[d]; !ok {
				all[d] = &Entry{Path: d, Mode: fs.ModeDir | 0o755}
			}
		}
	}
	out := make([]*Entry, 0, len(all))
	for _, e := range all {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// Check enforces the invariants every emitter relies on, and returns what
// adding entries refused.
func (t *Tree) Check() error {
	if len(t.errs) > 0 {
		return errors.Join(t.errs...)
	}
	for _, e := range t.entries {
		if e.Secret && e.Mode.Perm()&0o077 != 0 {
			return fmt.Errorf("tree %s: secret %s has mode %04o; secrets must not be readable by group or others", t.Node, e.Path, e.Mode.Perm())
		}
		if e.IsDir() && e.Data != nil {
			return fmt.Errorf("tree %s: directory %s has content", t.Node, e.Path)
		}
	}
	return nil
}
