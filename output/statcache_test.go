package output

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/fileid"
)

// cachedRun is one locked run as generate makes it: the files under pki/
// written every time, the others only when Unchanged says so. It returns
// whether the run took the fast path and how many files it read to decide.
func cachedRun(t *testing.T, root, inputs string, files map[string]string) (unchanged bool, read int64) {
	t.Helper()
	d, unlock, _ := locked(t, root)
	defer unlock()
	d.Verify("pki")
	for rel, data := range files {
		if strings.HasPrefix(rel, "pki/") {
			if err := d.Write(rel, []byte(data), 0o600, "test", ""); err != nil {
				t.Fatal(err)
			}
		}
	}
	unchanged = d.Unchanged(inputs, "pki")
	if !unchanged {
		for rel, data := range files {
			if !strings.HasPrefix(rel, "pki/") {
				if err := d.Write(rel, []byte(data), 0o600, "test", ""); err != nil {
					t.Fatal(err)
				}
			}
		}
		d.Note("nodes/a/link", []byte("conf"), "test", "a")
		os.Remove(filepath.Join(root, "nodes/a/link"))
		if err := os.Symlink("conf", filepath.Join(root, "nodes/a/link")); err != nil {
			t.Fatal(err)
		}
	}
	if err := d.Finish("pki"); err != nil {
		t.Fatal(err)
	}
	return unchanged, d.verify.read.Load()
}

var cacheFiles = map[string]string{
	"nodes/a/conf":       "memory: 16384\n",
	"nodes/a/etc/hosts":  "127.0.0.1 localhost\n",
	"nodes/b/conf":       "memory: 2048\n",
	"pki/ca.key":         "secret",
	"manifests/rbac.yml": "kind: ClusterRole\n",
}

// warm makes a directory whose stat cache knows every file: a first run,
// then a rerun that re-hashes what was racy after it.
func warm(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	if unchanged, _ := cachedRun(t, root, "in1", cacheFiles); unchanged {
		t.Fatal("a first run took the fast path")
	}
	time.Sleep(10 * time.Millisecond) // past the clock tick of the last write
	for range 2 {
		if unchanged, _ := cachedRun(t, root, "in1", cacheFiles); !unchanged {
			t.Fatal("an untouched directory is not unchanged")
		}
	}
	return root
}

// TestStatCacheReadsNothing: once the cache knows the files, a rerun
// decides without reading any, and writes neither the manifest nor the
// cache again.
func TestStatCacheReadsNothing(t *testing.T) {
	root := warm(t)
	before := stats(t, root, ManifestFile, LockFile)
	unchanged, read := cachedRun(t, root, "in1", cacheFiles)
	if !unchanged || read != 0 {
		t.Errorf("rerun: unchanged %v, %d files read; want unchanged, none read", unchanged, read)
	}
	after := stats(t, root, ManifestFile, LockFile)
	if before[ManifestFile] != after[ManifestFile] {
		t.Error("the manifest was written again")
	}
	if before[LockFile].Size != after[LockFile].Size {
		t.Error("the stat cache was written again")
	}
}

func stats(t *testing.T, root string, names ...string) map[string]fileid.ID {
	t.Helper()
	out := map[string]fileid.ID{}
	for _, n := range names {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, n), &st); err != nil {
			t.Fatal(err)
		}
		out[n] = fileid.Of(&st)
	}
	return out
}

