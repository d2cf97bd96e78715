package emit

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/tree"
)

// TreeDir writes t under rel (for example nodes/<node>/rootfs) in d:
//   - regular files through d.Write: atomic, only when bytes or mode changed,
//     recorded in the manifest with kind nodefiles.Rootfs.Kind and node t.Node;
//   - symlinks atomically (a temporary link renamed over the path) and only
//     when the target changed, recorded with their target as data;
//   - directories with their modes, applied last so that a directory without
//     write permission can still be filled; while being filled, a new
//     directory is 0700.
//
// Secrets are created with their final mode before any byte is written.
// Owners are set only when running as root: otherwise files belong to the
// user running hardway and overlay.tar is authoritative for owners.
// Directories are not in the manifest; one that the tree no longer holds
// stays behind, empty once output.Dir.Finish removed its files.
func TreeDir(d *output.Dir, rel string, t *tree.Tree) error {
	es, err := entries(t)
	if err != nil {
		return err
	}
	if d.Planning() {
		return planTreeDir(d, rel, t.Node, es)
	}
	root := filepath.Join(d.Root, filepath.FromSlash(rel))
	if err := os.MkdirAll(root, 0o755); err != nil {
		return err
	}
	w := dirWriter{d: d, rel: rel, root: root, node: t.Node, owners: os.Geteuid() == 0}
	for _, e := range es {
		if err := w.entry(e); err != nil {
			return err
		}
	}
	// Directory modes last, deepest first, so children were writable.
	for i := len(es) - 1; i >= 0; i-- {
		if e := es[i]; e.IsDir() {
			if err := setMode(w.path(e), e.Mode.Perm()); err != nil {
				return err
			}
		}
	}
	return nil
}

// planTreeDir is TreeDir in a plan (output.OpenPlan): the files and
// symlinks it would write, compared with the disk. Directories and owners
// are not in the manifest, and not in the plan.
func planTreeDir(d *output.Dir, rel, node string, es []*tree.Entry) error {
	for _, e := range es {
		var err error
		switch {
		case e.IsDir():
		case e.IsSymlink():
			err = d.PlanSymlink(rel+e.Path, e.Target, nodefiles.Rootfs.Kind, node)
		default:
			err = d.Write(rel+e.Path, e.Data, e.Mode.Perm(), nodefiles.Rootfs.Kind, node)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// dirWriter holds what every entry of one TreeDir call needs.
type dirWriter struct {
	d      *output.Dir
	rel    string // tree root relative to d.Root, slash-separated
	root   string // tree root on disk
	node   string
	owners bool // running as root: set uid/gid
}

// path is where e lives on disk.
func (w *dirWriter) path(e *tree.Entry) string {
	return filepath.Join(w.root, filepath.FromSlash(e.Path))
}

// entry writes one entry and sets its owner.
func (w *dirWriter) entry(e *tree.Entry) error {
	p := w.path(e)
	rel := w.rel + e.Path
	var err error
	switch {
	case e.IsDir():
		err = mkdir(p)
	case e.IsSymlink():
		w.d.Note(rel, []byte(e.Target), nodefiles.Rootfs.Kind, w.node)
		err = symlink(p, e.Target)
	default:
		if err = removeDir(p); err == nil {
			err = w.d.Write(rel, e.Data, e.Mode.Perm(), nodefiles.Rootfs.Kind, w.node)
		}
	}
	if err != nil {
		return err
	}
	if w.owners {
		return chown(p, e.UID, e.GID)
	}
	return nil
}

// mkdir makes sure p is a directory, replacing whatever else is there. A new
// directory starts as 0700; TreeDir sets its final mode at the end.
func mkdir(p string) error {
	st, err := os.Lstat(p)
	if err == nil && st.IsDir() {
		return nil
	}
	if err == nil {
		if err := os.Remove(p); err != nil {
			return err
		}
	}
	return os.Mkdir(p, 0o700)
}

// removeDir removes a directory left at p by an earlier run, where a file or
// symlink must now go (a rename cannot replace a directory).
func removeDir(p string) error {
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		return os.RemoveAll(p)
	}
	return nil
}

// symlink makes p a symlink to target, unless it already is one: the new
// link is created at a temporary name beside p and renamed over it.
func symlink(p, target string) error {
	if cur, err := os.Readlink(p); err == nil && cur == target {
		return nil
	}
	if err := removeDir(p); err != nil {
		return err
	}
	tmp := filepath.Join(filepath.Dir(p), "."+filepath.Base(p)+".hardway-tmp")
	if err := os.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, p); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// chown sets the owner of p (not following symlinks) when it differs.
func chown(p string, uid, gid int) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if s, ok := st.Sys().(*syscall.Stat_t); ok && int(s.Uid) == uid && int(s.Gid) == gid {
		return nil
	}
	return os.Lchown(p, uid, gid)
}

// setMode sets the permission bits of directory p when they differ.
func setMode(p string, perm fs.FileMode) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	if st.Mode().Perm() == perm {
		return nil
	}
	return os.Chmod(p, perm)
}
