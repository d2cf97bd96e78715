package rootfs

import (
	"archive/tar"
	"fmt"
	"path"
	"strings"
)

// A base tarball is input: a bake checks it as it would any file a user
// hands it. Scan and Merge apply the same rules for every artifact, LXC
// templates and KVM images alike (both read the base through them), and
// sort what they find into two kinds.
//
// Refused: Scan fails with an UnsafeBaseError naming the members, and
// nothing is written. The result would be broken, or not what the bake
// planned, or dangerous, and leaving the member out would silently make a
// different root file system than the base's author meant:
//   - RefuseBelow: a member below a path that is not a directory in the
//     base. Below a symbolic link, GNU tar (as pct and a KVM bake run it)
//     writes through a link whose target is relative without "..", so the
//     member lands elsewhere, possibly on a path a layer writes, where
//     pct's --skip-old-files keeps the base's file over the layer's (a
//     pinned binary, say); below any other link it fails, because it
//     stands a placeholder file in for such a link until the end. Below a
//     file it fails; below a path that becomes a link or a file after the
//     members below it, it fails or keeps the directory, depending on its
//     flags.
//   - RefuseHardlink: a hard link whose target is not an earlier member,
//     or is a directory: GNU tar fails ("Cannot hard link").
//   - RefuseDuplicate: a path twice, unless both are directories: pct
//     (--skip-old-files) keeps the first, a KVM bake's extraction the
//     last, so the two formats would differ.
//   - RefuseSetuid: a setuid program writable by its group or others, or
//     a setgid one writable by others (4777, 2757): whoever can write it
//     runs code with its owner's rights, usually root's.
//
// Dropped: Merge leaves them out, counts them in Stats.Dropped and warns;
// the result is sound and nothing a node needs goes:
//   - DropDevice: a character or block device outside /dev, or a hard link
//     to one. A root file system has device nodes only in /dev (a
//     container gets a fresh one; a VM's is a devtmpfs mount), and one
//     elsewhere, such as a world-writable /usr/bin/mem (1:1), goes around
//     every permission of the node.
//   - DropHardlink: a hard link whose target the merge left out (removed,
//     excluded, or dropped itself): its content went with the target.
const (
	RefuseBelow     = "below-non-directory"
	RefuseHardlink  = "dangling-hardlink"
	RefuseDuplicate = "duplicate"
	RefuseSetuid    = "writable-setuid"
)

// refuseOrder lists the reasons in the order an UnsafeBaseError gives
// them, with what they mean.
var refuseOrder = []struct{ reason, what string }{
	{RefuseBelow, "members below a path that is not a directory, which GNU tar writes through a symbolic link, past the layers, or fails on"},
	{RefuseHardlink, "hard links to no earlier file, which GNU tar cannot make"},
	{RefuseDuplicate, "paths given twice, of which pct keeps the first and a KVM bake the last"},
	{RefuseSetuid, "setuid or setgid programs that others may write, and so run code with the owner's rights"},
}

// maxExamples bounds the members an UnsafeBaseError names per reason.
const maxExamples = 5

// UnsafeBaseError is a base Scan refuses: every reason, with the members.
type UnsafeBaseError struct {
	Problems []BaseProblem // in the order of the reasons above
}

// BaseProblem is one reason a base is refused.
type BaseProblem struct {
	Reason  string   // RefuseBelow, RefuseHardlink, RefuseDuplicate or RefuseSetuid
	Count   int      // members
	Members []string // the first few, each with its detail
}

func (e *UnsafeBaseError) Error() string {
	var parts []string
	for _, p := range e.Problems {
		what := p.Reason
		for _, r := range refuseOrder {
			if r.reason == p.Reason {
				what = r.what
			}
		}
		list := strings.Join(p.Members, ", ")
		if p.Count > len(p.Members) {
			list += fmt.Sprintf(" and %d more", p.Count-len(p.Members))
		}
		parts = append(parts, fmt.Sprintf("%s (%d): %s", what, p.Count, list))
	}
	return "unsafe to extract: " + strings.Join(parts, "; ")
}

