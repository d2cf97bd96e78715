package output

import (
	"crypto/sha256"
	"errors"
	"hash"
	"maps"
	"runtime"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/fileid"
)

// Unchanged is UnchangedParts with the whole directory as one part:
// whether the previous run was made from the same inputs and every
// artifact it listed outside the given prefixes is on disk as listed.
func (d *Dir) Unchanged(inputs string, except ...string) bool {
	return d.UnchangedParts(map[string]string{"": inputs}, except...)[""]
}

// UnchangedParts reports which parts of the outputs are as the previous
// run left them. A part is a directory (a node's, say) whose files are
// made from inputs of their own, or "" for every file under no other part;
// parts gives each one's digest of those inputs, computed by the caller. A
// part is unchanged when the previous run's digest of it is the same (and
// not "") and every artifact that run listed in it, outside the given
// prefixes, is on disk as listed: the same type, mode, size and sha256,
// reached without a symlink. The artifacts of the unchanged parts are
// taken over into this run's manifest and the caller may skip producing
// them. Any difference in a part (a file edited, even to the same size, or
// chmodded, or left half-done by a run killed before its manifest) sends
// the caller down the full path for that part, which rewrites only what
// differs.
//
// The manifest is written last, after every file it lists, and every file
// is compared with it, so nothing a crash or an edit leaves can pass. A
// file whose stat is the one the stat cache recorded with the manifest's
// sha256 is known to hold those bytes and is not read (statcache.go); any
// other is read and hashed (sha256 runs at 1-2 GB/s; 3 controllers and
// 100 workers are ~19 MB in ~3,000 files), spread over GOMAXPROCS. Verify
// starts it early.
func (d *Dir) UnchangedParts(parts map[string]string, except ...string) map[string]bool {
	d.Verify(except...)
	d.mu.Lock()
	d.parts = parts
	d.mu.Unlock()
	v := d.verify
	prev := d.previous().Parts
	for p, off := range v.off {
		if in := parts[p]; in == "" || prev[p] != in {
			off.Store(true) // stop reading it: the caller writes it now
		}
	}
	<-v.done
	same := map[string]bool{}
	for p, off := range v.off {
		if !off.Load() {
			same[p] = true
		}
	}
	var take []seen
	for _, s := range v.seen {
		if same[v.part[s.at]] {
			take = append(take, s)
		}
	}
	d.mu.Lock()
	d.artifacts = grown(d.artifacts, len(take))
	d.seen = grown(d.seen, len(take))
	for _, s := range take {
		d.artifacts[s.path] = v.take[s.at]
		d.seen[s.path] = s.statEntry
	}
	d.mu.Unlock()
	return same
}

// grown returns m, or a copy of it with room for n more entries.
func grown[V any](m map[string]V, n int) map[string]V {
	if n < len(m) {
		return m
	}
	g := make(map[string]V, len(m)+n)
	maps.Copy(g, m)
	return g
}

// verification compares the previous run's artifacts with the disk.
type verification struct {
	take []Artifact // the artifacts compared
	part []string   // the part of each (partOf)
	// off is set for a part once one of its artifacts differs, or its
	// comparison is called off: one flag for every part of the previous
	// manifest, and for "".
	off  map[string]*atomic.Bool
	seen []seen       // the artifacts found as listed
	read atomic.Int64 // files read to compare them: the stat cache did not know them
	done chan struct{}
}

// seen is a file as a run wrote or verified it: arts[at] of a comparison.
type seen struct {
	path string
	at   int
	statEntry
}

// Verify starts comparing, in the background, every artifact the previous
// run listed outside the given prefixes with the disk, for UnchangedParts.
// The prefixes must not be written meanwhile; nothing else may be until
// UnchangedParts returns. Calling it early lets the reading overlap the
// caller's work; a second call does nothing.
func (d *Dir) Verify(except ...string) {
	d.verifyOnce.Do(func() {
		old := d.previous()
		v := &verification{off: map[string]*atomic.Bool{"": {}}, done: make(chan struct{})}
		d.verify = v
		for p := range old.Parts {
			v.off[p] = new(atomic.Bool)
		}
		for p, off := range v.off {
			off.Store(old.Parts[p] == "") // made from no known inputs: never unchanged
		}
		for _, a := range old.Artifacts {
			if hasPrefix(a.Path, except) {
				continue
			}
			p := partOf(a.Path, old.Parts)
			if CheckRel(a.Path) != nil {
				v.off[p].Store(true)
				continue
			}
			v.take = append(v.take, a)
			v.part = append(v.part, p)
		}
		go func() {
			v.seen = d.compare(v.take, func(i int) *atomic.Bool { return v.off[v.part[i]] }, &v.read)
			close(v.done)
		}()
	})
}

// partOf is the part of the artifact at rel: the deepest directory above
// it that parts names, else "".
func partOf(rel string, parts map[string]string) string {
	part := ""
	for i := range len(rel) {
		if rel[i] == '/' {
			if _, ok := parts[rel[:i]]; ok {
				part = rel[:i]
			}
		}
	}
	return part
}

