package emit

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/tree"
)

// writeTreeDir runs TreeDir on a fresh output.Dir over root and returns it.
func writeTreeDir(t *testing.T, root string, tr *tree.Tree) *output.Dir {
	t.Helper()
	d, err := output.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := TreeDir(d, "nodes/w1/rootfs", tr); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestTreeDirMatchesTree(t *testing.T) {
	root := t.TempDir()
	tr := sampleTree()
	d := writeTreeDir(t, root, tr)
	if len(d.Changed()) == 0 {
		t.Fatal("first run reports no change")
	}
	dir := filepath.Join(root, "nodes/w1/rootfs")
	if s := diff(snapshot(t, dir, isRoot()), want(tr, isRoot())); s != "" {
		t.Errorf("rootfs differs from the tree:\n%s", s)
	}
	st, err := os.Stat(filepath.Join(dir, "etc/etcd/server.key"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("secret: %v, %v; want mode 0600", st.Mode(), err)
	}
}

func TestTreeDirRerunChangesNothing(t *testing.T) {
	root := t.TempDir()
	tr := sampleTree()
	writeTreeDir(t, root, tr)
	link := filepath.Join(root, "nodes/w1/rootfs/etc/alternatives/tool")
	before := inode(t, link)

	d := writeTreeDir(t, root, sampleTree())
	if ch := d.Changed(); len(ch) != 0 {
		t.Errorf("rerun changed %v", ch)
	}
	if inode(t, link) != before {
		t.Error("rerun replaced an unchanged symlink")
	}
}

// inode returns the inode number of p, not following symlinks.
func inode(t *testing.T, p string) uint64 {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}

// TestTreeDirReplacesOldTypes: a path that changed type between runs (file →
// directory, directory → symlink, symlink target) ends up as the tree says.
func TestTreeDirReplacesOldTypes(t *testing.T) {
	root := t.TempDir()
	old := tree.New("w1")
	old.File("/a", 0o644, []byte("file\n"))
	old.File("/b/inner", 0o644, []byte("x\n"))
	old.Symlink("/c", "/old")
	writeTreeDir(t, root, old)

	now := tree.New("w1")
	now.File("/a/inner", 0o600, []byte("now a dir\n"))
	now.Symlink("/b", "/target")
	now.Symlink("/c", "/new")
	writeTreeDir(t, root, now)
	got := snapshot(t, filepath.Join(root, "nodes/w1/rootfs"), false)
	if s := diff(got, want(now, false)); s != "" {
		t.Errorf("rootfs after type changes:\n%s", s)
	}
}

func TestTreeDirManifest(t *testing.T) {
	root := t.TempDir()
	d := writeTreeDir(t, root, sampleTree())
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	got, err := output.ReadManifest(root)
	if err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	for p, wantSum := range map[string]string{
		"nodes/w1/rootfs/etc/hosts":                                            sum("127.0.0.1 localhost\n10.240.0.31 w1.example.com w1\n"),
		"nodes/w1/rootfs/etc/alternatives/tool":                                sum("/usr/local/bin/tool"),
		"nodes/w1/rootfs/etc/systemd/system/multi-user.target.wants/a.service": sum("/etc/systemd/system/a.service"),
	} {
		a, ok := got[p]
		if !ok || a.Kind != "rootfs" || a.Node != "w1" || a.SHA256 != wantSum {
			t.Errorf("manifest %s: %+v (present %v)", p, a, ok)
		}
	}
	for p := range got {
		if strings.HasSuffix(p, "/var/lib/empty") {
			t.Errorf("directory %s is in the manifest", p)
		}
	}
}

func TestTreeDirRefusesFileBelowSymlink(t *testing.T) {
	tr := tree.New("w1")
	tr.Symlink("/etc/x", "/etc")
	tr.File("/etc/x/passwd", 0o644, []byte("owned\n"))
	d, err := output.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := TreeDir(d, "rootfs", tr); err == nil {
		t.Fatal("a file below a symlink was accepted")
	}
}
