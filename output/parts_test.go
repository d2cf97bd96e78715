package output

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// partsRun is one run over parts (name → digest) and files (rel →
// content): it asks UnchangedParts, writes the files of every part it did
// not find unchanged (a file's part is the deepest directory of parts
// above it, else ""), finishes, and returns the unchanged parts, sorted.
// The comparison with the disk is over before UnchangedParts is given the
// digests, as it may be in a run (Verify starts it early).
func partsRun(t *testing.T, root string, parts map[string]string, files map[string]string) []string {
	t.Helper()
	d, err := Open(root)
	if err != nil {
		t.Fatal(err)
	}
	d.Verify()
	<-d.verify.done
	same := d.UnchangedParts(parts)
	for rel, data := range files {
		if same[partOf(rel, parts)] {
			continue
		}
		if err := d.Write(rel, []byte(data), 0o600, "test", ""); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Finish(); err != nil {
		t.Fatal(err)
	}
	return slices.Sorted(maps.Keys(same))
}

// TestUnchangedParts: a part is unchanged only when its digest is the
// previous run's and its own files are intact; a change in one part (its
// digest, or one of its files edited) leaves the others unchanged; and the
// files of a part that is not unchanged are not taken over, so those the
// run no longer writes are removed.
func TestUnchangedParts(t *testing.T) {
	root := t.TempDir()
	parts := map[string]string{"": "all 1", "nodes/a": "a 1", "nodes/b": "b 1"}
	files := map[string]string{
		"proxmox/hosts": "a b\n",
		"nodes/a/x":     "ax", "nodes/a/sub/y": "ay",
		"nodes/b/x": "bx",
	}
	check := func(what string, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("%s: unchanged parts %q, want %q", what, got, want)
		}
	}
	read := func(rel string) string {
		data, _ := os.ReadFile(filepath.Join(root, rel))
		return string(data)
	}

	check("first run", partsRun(t, root, parts, files))
	check("same inputs", partsRun(t, root, parts, files), "", "nodes/a", "nodes/b")

	// A file of a edited to the same size: a alone is written again.
	if err := os.WriteFile(filepath.Join(root, "nodes/a/sub/y"), []byte("AY"), 0o600); err != nil {
		t.Fatal(err)
	}
	check("a's file edited", partsRun(t, root, parts, files), "", "nodes/b")
	if got := read("nodes/a/sub/y"); got != "ay" {
		t.Errorf("nodes/a/sub/y holds %q after the rerun", got)
	}

	// b's digest changes and b no longer has x: x is not taken over, so
	// it goes; a stays unchanged.
	parts["nodes/b"], parts[""] = "b 2", "all 2"
	delete(files, "nodes/b/x")
	files["nodes/b/z"] = "bz"
	check("b's inputs changed", partsRun(t, root, parts, files), "nodes/a")
	if _, err := os.Lstat(filepath.Join(root, "nodes/b/x")); !os.IsNotExist(err) {
		t.Errorf("nodes/b/x is still there: %v", err)
	}
	if got, err := ReadManifest(root); err != nil || len(got) != 4 {
		t.Errorf("manifest: %v, %d artifacts, want 4", err, len(got))
	}

	// b is gone from the parts: its files go with it.
	delete(parts, "nodes/b")
	delete(files, "nodes/b/z")
	check("b removed", partsRun(t, root, parts, files), "", "nodes/a")
	if _, err := os.Lstat(filepath.Join(root, "nodes/b/z")); !os.IsNotExist(err) {
		t.Errorf("nodes/b/z is still there: %v", err)
	}

	// A part whose digest is "" is never unchanged.
	parts["nodes/a"] = ""
	partsRun(t, root, parts, files)
	check("a made from nothing known", partsRun(t, root, parts, files), "")
}
