package emit

import (
	"bytes"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/tree"
)

// TestTarChanges: between two archives of a tree, a file's content, a
// file's mode, an owner and a link's target are changes; an entry only in
// one is added or removed; the same tree at another mtime is no change.
func TestTarChanges(t *testing.T) {
	type node struct {
		hosts    string
		hostname fs.FileMode
		gid      int
		link     string
		gone     bool // /etc/gone, else /etc/new
		mtime    int64
	}
	archive := func(n node) []byte {
		tr := tree.New("n")
		tr.File("/etc/hosts", 0o644, []byte(n.hosts))
		tr.File("/etc/hostname", n.hostname, []byte("n\n"))
		tr.FileOwned("/etc/app.conf", 0o640, 0, n.gid, []byte("a=1\n"), false)
		tr.Symlink("/etc/link", n.link)
		if n.gone {
			tr.File("/etc/gone", 0o644, []byte("x\n"))
		} else {
			tr.File("/etc/new", 0o644, []byte("y\n"))
		}
		b, err := Tar(tr, time.Unix(n.mtime, 0))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	was := node{"127.0.0.1 localhost\n", 0o644, 0, "/etc/hosts", true, 1}
	old := archive(was)
	later := was
	later.mtime = 2
	if got, err := TarChanges(old, archive(later)); err != nil || len(got) != 0 {
		t.Errorf("another mtime: %q %v, want no change", got, err)
	}
	got, err := TarChanges(old, archive(node{"127.0.0.2 localhost\n", 0o600, 101, "/etc/hostname", false, 1}))
	want := []string{"/etc/app.conf changed", "/etc/gone removed", "/etc/hostname changed", "/etc/hosts changed", "/etc/link changed", "/etc/new added"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("TarChanges = %q %v, want %q", got, err, want)
	}
	if _, err := TarChanges(bytes.Repeat([]byte("not a tar "), 100), old); err == nil {
		t.Error("an old archive that is no tar: no error")
	}
}
