package output

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A plan is a run that changes nothing: the same calls as a run (Write,
// Note, Finish and the rest), but each compares what it would write with
// the disk and records the difference (Planned) instead of writing. A
// caller that writes a file itself asks Planning first and reports a
// symlink with PlanSymlink. No lock is taken and no file or directory is
// created, not even the root; what a planned write would have put at a
// path is what ReadFile and Mode return for it afterwards (kept in memory
// when it differs from the disk), so a caller that reads back what it
// wrote sees its own plan.

// Change is one difference a plan found.
type Change struct {
	Path string `json:"path"`
	Node string `json:"node,omitempty"`
	Kind string `json:"kind"`
	What string `json:"change"` // Added, Changed or Removed
	// Entries, for an archive that changed, are what changed inside it
	// ("/etc/hosts changed"), as its writer found them (PlanEntries).
	Entries []string `json:"entries,omitempty"`
}

// What a Change is.
const (
	Added   = "added"
	Changed = "changed"
	Removed = "removed"
)

// planned is what a planned write would have left at a path.
type planned struct {
	data []byte
	perm fs.FileMode
}

// OpenPlan opens root for a plan. A missing root is planned against as
// empty: its descriptor is an empty directory that is removed at once.
func OpenPlan(root string) (*Dir, error) {
	open := root
	if _, err := os.Lstat(root); errors.Is(err, fs.ErrNotExist) {
		tmp, err := os.MkdirTemp("", "hardway-plan-")
		if err != nil {
			return nil, err
		}
		defer os.Remove(tmp)
		open = tmp
	}
	fd, err := unix.Open(open, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	d := newDir(root, fd, nil)
	d.plan = map[string]planned{}
	d.cache = finishedCache(d)
	return d, nil
}

// finishedCache returns the stat cache of the lock file when the last run
// finished ("clean"): a file whose stat it knows, with the sha256 a plan
// would write, is unchanged without being read. After an unfinished run,
// or during one, there is none: every file is read.
func finishedCache(d *Dir) *statCache {
	data, err := d.ReadFile(LockFile)
	if err != nil || !bytes.HasPrefix(data, []byte(cleanMark)) {
		return nil
	}
	rest := data[len(cleanMark):]
	if n := statCacheLen(rest); n > 0 {
		return decodeStatCache(rest[:n])
	}
	return nil
}

// Planning reports whether d is a plan (OpenPlan).
func (d *Dir) Planning() bool { return d.plan != nil }

// planWrite records what Write would do with rel: data, whose sha256 is
// sum, with mode perm.
func (d *Dir) planWrite(rel string, data []byte, sum [32]byte, perm fs.FileMode) error {
	what := ""
	known := false
	_ = d.at(rel, false, func(dir int, name string) error {
		var st unix.Stat_t
		known = unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && d.knows(rel, sum, perm, &st)
		return nil
	})
	old, err := []byte(nil), error(nil)
	if !known {
		old, err = d.ReadFile(rel)
	}
	switch {
	case known:
	case errors.Is(err, fs.ErrNotExist):
		what = Added
	case err != nil:
		return err
	default:
		m, err := d.Mode(rel)
		if err != nil {
			return err
		}
		if !bytes.Equal(old, data) || m.Perm() != perm.Perm() {
			what = Changed
		}
	}
	if what == "" {
		return nil // the disk holds it: ReadFile reads it there
	}
	d.mu.Lock()
	d.plan[rel] = planned{data: data, perm: perm.Perm()}
	d.changes = append(d.changes, Change{Path: rel, What: what})
	d.mu.Unlock()
	return nil
}

// PlanSymlink records in a plan what the caller would do: make rel a
// symlink to target, recorded in the manifest with kind and node.
func (d *Dir) PlanSymlink(rel, target, kind, node string) error {
	d.Note(rel, []byte(target), kind, node)
	what := ""
	err := d.at(rel, false, func(dir int, name string) error {
		buf := make([]byte, len(target)+1)
		n, err := unix.Readlinkat(dir, name, buf)
		switch {
		case errors.Is(err, unix.ENOENT):
			what = Added
		case err != nil || string(buf[:n]) != target:
			what = Changed // a link elsewhere, or something else in its place
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		what, err = Added, nil
	}
	if what != "" {
		d.mu.Lock()
		d.changes = append(d.changes, Change{Path: rel, What: what})
		d.mu.Unlock()
	}
	return err
}

// PlanEntries records in a plan what changes inside rel, an archive whose
// planned write changed it: entries, as the caller compared them.
func (d *Dir) PlanEntries(rel string, entries []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	// The change was just recorded: look from the end.
	for i := len(d.changes) - 1; i >= 0; i-- {
		if d.changes[i].Path == rel {
			d.changes[i].Entries = entries
			return
		}
	}
}

// plannedFile returns what a planned write left at rel.
func (d *Dir) plannedFile(rel string) (planned, bool) {
	if d.plan == nil {
		return planned{}, false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.plan[rel]
	return p, ok
}

// Planned returns the differences a plan found, sorted by path, each
// with the node and kind the manifest gives it (this run's for a file
// added or changed, the previous run's for one removed). Call it after
// Finish, which finds the removals.
func (d *Dir) Planned() []Change {
	d.mu.Lock()
	defer d.mu.Unlock()
	prev := map[string]Artifact{}
	for _, a := range d.prev.Artifacts {
		prev[a.Path] = a
	}
	out := make([]Change, 0, len(d.changes))
	for _, c := range d.changes {
		a, ok := d.artifacts[c.Path]
		if !ok {
			a = prev[c.Path]
		}
		c.Node, c.Kind = a.Node, a.Kind
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Path, b.Path) })
	return out
}
