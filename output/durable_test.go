package output

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDurable: a run fsyncs the files it wrote and the directories that
// name what it created, replaced or removed, up to the root and the parent
// of a root it created, however many they are (no syncfs of the whole file
// system); a run that changes nothing fsyncs nothing.
func TestDurable(t *testing.T) {
	var mu sync.Mutex
	var synced []string
	defer func(f func(int) error) { fsync = f }(fsync)
	fsync = func(fd int) error {
		p, _ := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
		mu.Lock()
		synced = append(synced, p)
		mu.Unlock()
		return unix.Fsync(fd)
	}
	parent := t.TempDir()
	root := filepath.Join(parent, "out", "c")
	run := func(inputs string, files map[string]string, link bool) []string {
		t.Helper()
		synced = nil
		d, unlock, _ := locked(t, root)
		defer unlock()
		if !d.Unchanged(inputs) {
			for rel, data := range files {
				if err := d.Write(rel, []byte(data), 0o600, "test", ""); err != nil {
					t.Fatal(err)
				}
			}
			if link {
				d.Note("nodes/l/link", []byte("x"), "test", "")
				os.MkdirAll(filepath.Join(root, "nodes/l"), 0o755)
				os.Symlink("x", filepath.Join(root, "nodes/l/link"))
			}
		}
		if err := d.Finish(); err != nil {
			t.Fatal(err)
		}
		for i, p := range synced {
			if rel, err := filepath.Rel(root, p); err == nil && !filepath.IsAbs(rel) && rel[0] != '.' {
				synced[i] = rel
			} else if p == root {
				synced[i] = "."
			}
		}
		slices.Sort(synced)
		return synced
	}
	got := run("in1", map[string]string{"nodes/a/b/c": "c", "nodes/x/y": "y"}, true)
	// The root twice: before the manifest (for the directories in it),
	// and after (for the manifest's rename).
	want := []string{filepath.Join(parent, "out"), parent, ".", ".", ManifestFile, "nodes", "nodes/a", "nodes/a/b", "nodes/a/b/c", "nodes/l", "nodes/x", "nodes/x/y"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("first run synced %q, want %q", got, want)
	}
	if got := run("in1", nil, false); len(got) != 0 {
		t.Errorf("a no-op run synced %q", got)
	}
	got = run("in2", map[string]string{"nodes/a/b/c": "C"}, false)
	want = []string{".", ".", ManifestFile, "nodes", "nodes/a", "nodes/a/b", "nodes/a/b/c", "nodes/l", "nodes/x"}
	if !slices.Equal(got, want) {
		t.Errorf("a run that changed c and removed y and link synced %q, want %q", got, want)
	}

	// Many files (more than the 1,024 fsyncs beyond which a run used to
	// make one syncfs instead): each of them.
	if testing.Short() {
		return
	}
	many := map[string]string{}
	want = []string{".", ".", ManifestFile, "nodes", "nodes/a", "nodes/a/b", "nodes/m"}
	for i := range 1100 {
		many["nodes/m/"+strconv.Itoa(i)] = "m"
		want = append(want, "nodes/m/"+strconv.Itoa(i))
	}
	many["nodes/a/b/c"] = "c"
	want = append(want, "nodes/a/b/c")
	slices.Sort(want)
	got = run("in3", many, false)
	if !slices.Equal(got, want) {
		t.Errorf("a run of %d files synced %d paths %q, want %d", len(many), len(got), got, len(want))
	}
}