// TestStatCacheSeesEveryChange: what a stat shows of each change is
// enough for the cache not to vouch for the file; the rerun takes the
// full path and repairs it.
func TestStatCacheSeesEveryChange(t *testing.T) {
	conf := "nodes/a/conf"
	for _, tc := range []struct {
		name   string
		tamper func(root string) error
	}{
		{"same size, mtime set back", func(root string) error {
			p := filepath.Join(root, conf)
			fi, _ := os.Stat(p)
			if err := os.WriteFile(p, []byte("memory: 32768\n"), 0o600); err != nil {
				return err
			}
			return os.Chtimes(p, fi.ModTime(), fi.ModTime()) // touch -d: ctime is now
		}},
		{"chmod", func(root string) error { return os.Chmod(filepath.Join(root, conf), 0o644) }},
		{"replaced by a rename", func(root string) error {
			p := filepath.Join(root, conf)
			fi, _ := os.Stat(p)
			tmp := filepath.Join(root, "nodes/a/.new")
			if err := os.WriteFile(tmp, []byte("memory: 32768\n"), 0o600); err != nil {
				return err
			}
			os.Chtimes(tmp, fi.ModTime(), fi.ModTime())
			return os.Rename(tmp, p)
		}},
		{"pki file, same size", func(root string) error {
			return os.WriteFile(filepath.Join(root, "pki/ca.key"), []byte("terces"), 0o600)
		}},
		{"symlink retargeted", func(root string) error {
			p := filepath.Join(root, "nodes/a/link")
			os.Remove(p)
			return os.Symlink("fnoc", p)
		}},
		{"directory replaced by a symlink to it", func(root string) error {
			moved := filepath.Join(t.TempDir(), "a")
			if err := os.Rename(filepath.Join(root, "nodes/a"), moved); err != nil {
				return err
			}
			return os.Symlink(moved, filepath.Join(root, "nodes/a"))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := warm(t)
			if err := tc.tamper(root); err != nil {
				t.Fatal(err)
			}
			d, unlock, _ := locked(t, root)
			d.Verify("pki")
			if strings.HasPrefix(tc.name, "pki") {
				// Written every run: Write must see it differs and rewrite it.
				d.Write("pki/ca.key", []byte(cacheFiles["pki/ca.key"]), 0o600, "test", "")
				if got := d.Changed(); len(got) != 1 {
					t.Errorf("changed %v, want pki/ca.key", got)
				}
			} else if d.Unchanged("in1", "pki") {
				t.Error("Unchanged vouched for a changed file")
			}
			unlock()
			if strings.HasPrefix(tc.name, "directory") {
				return // the full path refuses the symlink (TestNoWritesThroughSymlinks)
			}
			cachedRun(t, root, "in1", cacheFiles)
			for rel, want := range cacheFiles {
				p := filepath.Join(root, rel)
				if got, _ := os.ReadFile(p); string(got) != want {
					t.Errorf("%s holds %q after the rerun", rel, got)
				}
				if st, err := os.Lstat(p); err != nil || st.Mode().Perm() != 0o600 {
					t.Errorf("%s: %v %v after the rerun", rel, st.Mode(), err)
				}
			}
			if target, _ := os.Readlink(filepath.Join(root, "nodes/a/link")); target != "conf" {
				t.Errorf("the link points to %q after the rerun", target)
			}
		})
	}
}

