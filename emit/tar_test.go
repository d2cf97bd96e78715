package emit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/tree"
)

// sampleTime is the mtime the tests give Tar: 2023-11-14 22:13:20 UTC.
var sampleTime = time.Unix(1700000000, 0)

// tarBytes returns Tar of the sample tree at sampleTime.
func tarBytes(t *testing.T) []byte {
	t.Helper()
	b, err := Tar(sampleTree(), sampleTime)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestTarReproducible(t *testing.T) {
	a, b := tarBytes(t), tarBytes(t)
	if !bytes.Equal(a, b) {
		t.Fatal("two runs over the same tree differ")
	}
	for _, key := range []string{"atime=", "ctime=", "mtime="} {
		if bytes.Contains(a, []byte(key)) {
			t.Errorf("archive holds a PAX %s record", key)
		}
	}
	if !bytes.Contains(a, []byte("path="+strings.TrimPrefix(longDir, "/"))) {
		t.Error("the long path is not carried by a PAX path record")
	}
}

// TestTarSize: for a tree whose names all fit USTAR headers, Tar's buffer
// was sized exactly (tarSize); with the sample's long name, the PAX records
// make the stream only larger.
func TestTarSize(t *testing.T) {
	short := tree.New("w1")
	short.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	short.Secret("/etc/kubernetes/kubelet.key", bytes.Repeat([]byte("k"), 1025))
	short.File("/etc/empty.conf", 0o600, nil)
	short.Symlink("/etc/alternatives/tool", "/usr/local/bin/tool")
	for _, c := range []struct {
		tree  *tree.Tree
		exact bool
	}{{short, true}, {sampleTree(), false}} {
		got, err := Tar(c.tree, sampleTime)
		if err != nil {
			t.Fatal(err)
		}
		es, err := entries(c.tree)
		if err != nil {
			t.Fatal(err)
		}
		if n := tarSize(es); c.exact && n != len(got) {
			t.Errorf("tarSize = %d, the stream is %d bytes", n, len(got))
		} else if !c.exact && n >= len(got) {
			t.Errorf("tarSize = %d for a stream of %d bytes with PAX records", n, len(got))
		}
	}
}

// perms is the ls-style mode string GNU tar prints.
func perms(kind byte, mode uint32) string {
	s := []byte{kind}
	for i := 8; i >= 0; i-- {
		if mode&(1<<uint(i)) == 0 {
			s = append(s, '-')
		} else {
			s = append(s, "rwx"[(8-i)%3])
		}
	}
	return string(s)
}

// TestTarListing reads the archive with GNU tar: numeric owners, the
// entries of the tree in sorted order and nothing else, the secret 0600,
// the symlink, every mtime the one given.
func TestTarListing(t *testing.T) {
	gnutar := tool(t, "tar")
	dir := t.TempDir()
	archive := filepath.Join(dir, "overlay.tar")
	if err := os.WriteFile(archive, tarBytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := []string{"-tvf", archive, "--full-time", "--utc"}
	lines := strings.Split(strings.TrimSpace(string(run(t, gnutar, cmd...))), "\n")

	var want []string
	for _, e := range sampleTree().Entries() {
		name, kind, size := strings.TrimPrefix(e.Path, "/"), byte('-'), len(e.Data)
		switch {
		case e.IsDir():
			name, kind = name+"/", 'd'
		case e.IsSymlink():
			name, kind = name+" -> "+e.Target, 'l'
		}
		want = append(want, fmt.Sprintf("%s %d/%d %d 2023-11-14 22:13:20 %s", perms(kind, uint32(e.Mode.Perm())), e.UID, e.GID, size, name))
	}
	var got []string
	for _, l := range lines {
		got = append(got, strings.Join(strings.Fields(l), " "))
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("tar -tv:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if !namesSorted(got) {
		t.Error("entries are not sorted")
	}
	for _, l := range got {
		if strings.HasSuffix(l, " etc/etcd/server.key") && !strings.HasPrefix(l, "-rw------- 0/0 ") {
			t.Errorf("secret listed as %q", l)
		}
	}
}

// namesSorted reports whether the names (last field) of tar -tv lines are sorted.
func namesSorted(lines []string) bool {
	var names []string
	for _, l := range lines {
		f := strings.Fields(l)
		names = append(names, strings.TrimSuffix(f[5], "/"))
	}
	return sort.StringsAreSorted(names)
}

// TestTarExtract extracts the archive with GNU tar as pct does
// (--numeric-owner) and compares the result with the tree.
func TestTarExtract(t *testing.T) {
	gnutar := tool(t, "tar")
	dir := t.TempDir()
	archive := filepath.Join(dir, "overlay.tar")
	if err := os.WriteFile(archive, tarBytes(t), 0o600); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root")
	if err := os.Mkdir(root, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, gnutar, "-xpf", archive, "--numeric-owner", "-C", root)
	if s := diff(snapshot(t, root, isRoot()), want(sampleTree(), isRoot())); s != "" {
		t.Errorf("extracted tree differs:\n%s", s)
	}
}
