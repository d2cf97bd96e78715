package clusterdir

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/nodefiles"
)

// TestRootfsOptIn: a run writes no rootfs/ tree unless asked (Rootfs:
// TreesOn); asked, each node's tree holds exactly the entries of its
// overlay.tar (type, mode, content, link target), read back with
// archive/tar; a rerun that does not say (TreesAsBefore, what bake and
// verify do) keeps the trees and changes nothing; TreesOff removes them,
// directories too, and leaves every overlay.tar's bytes as they were.
func TestRootfsOptIn(t *testing.T) {
	doc := load(t, seed, "")
	out := t.TempDir()
	dir := generate(t, doc, out).Dir
	overlays := map[string][]byte{}
	for _, n := range doc.Cluster.Spec.Nodes {
		if _, err := os.Lstat(filepath.Join(dir, nodefiles.Rootfs.Path(n.Name))); err == nil {
			t.Errorf("%s: a rootfs/ tree not asked for", n.Name)
		}
		data, err := os.ReadFile(filepath.Join(dir, nodefiles.OverlayTar.Path(n.Name)))
		if err != nil {
			t.Fatal(err)
		}
		overlays[n.Name] = data
	}

	generateWith(t, doc, Options{Out: out, Rootfs: TreesOn})
	for name, data := range overlays {
		want := overlayEntries(t, data)
		got := snapshot(t, filepath.Join(dir, nodefiles.Rootfs.Path(name)))
		for p, e := range want {
			if g, ok := got[p]; !ok || g.mode != e.mode || !bytes.Equal(g.data, e.data) {
				t.Errorf("%s: rootfs/%s is %v %q, overlay.tar holds %v %q", name, p, g.mode, g.data, e.mode, e.data)
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("%s: rootfs/%s is in no overlay.tar entry", name, p)
			}
		}
	}

	if res := generateWith(t, doc, Options{Out: out}); len(res.Changed) != 0 {
		t.Errorf("a rerun without saying changed %v", res.Changed)
	}
	for name := range overlays {
		if _, err := os.Stat(filepath.Join(dir, nodefiles.Rootfs.Path(name), "etc/hostname")); err != nil {
			t.Errorf("a rerun without saying dropped %s's tree: %v", name, err)
		}
	}

	generateWith(t, doc, Options{Out: out, Rootfs: TreesOff})
	for name, data := range overlays {
		if _, err := os.Lstat(filepath.Join(dir, nodefiles.Rootfs.Path(name))); err == nil {
			t.Errorf("%s: rootfs/ left by TreesOff", name)
		}
		if now, _ := os.ReadFile(filepath.Join(dir, nodefiles.OverlayTar.Path(name))); !bytes.Equal(now, data) {
			t.Errorf("%s: overlay.tar changed with the trees", name)
		}
	}
	consistent(t, dir)
}

// overlayEntries describes each entry of a tar as snapshot describes a
// directory's: by path relative to its root, the mode with its type bits,
// a file's content or a link's target.
func overlayEntries(t *testing.T, data []byte) map[string]entry {
	t.Helper()
	out := map[string]entry{}
	tr := tar.NewReader(bytes.NewReader(data))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		p := strings.Trim(h.Name, "/")
		if p == "" {
			continue // the root: rootfs/ itself
		}
		e := entry{mode: fs.FileMode(h.Mode).Perm()}
		switch h.Typeflag {
		case tar.TypeDir:
			e.mode |= fs.ModeDir
		case tar.TypeSymlink:
			// A symlink's permission bits are 0777 on Linux whatever the tar says.
			e.mode, e.data = fs.ModeSymlink|0o777, []byte(h.Linkname)
		case tar.TypeReg:
			if e.data, err = io.ReadAll(tr); err != nil {
				t.Fatal(err)
			}
		default:
			t.Fatalf("%s: tar entry type %c", p, h.Typeflag)
		}
		out[p] = e
	}
}
