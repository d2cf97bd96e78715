// Package emit turns a node's file tree into its output formats: a directory
// (TreeDir, nodes/<node>/rootfs/), a reproducible overlay tar, NoCloud
// cloud-init (and its seed ISO) and Ignition. Every format carries exactly
// the tree's entries.
package emit

import (
	"fmt"
	"path"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hardway-dev/hardway/tree"
)

// EpochEnv is the variable an edge (the CLI, the Packer plugin) reads an
// Epoch from, once: reproducible-builds.org's SOURCE_DATE_EPOCH.
const EpochEnv = "SOURCE_DATE_EPOCH"

// Epoch is the time of every emitted and baked entry, as the caller was
// given it. The zero Epoch is the Unix epoch, not given.
type Epoch struct {
	Unix int64 // seconds since the Unix epoch
	Set  bool  // given: bake clamps the base's mtimes to it too
}

// ParseEpoch is the Epoch of EpochEnv's value s: unset when s is empty,
// the Unix epoch (yet set) when s is not a number of seconds.
func ParseEpoch(s string) Epoch {
	if s == "" {
		return Epoch{}
	}
	v, _ := strconv.ParseInt(s, 10, 64)
	return Epoch{Unix: v, Set: true}
}

// Time is e as a time in UTC.
func (e Epoch) Time() time.Time { return time.Unix(e.Unix, 0).UTC() }

// entries checks t and returns its entries sorted by path, parents first,
// without the root directory itself. Besides the tree's own invariants
// (tree.Check) it refuses an entry whose parent is not a directory of the
// tree: a file below a symlink would be written through the link, outside
// the tree.
func entries(t *tree.Tree) ([]*tree.Entry, error) {
	if err := t.Check(); err != nil {
		return nil, err
	}
	all := t.Entries()
	dirs := map[string]bool{"/": true}
	out := make([]*tree.Entry, 0, len(all))
	for _, e := range all {
		if e.Path == "/" {
			continue
		}
		if !dirs[path.Dir(e.Path)] {
			return nil, fmt.Errorf("tree %s: the parent of %s is not a directory", t.Node, e.Path)
		}
		if e.IsSymlink() && e.Target == "" {
			return nil, fmt.Errorf("tree %s: symlink %s has no target", t.Node, e.Path)
		}
		if e.IsDir() {
			dirs[e.Path] = true
		}
		out = append(out, e)
	}
	return out, nil
}

// explicit reports whether the tree holds e itself, as opposed to a parent
// directory that Entries added implicitly (0755 root:root, "whatever the
// system has"). Formats that create parents on their own skip implicit ones.
func explicit(t *tree.Tree, e *tree.Entry) bool {
	_, ok := t.Get(e.Path)
	return ok
}

// isText reports whether data can be written as a plain YAML or JSON string
// and read back unchanged: valid UTF-8 made of printable characters, tabs and
// newlines only. Anything else (binaries, CR, NUL, BOM) is base64-encoded.
func isText(data []byte) bool {
	if !utf8.Valid(data) {
		return false
	}
	for _, r := range string(data) {
		if r != '\n' && r != '\t' && !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// octal formats a permission as four octal digits, e.g. 0644.
func octal(e *tree.Entry) string { return fmt.Sprintf("%04o", uint32(e.Mode.Perm())) }
