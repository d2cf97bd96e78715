package plugintest

import (
	"bytes"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/hardway-dev/hardway/tree"
)

// CheckInstalled checks that every entry of t, enablement links included,
// is under root with its type, permissions, content or link target, and,
// when owners is set, its numeric owner.
func CheckInstalled(t testing.TB, root string, tr *tree.Tree, owners bool) {
	t.Helper()
	n := 0
	for _, e := range tr.Entries() {
		if e.Path == "/" {
			continue
		}
		n++
		p := filepath.Join(root, filepath.FromSlash(e.Path))
		st, err := os.Lstat(p)
		if err != nil {
			t.Errorf("%s: %v", e.Path, err)
			continue
		}
		switch {
		case e.IsSymlink():
			target, err := os.Readlink(p)
			if err != nil || target != e.Target {
				t.Errorf("%s: link to %q (%v), want %q", e.Path, target, err, e.Target)
			}
			continue
		case e.IsDir() != st.IsDir(), e.IsFile() != st.Mode().IsRegular():
			t.Errorf("%s: type %v, want %v", e.Path, st.Mode().Type(), e.Mode.Type())
			continue
		}
		if st.Mode().Perm() != e.Mode.Perm() {
			t.Errorf("%s: mode %04o, want %04o", e.Path, st.Mode().Perm(), e.Mode.Perm())
		}
		if e.IsFile() {
			data, err := os.ReadFile(p)
			if err != nil || !bytes.Equal(data, e.Data) {
				t.Errorf("%s: content differs (%d bytes, want %d; %v)", e.Path, len(data), len(e.Data), err)
			}
		}
		if sys, ok := st.Sys().(*syscall.Stat_t); owners && ok && (int(sys.Uid) != e.UID || int(sys.Gid) != e.GID) {
			t.Errorf("%s: owner %d:%d, want %d:%d", e.Path, sys.Uid, sys.Gid, e.UID, e.GID)
		}
	}
	for _, u := range tr.Units() {
		link := tree.WantsLink(u.Name, u.WantedBy)
		if _, err := os.Lstat(filepath.Join(root, link)); err != nil {
			t.Errorf("unit %s is not enabled: %v", u.Name, err)
		}
	}
	if n == 0 || len(tr.Units()) == 0 {
		t.Errorf("tree of %s has %d entries and %d units: nothing to check", tr.Node, n, len(tr.Units()))
	}
}
