package output

import (
	"os"
	"path/filepath"
	"testing"
)

// TestRemoveEmptyDirs: below nodes/, the directories of a node that keep
// refuses go as far as they are empty; one holding a file stays with the
// directories on the way to it; a kept node's empty directory stays; a
// symlink is not followed (the empty directory it points at stays), nor
// removed.
func TestRemoveEmptyDirs(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	mk := func(p string) {
		if err := os.MkdirAll(filepath.Join(root, p), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	mk("nodes/gone/rootfs/etc/systemd/system")
	mk("nodes/gone/rootfs/var/lib/etcd")
	mk("nodes/user/rootfs/etc")
	mk("nodes/kept/rootfs/var/lib/etcd")
	mk("nodes/linked")
	if err := os.WriteFile(filepath.Join(root, "nodes/user/rootfs/etc/notes"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(outside, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "nodes/linked/to")); err != nil {
		t.Fatal(err)
	}
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.RemoveEmptyDirs("nodes", func(name string) bool { return name == "kept" }); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{
		"nodes/gone":                     false,
		"nodes/user/rootfs/etc/notes":    true,
		"nodes/user/rootfs/var":          false,
		"nodes/kept/rootfs/var/lib/etcd": true,
		"nodes/linked/to":                true,
	} {
		if _, err := os.Lstat(filepath.Join(root, p)); (err == nil) != want {
			t.Errorf("%s: present %v, want %v", p, err == nil, want)
		}
	}
	if _, err := os.Stat(filepath.Join(outside, "empty")); err != nil {
		t.Errorf("followed the symlink: %v", err)
	}
	if err := d.RemoveEmptyDirs("missing", func(string) bool { return false }); err != nil {
		t.Errorf("a missing directory: %v", err)
	}
}
