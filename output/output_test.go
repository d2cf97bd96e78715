package output

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// complete writes files (rel → content, all mode perm) as one complete run made
// from inputs, and returns the directory of that run.
func complete(t *testing.T, root, inputs string, perm os.FileMode, files map[string]string) *Dir {
	t.Helper()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	if d.Unchanged(inputs) {
		return d
	}
	for rel, data := range files {
		if err := d.Write(rel, []byte(data), perm, "test", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	return d
}

// TestUnchangedVerifiesBytesAndModes: the fast path must not take over a
// file whose bytes (same size) or mode differ from the manifest's.
func TestUnchangedVerifiesBytesAndModes(t *testing.T) {
	files := map[string]string{"nodes/a/proxmox.conf": "memory: 16384\n", "pki/x.key": "secret"}
	for _, tc := range []struct {
		name   string
		tamper func(root string) error
	}{
		{"same size", func(root string) error {
			return os.WriteFile(filepath.Join(root, "nodes/a/proxmox.conf"), []byte("memory: 32768\n"), 0o600)
		}},
		{"mode", func(root string) error { return os.Chmod(filepath.Join(root, "pki/x.key"), 0o644) }},
		{"symlink", func(root string) error {
			p := filepath.Join(root, "pki/x.key")
			os.Rename(p, p+".real")
			return os.Symlink("x.key.real", p)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			complete(t, root, "in1", 0o600, files)
			if d, _ := Open(root); !d.Unchanged("in1") {
				t.Fatal("an untouched directory is not unchanged")
			}
			if err := tc.tamper(root); err != nil {
				t.Fatal(err)
			}
			if d, _ := Open(root); d.Unchanged("in1") {
				t.Fatal("Unchanged took over a tampered file")
			}
			complete(t, root, "in1", 0o600, files)
			for rel, want := range files {
				p := filepath.Join(root, rel)
				st, err := os.Lstat(p)
				if err != nil || !st.Mode().IsRegular() || st.Mode().Perm() != 0o600 {
					t.Errorf("%s not repaired: %v %v", rel, st.Mode(), err)
				}
				if got, _ := os.ReadFile(p); string(got) != want {
					t.Errorf("%s holds %q", rel, got)
				}
			}
		})
	}
}

// TestNoWritesThroughSymlinks: a symlinked directory below the root is
// refused for reads and writes, and nothing reaches the link's target.
func TestNoWritesThroughSymlinks(t *testing.T) {
	for _, link := range []string{"pki", "kubeconfigs", "nodes/w1", "nodes"} {
		t.Run(link, func(t *testing.T) {
			root, elsewhere := t.TempDir(), t.TempDir()
			os.MkdirAll(filepath.Dir(filepath.Join(root, link)), 0o755)
			if err := os.Symlink(elsewhere, filepath.Join(root, link)); err != nil {
				t.Fatal(err)
			}
			d, err := Open(root)
			if err != nil {
				t.Fatal(err)
			}
			rel := link + "/w1/ca.key"
			err = d.Write(rel, []byte("secret"), 0o600, "test", "")
			if err == nil || !strings.Contains(err.Error(), "symlink") {
				t.Errorf("write through %s: err = %v, want a symlink refusal", link, err)
			}
			os.WriteFile(filepath.Join(elsewhere, "planted"), []byte("x"), 0o644)
			if _, err := d.ReadFile(link + "/planted"); err == nil {
				t.Errorf("read through the %s symlink", link)
			}
			if err := d.MkdirAll(link + "/sub"); err == nil {
				t.Errorf("mkdir through the %s symlink", link)
			}
			if ents, _ := os.ReadDir(elsewhere); len(ents) != 1 {
				t.Errorf("the link target received %v", ents)
			}
		})
	}
}

// TestRemovalDoesNotFollowSymlinks: files of a node that left the spec are
// not removed through a symlinked node directory; the run says why.
func TestRemovalDoesNotFollowSymlinks(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	complete(t, root, "in1", 0o644, map[string]string{"nodes/w1/a": "a", "nodes/w2/b": "b"})
	if err := os.Rename(filepath.Join(root, "nodes/w2"), filepath.Join(elsewhere, "w2")); err != nil {
		t.Fatal(err)
	}
	os.Symlink(filepath.Join(elsewhere, "w2"), filepath.Join(root, "nodes/w2"))
	d, _ := Open(root)
	d.Unchanged("in2")
	d.Write("nodes/w1/a", []byte("a"), 0o644, "test", "")
	if err := d.Finish(); err == nil || !strings.Contains(err.Error(), "symlink") {
		t.Errorf("Finish: %v, want a symlink refusal", err)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "w2", "b")); err != nil {
		t.Errorf("a file behind the symlink was removed: %v", err)
	}
}

// TestFileSymlinkReplaced: a symlink where a file of ours goes is replaced
// by the file; its target is not written.
func TestFileSymlinkReplaced(t *testing.T) {
	root, elsewhere := t.TempDir(), t.TempDir()
	target := filepath.Join(elsewhere, "t")
	os.WriteFile(target, []byte("theirs"), 0o644)
	os.MkdirAll(filepath.Join(root, "kubeconfigs"), 0o755)
	os.Symlink(target, filepath.Join(root, "kubeconfigs", "admin.kubeconfig"))
	d, _ := Open(root)
	if err := d.Write("kubeconfigs/admin.kubeconfig", []byte("ours"), 0o600, "test", ""); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(target); string(got) != "theirs" {
		t.Errorf("the link target was written: %q", got)
	}
	st, err := os.Lstat(filepath.Join(root, "kubeconfigs", "admin.kubeconfig"))
	if err != nil || !st.Mode().IsRegular() {
		t.Errorf("the link was not replaced: %v %v", st, err)
	}
}

// TestRelativePathsOnly: whatever the caller passes, nothing is written
// outside the root.
func TestRelativePathsOnly(t *testing.T) {
	parent := t.TempDir()
	root := filepath.Join(parent, "root")
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, rel := range []string{"../escape", "/tmp/abs", "a/../../escape", "a/../b", "", ".", "a//b", "a/./b", "a/"} {
		if err := d.Write(rel, []byte("x"), 0o644, "test", ""); err == nil {
			t.Errorf("Write(%q) accepted", rel)
		}
		if _, err := d.ReadFile(rel); err == nil || errors.Is(err, os.ErrNotExist) {
			t.Errorf("ReadFile(%q): %v, want a refusal", rel, err)
		}
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("written outside the root: %v", ents)
	}
}

// TestWithoutOpenat2 runs the symlink and verification tests on the
// component-by-component walk that stands in for openat2 on old kernels.
func TestWithoutOpenat2(t *testing.T) {
	defer func(f func(int, string, *unix.OpenHow) (int, error)) { openat2, noOpenat2 = f, false }(openat2)
	openat2 = func(int, string, *unix.OpenHow) (int, error) { return -1, unix.ENOSYS }
	noOpenat2 = false
	t.Run("symlinks", TestNoWritesThroughSymlinks)
	t.Run("removal", TestRemovalDoesNotFollowSymlinks)
	t.Run("paths", TestRelativePathsOnly)
	t.Run("verify", TestUnchangedVerifiesBytesAndModes)
	if !noOpenat2 {
		t.Error("the fallback was not taken")
	}
}

// locked opens root and takes its lock for one run, failing the test on error.
func locked(t *testing.T, root string, skip ...string) (*Dir, func(), []string) {
	t.Helper()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	unlock, swept, err := d.Lock(nil, skip...)
	if err != nil {
		t.Fatal(err)
	}
	return d, unlock, swept
}

// TestSweep: the temporary files of an unfinished run are removed by the
// next run, ours only, not below skip; after a finished run nothing is swept.
func TestSweep(t *testing.T) {
	root := t.TempDir()
	d, unlock, _ := locked(t, root)
	d.Unchanged("in1")
	d.Write("nodes/w1/overlay.tar", []byte("tar"), 0o600, "test", "w1")
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	unlock()

	ours := []string{"nodes/w1/.overlay.tar.tmp-12345", "pki/.ca.key.tmp-1", "nodes/w1/.ca.crt.hardway-tmp", "bake/.debian-12-hardway-w1.work-77"}
	theirs := []string{"nodes/w1/.overlay.tar.tmp-", "nodes/w1/.overlay.tar.tmp-x1", "nodes/w1/overlay.tar.tmp-1", "nodes/w1/.tmp-1", "notes.txt"}
	skipped := "bake/w1/.debian-12-hardway-w1.tar.zst.tmp-9"
	for _, p := range append(append(theirs, ours[:2]...), skipped) {
		os.MkdirAll(filepath.Dir(filepath.Join(root, p)), 0o755)
		os.WriteFile(filepath.Join(root, p), []byte("x"), 0o600)
	}
	os.Symlink("/etc/ca.crt", filepath.Join(root, ours[2]))
	work := filepath.Join(root, ours[3], "rootfs/usr")
	os.MkdirAll(work, 0o755)
	os.Chmod(filepath.Dir(work), 0o555)

	d, unlock, swept := locked(t, root, "bake/w1")
	if len(swept) != 0 {
		t.Errorf("swept %v after a finished run", swept)
	}
	if !d.Unchanged("in1") || d.Finish() != nil {
		t.Fatal("a no-op run failed")
	}
	unlock()
	// A run that does not finish.
	d, unlock, _ = locked(t, root, "bake/w1")
	d.Write("nodes/w1/overlay.tar", []byte("other"), 0o600, "test", "w1")
	unlock()

	_, unlock, swept = locked(t, root, "bake/w1")
	defer unlock()
	if strings.Join(swept, " ") != strings.Join(sorted(ours), " ") {
		t.Errorf("swept %v, want %v", swept, sorted(ours))
	}
	for _, p := range append(theirs, skipped) {
		if _, err := os.Lstat(filepath.Join(root, p)); err != nil {
			t.Errorf("%s was removed", p)
		}
	}
}

func sorted(s []string) []string {
	s = append([]string(nil), s...)
	sort.Strings(s)
	return s
}

// TestUnlistedFilesOfUnfinishedRun: files that a killed run created (and
// no manifest lists) are removed by the next run that does not produce them.
func TestUnlistedFilesOfUnfinishedRun(t *testing.T) {
	root := t.TempDir()
	d, unlock, _ := locked(t, root)
	d.Unchanged("in1")
	d.Write("nodes/w1/a", []byte("a"), 0o644, "test", "w1")
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	unlock()

	// Killed after creating nodes/w2's files, before its manifest.
	d, unlock, _ = locked(t, root)
	d.Unchanged("in2")
	d.Write("nodes/w1/a", []byte("a"), 0o644, "test", "w1")
	d.Write("nodes/w2/b", []byte("b"), 0o644, "test", "w2")
	d.Note("nodes/w2/link", []byte("b"), "test", "w2")
	os.Symlink("b", filepath.Join(root, "nodes/w2/link"))
	unlock()
	// Killed again, before writing anything.
	_, unlock, _ = locked(t, root)
	unlock()

	d, unlock, _ = locked(t, root)
	defer unlock()
	if !d.Unchanged("in1") {
		t.Fatal("the files of the last complete run are intact")
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"nodes/w2/b", "nodes/w2/link"} {
		if _, err := os.Lstat(filepath.Join(root, p)); err == nil {
			t.Errorf("%s of the unfinished run is still there", p)
		}
	}
	if got := d.Changed(); strings.Join(got, " ") != "nodes/w2/b (removed) nodes/w2/link (removed)" {
		t.Errorf("changed %v", got)
	}
	if _, err := os.Stat(filepath.Join(root, "nodes/w1/a")); err != nil {
		t.Error(err)
	}
	data, _ := os.ReadFile(filepath.Join(root, LockFile))
	if rest, ok := strings.CutPrefix(string(data), cleanMark); !ok || statCacheLen([]byte(rest)) != len(rest) {
		t.Errorf("lock file %q after a finished run, want the clean mark and a stat cache", data)
	}
}
