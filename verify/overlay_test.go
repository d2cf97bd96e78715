package verify

import (
	"archive/tar"
	"bytes"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/tree"
)

// sampleOverlay is a small tree with what overlay.tar carries: a secret, an
// executable, a mode the umask would narrow, a read-only directory with a
// file in it, and symlinks with absolute and relative targets.
func sampleOverlay() *tree.Tree {
	t := tree.New("n1")
	t.File("/etc/hosts", 0o644, []byte("127.0.0.1 localhost\n"))
	t.File("/etc/shared", 0o664, []byte("group-writable\n"))
	t.Secret("/etc/kubernetes/pki/ca.key", []byte("secret"))
	t.File("/usr/local/bin/tool", 0o755, []byte("#!/bin/sh\n"))
	t.Dir("/etc/ro", 0o555)
	t.File("/etc/ro/file", 0o444, []byte("read-only\n"))
	t.Dir("/var/lib/private", 0o700)
	t.Symlink("/etc/localtime", "/usr/share/zoneinfo/UTC")
	t.Symlink("/etc/tool", "../usr/local/bin/tool")
	return t
}

// tarOf is t as generate writes it to overlay.tar.
func tarOf(t *testing.T, tr *tree.Tree) []byte {
	t.Helper()
	b, err := emit.Tar(tr, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestExtractOverlay: every entry of an overlay comes out with its type,
// permission bits (past the umask and the read-only directory), content or
// link target, and nothing else does.
func TestExtractOverlay(t *testing.T) {
	src := sampleOverlay()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := extractOverlay(bytes.NewReader(tarOf(t, src)), "overlay.tar", dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, e := range src.Entries() {
		want[e.Path] = true
		host := filepath.Join(dir, e.Path)
		st, err := os.Lstat(host)
		if err != nil {
			t.Error(err)
			continue
		}
		if st.Mode().Type() != e.Mode.Type() || (!e.IsSymlink() && st.Mode().Perm() != e.Mode.Perm()) {
			t.Errorf("%s: mode %v, want %v", e.Path, st.Mode(), e.Mode)
		}
		switch {
		case e.IsSymlink():
			if target, _ := os.Readlink(host); target != e.Target {
				t.Errorf("%s: link to %q, want %q", e.Path, target, e.Target)
			}
		case e.IsFile():
			if data, _ := os.ReadFile(host); string(data) != string(e.Data) {
				t.Errorf("%s: %q, want %q", e.Path, data, e.Data)
			}
		}
	}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if rel, _ := filepath.Rel(dir, p); err == nil && rel != "." && !want["/"+rel] {
			t.Errorf("%s was extracted but is not in the tree", rel)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}

// rawEntry is one entry of a hand-made archive.
type rawEntry struct {
	typ        byte
	name, link string
	body       string
}

// rawTar writes entries as a tar, whatever they hold.
func rawTar(t *testing.T, entries []rawEntry) []byte {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, e := range entries {
		h := &tar.Header{Typeflag: e.typ, Name: e.name, Linkname: e.link, Mode: 0o644, Size: int64(len(e.body))}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := io.WriteString(tw, e.body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// TestExtractOverlayRefusesHostile: an archive that names a path outside
// the tree, writes through a symlink (one leaving the tree or not), or holds
// a hard link or device is refused at that entry, and nothing beside the
// tree is written: no new file, the existing one untouched. The symlinks
// point at that file's directory, not at "/", so that a broken guard
// overwrites a test file, not /etc/passwd.
func TestExtractOverlayRefusesHostile(t *testing.T) {
	base := t.TempDir()
	canary := filepath.Join(base, "canary")
	dir := func(name string) rawEntry { return rawEntry{typ: tar.TypeDir, name: name} }
	file := func(name string) rawEntry { return rawEntry{typ: tar.TypeReg, name: name, body: "overwritten"} }
	link := func(name, target string) rawEntry { return rawEntry{typ: tar.TypeSymlink, name: name, link: target} }
	tests := []struct {
		name    string
		entries []rawEntry
		bad     string // the entry refused
	}{
		{"dot-dot", []rawEntry{file("../escaped")}, "../escaped"},
		{"absolute", []rawEntry{file(canary)}, canary},
		{"through a symlink out", []rawEntry{link("a", base), file("a/escaped")}, "a/escaped"},
		{"through a symlink's directory", []rawEntry{link("a", base), dir("a/"), file("a/canary")}, "a/"},
		{"onto a symlink", []rawEntry{link("l", canary), file("l")}, "l"},
		{"through a symlink inside", []rawEntry{dir("d/"), link("l", "d"), file("l/f")}, "l/f"},
		{"no parent directory", []rawEntry{file("etc/x")}, "etc/x"},
		{"hard link", []rawEntry{{typ: tar.TypeLink, name: "h", link: canary}}, "h"},
		{"device", []rawEntry{{typ: tar.TypeChar, name: "mem"}}, "mem"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(canary, []byte("canary"), 0o644); err != nil {
				t.Fatal(err)
			}
			dest := filepath.Join(base, "tree"+strconv.Itoa(i))
			err := extractOverlay(bytes.NewReader(rawTar(t, tt.entries)), "hostile.tar", dest)
			if err == nil || !strings.Contains(err.Error(), "hostile.tar: entry "+strconv.Quote(tt.bad)+": ") {
				t.Errorf("extract: %v, want an error naming hostile.tar and entry %q", err, tt.bad)
			}
			if data, _ := os.ReadFile(canary); string(data) != "canary" {
				t.Errorf("the file beside the tree now holds %q", data)
			}
			names, _ := filepath.Glob(filepath.Join(base, "*"))
			for _, n := range names {
				if b := filepath.Base(n); b != "canary" && !strings.HasPrefix(b, "tree") {
					t.Errorf("%s was written beside the tree", n)
				}
			}
		})
	}
}

// TestNodeTree: a node's overlay.tar is extracted once, whoever asks
// first; a node without one is an error that names it.
func TestNodeTree(t *testing.T) {
	out := t.TempDir()
	v := &run{o: Options{Dir: out}, work: t.TempDir()}
	tarPath := filepath.Join(out, nodefiles.OverlayTar.Path("n1"))
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarPath, tarOf(t, sampleOverlay()), 0o644); err != nil {
		t.Fatal(err)
	}
	paths := make([]string, 8)
	errs := make([]error, 8)
	var wg sync.WaitGroup
	for i := range paths {
		wg.Go(func() { paths[i], errs[i] = v.nodeTree("n1", "etc", "hosts") })
	}
	wg.Wait()
	for i := range paths {
		if errs[i] != nil || paths[i] != paths[0] {
			t.Errorf("call %d: %q, %v", i, paths[i], errs[i])
		}
	}
	if data, err := os.ReadFile(paths[0]); err != nil || string(data) != "127.0.0.1 localhost\n" {
		t.Errorf("%s: %q, %v", paths[0], data, err)
	}
	if _, err := v.nodeTree("n2"); err == nil || !strings.Contains(err.Error(), "node n2: no generated tree: ") {
		t.Errorf("a node without overlay.tar: %v", err)
	}
}

// overlayTree extracts node's overlay.tar of the cluster directory dir to a
// temp dir and returns it: the node's tree as verify reads it.
func overlayTree(t *testing.T, dir, node string) string {
	t.Helper()
	src := filepath.Join(dir, nodefiles.OverlayTar.Path(node))
	f, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	root := filepath.Join(t.TempDir(), node)
	if err := extractOverlay(f, src, root); err != nil {
		t.Fatal(err)
	}
	return root
}

// editOverlay replaces the content of the file p (a path on the node, such
// as /etc/hosts) in node's overlay.tar of the cluster directory dir by
// edit's result, keeping every other entry and header field.
func editOverlay(t *testing.T, dir, node, p string, edit func([]byte) []byte) {
	t.Helper()
	src := filepath.Join(dir, nodefiles.OverlayTar.Path(node))
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(bytes.NewReader(data)), tar.NewWriter(&out)
	name := strings.TrimPrefix(p, "/")
	found := false
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		body, err := io.ReadAll(tr)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		if h.Name == name && h.Typeflag == tar.TypeReg {
			found = true
			body = edit(body)
			h.Size = int64(len(body))
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if !found {
		t.Fatalf("%s has no file %s", src, p)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(src, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestEditOverlay: the helper the failure tests break a bundle with
// changes the one file and keeps the others' content and modes.
func TestEditOverlay(t *testing.T) {
	dir := t.TempDir()
	tarPath := filepath.Join(dir, nodefiles.OverlayTar.Path("n1"))
	if err := os.MkdirAll(filepath.Dir(tarPath), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarPath, tarOf(t, sampleOverlay()), 0o644); err != nil {
		t.Fatal(err)
	}
	editOverlay(t, dir, "n1", "/etc/hosts", func(b []byte) []byte { return append(b, "10.0.0.1 x\n"...) })
	root := overlayTree(t, dir, "n1")
	if data, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(data) != "127.0.0.1 localhost\n10.0.0.1 x\n" {
		t.Errorf("edited /etc/hosts: %q", data)
	}
	key := filepath.Join(root, "etc/kubernetes/pki/ca.key")
	if data, _ := os.ReadFile(key); string(data) != "secret" {
		t.Errorf("untouched ca.key: %q", data)
	}
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("untouched ca.key: %v, %v", st, err)
	}
}
