package verify

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/hardway-dev/hardway/nodefiles"
)

// Verify reads each node's generated tree from nodes/<node>/overlay.tar:
// that archive is what ships to the node, while nodes/<node>/rootfs/ is
// written only by generate --rootfs. Each archive is extracted once, into
// <work>/trees/<node>, the pristine tree that reads of generated files and
// NewRoot's copies start from.

// overlayTrees remembers which nodes' archives a run has extracted.
type overlayTrees struct {
	mu   sync.Mutex
	done map[string]error // node → the result of its extraction
}

// nodeTree returns the path of rest below node's generated tree, extracting
// the node's overlay.tar on first use. It is safe for concurrent use; the
// lock is held through an extraction, which takes milliseconds.
func (v *run) nodeTree(node string, rest ...string) (string, error) {
	dir := filepath.Join(v.work, "trees", node)
	v.trees.mu.Lock()
	defer v.trees.mu.Unlock()
	err, ok := v.trees.done[node]
	if !ok {
		err = v.extractTree(node, dir)
		if v.trees.done == nil {
			v.trees.done = map[string]error{}
		}
		v.trees.done[node] = err
	}
	if err != nil {
		return "", err
	}
	return filepath.Join(append([]string{dir}, rest...)...), nil
}

// extractTree extracts node's overlay.tar to dir.
func (v *run) extractTree(node, dir string) error {
	src := v.artifact(nodefiles.OverlayTar, node)
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("node %s: no generated tree: %w", node, err)
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Dir(dir), 0o700); err != nil {
		return err
	}
	if err := extractOverlay(f, src, dir); err != nil {
		return fmt.Errorf("node %s: %w", node, err)
	}
	return nil
}

// extractOverlay writes the tar stream r (called name in errors) to dir,
// which it creates: directories, regular files and symlinks, with their
// permission bits. Owners are not kept: verify runs the node's processes
// as root.
//
// The archive is untrusted input, since verify runs as root. An entry's name
// must be relative, without "." or ".." elements, and its parent must be a
// directory an earlier entry created; nothing existing is replaced (no
// O_TRUNC, no MkdirAll). So no entry is written through a symlink, wherever
// the links point; os.Root (openat beneath dir) is a second guard against
// leaving dir.
func extractOverlay(r io.Reader, name, dir string) error {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	dirs := map[string]fs.FileMode{".": 0o755} // directories created, with their modes
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := extractEntry(root, tr, h, dirs); err != nil {
			return fmt.Errorf("%s: entry %q: %w", name, h.Name, err)
		}
	}
	// Directory modes last, deepest first (a child sorts after its
	// parent), so that a read-only directory could still be filled.
	for _, d := range slices.Backward(slices.Sorted(maps.Keys(dirs))) {
		if err := root.Chmod(d, dirs[d]); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
	}
	return nil
}

// extractEntry creates one entry of the archive below root (see
// extractOverlay) and records a directory in dirs.
func extractEntry(root *os.Root, r io.Reader, h *tar.Header, dirs map[string]fs.FileMode) error {
	p := strings.TrimSuffix(h.Name, "/")
	if !fs.ValidPath(p) || p == "." {
		return errors.New("not a relative path without . or .. elements")
	}
	if _, ok := dirs[path.Dir(p)]; !ok {
		return errors.New("its parent is not a directory of the archive")
	}
	perm := fs.FileMode(h.Mode).Perm()
	switch h.Typeflag {
	case tar.TypeDir:
		if err := root.Mkdir(p, 0o700); err != nil {
			return err
		}
		dirs[p] = perm
		return nil
	case tar.TypeSymlink:
		return root.Symlink(h.Linkname, p)
	case tar.TypeReg:
		// O_EXCL: an existing name, a symlink above all, is an error.
		f, err := root.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if err == nil {
			err = f.Chmod(perm) // not through the umask
		}
		return errors.Join(err, f.Close())
	}
	return fmt.Errorf("type %q: only directories, regular files and symlinks are extracted", h.Typeflag)
}