// forgeCache rewrites root's stat cache with time t, recording for each
// of paths the stat it has now and the sha256 of content[path].
func forgeCache(t *testing.T, root string, tm int64, content map[string]string) {
	t.Helper()
	lock := filepath.Join(root, LockFile)
	data, _ := os.ReadFile(lock)
	c := decodeStatCache(data[len(cleanMark):])
	if c == nil {
		t.Fatal("no stat cache to forge")
	}
	entries := maps.Clone(c.entries)
	for p, text := range content {
		var st unix.Stat_t
		if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
			t.Fatal(err)
		}
		entries[p] = statEntry{sum: sha256.Sum256([]byte(text)), st: fileid.Of(&st)}
	}
	if err := os.WriteFile(lock, append([]byte(cleanMark), encodeStatCache(tm, c.manifest, entries)...), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestStatCacheRacy is git's racy case: a file changed in the clock tick
// of the stat the cache holds has that stat still. Reproduced by forging
// the cache: it records the changed files' stats with the old contents.
// With a time after those stats, the cache is believed (so the forgery
// works, and the cache is what decides); with a time not after them, the
// entries are racy and the files are read.
func TestStatCacheRacy(t *testing.T) {
	for _, racy := range []bool{false, true} {
		root := warm(t)
		changed := map[string]string{"nodes/a/conf": "memory: 32768\n", "pki/ca.key": "terces"}
		for p, text := range changed {
			if err := os.WriteFile(filepath.Join(root, p), []byte(text), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		// Racy: the cache's time is not after the stat of either file
		// (the earlier ctime: the two writes may fall in different ticks).
		var tm int64
		for p := range changed {
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(root, p), &st); err != nil {
				t.Fatal(err)
			}
			if c := st.Ctim.Nano(); tm == 0 || c < tm {
				tm = c
			}
		}
		if !racy {
			tm += int64(time.Hour)
		}
		forgeCache(t, root, tm, map[string]string{"nodes/a/conf": cacheFiles["nodes/a/conf"], "pki/ca.key": cacheFiles["pki/ca.key"]})

		d, unlock, _ := locked(t, root)
		d.Write("pki/ca.key", []byte(cacheFiles["pki/ca.key"]), 0o600, "test", "")
		unchanged := d.Unchanged("in1", "pki")
		unlock()
		wrote := len(d.Changed()) > 0
		if racy && (unchanged || !wrote) {
			t.Errorf("racy entries: Unchanged %v, pki/ca.key rewritten %v; want the files read and found changed", unchanged, wrote)
		}
		if !racy && (!unchanged || wrote) {
			t.Errorf("a cache with a later time: Unchanged %v, pki/ca.key rewritten %v; want both taken from the cache", unchanged, wrote)
		}
	}
}

// TestStatCacheAfterCrashes: whatever a crash leaves, the next run is
// right: a run killed before its manifest (its files have new stats), or
// after it but before its cache (the cache is the run before's), or in the
// middle of writing the cache (it does not check out and is ignored).
func TestStatCacheAfterCrashes(t *testing.T) {
	other := maps.Clone(cacheFiles)
	other["nodes/a/conf"] = "memory: 32768\n"
	lock := func(root string) string { return filepath.Join(root, LockFile) }

	t.Run("before the manifest", func(t *testing.T) {
		root := warm(t)
		d, unlock, _ := locked(t, root)
		d.Unchanged("in2")
		d.Write("nodes/a/conf", []byte(other["nodes/a/conf"]), 0o600, "test", "a")
		unlock() // killed
		if unchanged, _ := cachedRun(t, root, "in1", cacheFiles); unchanged {
			t.Error("the killed run's file was taken for the manifest's")
		}
		if got, _ := os.ReadFile(filepath.Join(root, "nodes/a/conf")); string(got) != cacheFiles["nodes/a/conf"] {
			t.Errorf("conf holds %q", got)
		}
	})
	t.Run("before the cache", func(t *testing.T) {
		root := warm(t)
		old, _ := os.ReadFile(lock(root))
		cachedRun(t, root, "in2", other)
		os.WriteFile(lock(root), old, 0o644) // the cache of the run before
		if unchanged, _ := cachedRun(t, root, "in2", other); !unchanged {
			t.Error("a finished run's files are not unchanged")
		}
		if unchanged, _ := cachedRun(t, root, "in1", cacheFiles); unchanged {
			t.Error("the first run's cache vouched for the second run's file")
		}
	})
	for _, damage := range []string{"cut short", "a byte changed"} {
		t.Run(damage, func(t *testing.T) {
			root := warm(t)
			data, _ := os.ReadFile(lock(root))
			if damage == "cut short" {
				data = data[:len(data)/2]
			} else {
				data[len(data)/2] ^= 1
			}
			os.WriteFile(lock(root), data, 0o644)
			unchanged, read := cachedRun(t, root, "in1", cacheFiles)
			if !unchanged || read == 0 {
				t.Errorf("unchanged %v, %d files read; want unchanged, every file read", unchanged, read)
			}
			time.Sleep(10 * time.Millisecond)
			cachedRun(t, root, "in1", cacheFiles)
			if unchanged, read := cachedRun(t, root, "in1", cacheFiles); !unchanged || read != 0 {
				t.Errorf("the cache was not written again: unchanged %v, %d files read", unchanged, read)
			}
		})
	}
}

// TestStatCacheCodec: the cache round-trips, leaves out racy entries, and
// a cache cut short or changed decodes to nothing.
func TestStatCacheCodec(t *testing.T) {
	m := manifest{Parts: map[string]string{"": "in", "b": "in b"}, Artifacts: []Artifact{
		{Path: "a", Kind: "k", SHA256: sumHex("A"), Size: 1, Mode: "0600"},
		{Path: "b/c", Node: "n", Kind: "k", SHA256: sumHex("BC"), Size: 2, Mode: ModeSymlink},
	}}
	entries := map[string]statEntry{
		"a":          {sum: sha256.Sum256([]byte("A")), st: fileid.ID{Dev: 1, Ino: 2, Mode: 0o100600, Size: 1, Mtime: 10, Ctime: 11}},
		"b/c":        {sum: sha256.Sum256([]byte("BC")), st: fileid.ID{Dev: 1, Ino: 3, Mode: 0o120777, Size: 2, Mtime: 10, Ctime: 20}},
		ManifestFile: {sum: sha256.Sum256([]byte("M")), st: fileid.ID{Dev: 1, Ino: 4, Mode: 0o100644, Size: 9, Mtime: 12, Ctime: 12}},
	}
	b := encodeStatCache(20, m, entries)
	if statCacheLen(append(b, "journal\n"...)) != len(b) {
		t.Fatal("the cache's length")
	}
	c := decodeStatCache(b)
	if c == nil {
		t.Fatal("does not decode")
	}
	if !maps.Equal(c.manifest.Parts, m.Parts) || len(c.manifest.Artifacts) != 2 || c.manifest.Artifacts[0] != m.Artifacts[0] || c.manifest.Artifacts[1] != m.Artifacts[1] {
		t.Errorf("manifest %+v", c.manifest)
	}
	want := maps.Clone(entries)
	delete(want, "b/c") // ctime 20 is not before the time 20: racy
	if !maps.Equal(c.entries, want) {
		t.Errorf("entries %v, want %v", c.entries, want)
	}
	for i := range b {
		if decodeStatCache(b[:i]) != nil {
			t.Fatalf("cut to %d bytes, it decodes", i)
		}
	}
	for i := range b {
		b[i] ^= 0x20
		if decodeStatCache(b) != nil {
			t.Fatalf("byte %d changed, it decodes", i)
		}
		b[i] ^= 0x20
	}
}

func sumHex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestWrittenTwiceInARun: a file this run wrote is known to it (the PKI's
// files are written by pki.Ensure and again with their kind and node):
// the same bytes again change nothing; a change made since, by anyone
// else, shows in the stat and is written over.
func TestWrittenTwiceInARun(t *testing.T) {
	root := t.TempDir()
	d, unlock, _ := locked(t, root)
	defer unlock()
	rel, data := "pki/ca.key", []byte("secret")
	for range 2 {
		if err := d.Write(rel, data, 0o600, "test", ""); err != nil {
			t.Fatal(err)
		}
	}
	if got := d.Changed(); len(got) != 1 {
		t.Fatalf("written twice with the same bytes: changed %v, want it once", got)
	}
	time.Sleep(10 * time.Millisecond) // past the clock tick of the write
	if err := os.WriteFile(filepath.Join(root, rel), []byte("terces"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := d.Write(rel, data, 0o600, "test", ""); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(filepath.Join(root, rel)); err != nil || string(got) != string(data) {
		t.Errorf("after a change of the same size: %q, %v; want %q written again", got, err, data)
	}
	if got := d.Changed(); len(got) != 2 {
		t.Errorf("changed %v, want the file twice (written, then written over)", got)
	}
}