// baseCheck applies the refusal rules while Scan reads a base. Its memory
// grows with the number of members (their names), not with their content.
type baseCheck struct {
	types    map[string]byte   // every member's tar type by path; a hard link's is its target's
	implied  map[string]string // directories that are no member (yet): the first member below each
	links    map[string]string // the base's symlinks: path → target
	targets  map[string]bool   // the targets of the hard links
	problems map[string]*BaseProblem
}

func newBaseCheck(links map[string]string) *baseCheck {
	return &baseCheck{types: map[string]byte{}, implied: map[string]string{}, links: links,
		targets: map[string]bool{}, problems: map[string]*BaseProblem{}}
}

// refuse records a refused member.
func (c *baseCheck) refuse(reason, format string, args ...any) {
	p := c.problems[reason]
	if p == nil {
		p = &BaseProblem{Reason: reason}
		c.problems[reason] = p
	}
	if p.Count++; p.Count <= maxExamples {
		p.Members = append(p.Members, fmt.Sprintf(format, args...))
	}
}

// member checks the member h at clean path p, after every earlier one.
func (c *baseCheck) member(h *tar.Header, p string) {
	if p == "/" {
		return
	}
	typ := h.Typeflag
	if isRegular(typ) {
		typ = tar.TypeReg
	}
	// Its parents: every one the base has must be a directory.
	below := false
	for a := path.Dir(p); a != "/"; a = path.Dir(a) {
		k, ok := c.types[a]
		switch {
		case ok && k != tar.TypeDir && !below:
			c.refuse(RefuseBelow, "%s (below the %s)", p, c.describe(a, k))
			below = true
		case !ok:
			if _, ok := c.implied[a]; !ok {
				c.implied[a] = p
			}
		}
	}
	// The path itself.
	if k, ok := c.types[p]; ok && (k != tar.TypeDir || typ != tar.TypeDir) {
		c.refuse(RefuseDuplicate, "%s (twice: a %s, then a %s)", p, typeName(k), typeName(typ))
	} else if first, ok := c.implied[p]; ok && typ != tar.TypeDir {
		c.refuse(RefuseBelow, "%s (below %s, which is a %s after it)", first, p, typeName(typ))
	}
	switch {
	case typ == tar.TypeLink:
		t := clean(h.Linkname)
		k, ok := c.types[t]
		switch {
		case !ok:
			c.refuse(RefuseHardlink, "%s → %s (no earlier member)", p, t)
		case k == tar.TypeDir:
			c.refuse(RefuseHardlink, "%s → %s (a directory)", p, t)
		default:
			typ = k
			c.targets[t] = true
		}
	case typ == tar.TypeReg && writableSetuid(h.Mode):
		c.refuse(RefuseSetuid, "%s (mode %04o)", p, h.Mode&0o7777)
	}
	c.types[p] = typ
}

// describe words the base member at p of type k, for a refusal.
func (c *baseCheck) describe(p string, k byte) string {
	if t, ok := c.links[p]; ok && k == tar.TypeSymlink {
		return fmt.Sprintf("symbolic link %s → %s", p, t)
	}
	return typeName(k) + " " + p
}

// err is the refusal of the base, or nil.
func (c *baseCheck) err() error {
	var e UnsafeBaseError
	for _, r := range refuseOrder {
		if p := c.problems[r.reason]; p != nil {
			e.Problems = append(e.Problems, *p)
		}
	}
	if len(e.Problems) == 0 {
		return nil
	}
	return &e
}

// writableSetuid reports whether a tar mode is a setuid program its group
// or others may write, or a setgid one others may write.
func writableSetuid(mode int64) bool {
	return mode&0o4000 != 0 && mode&0o022 != 0 || mode&0o2000 != 0 && mode&0o002 != 0
}

// isDevice reports whether a tar type is a character or block device.
func isDevice(t byte) bool { return t == tar.TypeChar || t == tar.TypeBlock }

// typeName words a tar type.
func typeName(t byte) string {
	switch {
	case isRegular(t):
		return "file"
	case t == tar.TypeDir:
		return "directory"
	case t == tar.TypeSymlink:
		return "symbolic link"
	case t == tar.TypeLink:
		return "hard link"
	case t == tar.TypeChar:
		return "character device"
	case t == tar.TypeBlock:
		return "block device"
	case t == tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("member of tar type %q", t)
}