// compare compares arts with the disk on GOMAXPROCS goroutines and
// returns those it found as listed. With off, an artifact whose flag
// off(i) is set is skipped, and one that differs sets it (which skips
// the rest of its part); without, every artifact is compared. read counts
// the files it had to read.
func (d *Dir) compare(arts []Artifact, off func(i int) *atomic.Bool, read *atomic.Int64) []seen {
	next := make(chan int)
	found := make(chan []seen)
	workers := runtime.GOMAXPROCS(0) // read once: the runtime may change it meanwhile
	for range workers {
		go func() {
			c := verifier{d: d, h: sha256.New(), buf: make([]byte, 256<<10), dirs: map[string]bool{}, read: read}
			var out []seen
			for start := range next {
				for i := start; i < min(start+64, len(arts)); i++ {
					var flag *atomic.Bool
					if off != nil {
						flag = off(i)
						if flag.Load() {
							continue
						}
					}
					if e, ok := c.file(arts[i]); ok {
						out = append(out, seen{arts[i].Path, i, e})
					} else if flag != nil {
						flag.Store(true)
					}
				}
			}
			found <- out
		}()
	}
	go func() {
		for i := 0; i < len(arts); i += 64 {
			next <- i
		}
		close(next)
	}()
	var all []seen
	for range workers {
		all = append(all, <-found...)
	}
	return all
}

// verifier compares files with their manifest entries; one per goroutine.
type verifier struct {
	d    *Dir
	h    hash.Hash
	buf  []byte
	dirs map[string]bool // directories found to be directories, not symlinks
	read *atomic.Int64
}

// file reports whether artifact a is on disk as listed, and what the file
// is: one fstatat when the stat cache knows it (and one per directory on
// its path, once), otherwise four system calls for a file (openat2,
// fstat, read, close), two for a symlink (fstatat, readlinkat).
func (v *verifier) file(a Artifact) (statEntry, bool) {
	if e, ok := v.d.cache.trusted(a); ok {
		if st, ok := v.lstat(a.Path); ok && fileid.Of(&st) == e.st {
			return e, true
		}
	}
	v.read.Add(1)
	if a.Mode == ModeSymlink {
		return v.link(a)
	}
	fd, err := v.d.openFile(a.Path, unix.O_RDONLY|unix.O_NONBLOCK)
	if errors.Is(err, unix.ELOOP) && a.Mode == "" {
		return v.link(a) // a manifest from before modes were recorded
	}
	if err != nil {
		return statEntry{}, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size != a.Size {
		return statEntry{}, false
	}
	if a.Mode != "" && rawMode(st.Mode) != a.Mode {
		return statEntry{}, false
	}
	// Read the size fstat gave, no more: the size is compared already, and
	// most files take one read(2).
	v.h.Reset()
	for left := st.Size; left > 0; {
		n, err := unix.Read(fd, v.buf[:min(left, int64(len(v.buf)))])
		if err == unix.EINTR {
			continue
		}
		if err != nil || n == 0 {
			return statEntry{}, false
		}
		v.h.Write(v.buf[:n])
		left -= int64(n)
	}
	return v.matches(a, &st, v.h.Sum(v.buf[:0]))
}

// matches returns the entry of a file with stat st and sha256 sum, and
// whether sum is a's.
func (v *verifier) matches(a Artifact, st *unix.Stat_t, sum []byte) (statEntry, bool) {
	want, ok := sumOf(a)
	if !ok || string(sum) != string(want[:]) {
		return statEntry{}, false
	}
	return statEntry{sum: want, st: fileid.Of(st)}, true
}

// link reports whether a is a symlink whose target has a's sha256: its
// stat (lstat), then its target.
func (v *verifier) link(a Artifact) (statEntry, bool) {
	st, ok := v.lstat(a.Path)
	if !ok || st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return statEntry{}, false
	}
	n, err := unix.Readlinkat(v.d.fd, a.Path, v.buf)
	runtime.KeepAlive(v.d)
	if err != nil || n == len(v.buf) {
		return statEntry{}, false
	}
	sum := sha256.Sum256(v.buf[:n])
	return v.matches(a, &st, sum[:])
}

// lstat stats rel, not following a symlink at rel or on the way to it:
// every directory on the way is checked to be one (once per verifier).
func (v *verifier) lstat(rel string) (unix.Stat_t, bool) {
	defer runtime.KeepAlive(v.d) // d.fd is closed by a cleanup once d is unreachable
	var st unix.Stat_t
	dir, _ := split(rel)
	if !v.isDir(dir) {
		return st, false
	}
	return st, unix.Fstatat(v.d.fd, rel, &st, unix.AT_SYMLINK_NOFOLLOW) == nil
}

// isDir reports whether rel and every directory above it are directories.
func (v *verifier) isDir(rel string) bool {
	if rel == "" || v.dirs[rel] {
		return true
	}
	if parent, _ := split(rel); !v.isDir(parent) {
		return false
	}
	var st unix.Stat_t
	if unix.Fstatat(v.d.fd, rel, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Mode&unix.S_IFMT != unix.S_IFDIR {
		return false
	}
	v.dirs[rel] = true
	return true
}

// know adds to this run's stat cache every artifact of list that the run
// neither wrote nor verified (a symlink or file the caller wrote itself
// after Note), if it is on disk as listed.
func (d *Dir) know(list []Artifact) {
	var unknown []Artifact
	for _, a := range list {
		if _, ok := d.seen[a.Path]; !ok {
			unknown = append(unknown, a)
		}
	}
	if len(unknown) == 0 {
		return
	}
	for _, s := range d.compare(unknown, nil, new(atomic.Int64)) {
		d.seen[s.path] = s.statEntry
	}
}
