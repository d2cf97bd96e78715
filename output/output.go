// Package output writes a run's files into the output directory: atomically
// (temp file + rename), only when the bytes or mode changed, never through a
// symlink, under a lock, and records every artifact in manifest.json.
package output

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/fileid"
)

// Artifact is one line of manifest.json.
type Artifact struct {
	Path   string `json:"path"`
	Node   string `json:"node,omitempty"`
	Kind   string `json:"kind"`
	SHA256 string `json:"sha256"` // of the content; of the target for a symlink
	Size   int64  `json:"size"`
	// Mode is a file's permission bits in octal ("0600"), or "symlink".
	Mode string `json:"mode,omitempty"`
}

// ModeSymlink is the Mode of a symlink in the manifest.
const ModeSymlink = "symlink"

// modeName is perm as manifest.json writes it.
func modeName(perm fs.FileMode) string { return rawMode(uint32(perm.Perm())) }

// rawMode is a stat(2) mode's permission bits as manifest.json writes them,
// setuid, setgid and sticky included: a file of ours never has them.
func rawMode(m uint32) string { return fmt.Sprintf("%04o", m&0o7777) }

// manifest is the content of manifest.json.
type manifest struct {
	// Parts holds, by part (a directory of the outputs, "" for the rest),
	// the digest of everything its files were made from; see UnchangedParts.
	Parts     map[string]string `json:"parts,omitempty"`
	Artifacts []Artifact        `json:"artifacts"`
}

// ManifestFile is the name of the manifest inside the cluster directory.
const ManifestFile = "manifest.json"

// ReadManifest returns the artifacts the manifest of the cluster directory
// dir lists, by path: for readers after a run (tests, tools).
func ReadManifest(dir string) (map[string]Artifact, error) {
	data, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		return nil, err
	}
	var m manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, ManifestFile), err)
	}
	arts := make(map[string]Artifact, len(m.Artifacts))
	for _, a := range m.Artifacts {
		arts[a.Path] = a
	}
	return arts, nil
}

// Dir is a cluster's output directory for one run.
type Dir struct {
	Root string
	fd   int // the root, O_PATH: every path below it is opened from here (fs.go)

	mu        sync.Mutex
	artifacts map[string]Artifact
	changed   []string
	parts     map[string]string // the digests UnchangedParts was given
	err       error             // the first bad path given to Note, returned by Finish
	run       *run              // set by Lock

	verifyOnce sync.Once
	verify     *verification // started by Verify

	prevOnce sync.Once
	prev     manifest        // the previous run's manifest
	prevSet  map[string]bool // its paths (listedBefore)

	cache *statCache           // the previous run's stat cache, read by Lock (by OpenPlan in a plan)
	seen  map[string]statEntry // what this run wrote or verified: the next stat cache

	plan    map[string]planned // a plan's writes (plan.go); nil in a run
	changes []Change           // a plan's differences

	// What Finish makes durable (durable.go).
	dirty   []string // files this run wrote or chmodded
	removed []string // files it removed
	noted   []string // paths its caller wrote itself (Note)
	created []string // directories Open created, absolute
}

// Open prepares root for writing. The root itself may be a symlink; below
// it, none is followed.
func Open(root string) (*Dir, error) {
	var created []string
	for p := filepath.Clean(root); ; p = filepath.Dir(p) {
		if _, err := os.Lstat(p); err == nil || filepath.Dir(p) == p {
			break
		}
		created = append(created, p)
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	return newDir(root, fd, created), nil
}

// newDir returns the Dir of root, open at fd, which it closes once unreachable.
func newDir(root string, fd int, created []string) *Dir {
	d := &Dir{Root: root, fd: fd, artifacts: map[string]Artifact{}, seen: map[string]statEntry{}, created: created}
	runtime.AddCleanup(d, func(fd int) { unix.Close(fd) }, fd)
	return d
}

// ReadFile reads a regular file relative to the root.
func (d *Dir) ReadFile(rel string) ([]byte, error) {
	if p, ok := d.plannedFile(rel); ok {
		return p.data, nil
	}
	// One openat2 that refuses a symlink anywhere on the way; if it fails,
	// the walk below says why (a SymlinkError names the link).
	fd, err := d.openFile(rel, unix.O_RDONLY|unix.O_NONBLOCK)
	switch {
	case err == nil:
		defer unix.Close(fd)
		data, _, err := readFd(fd, d.path(rel))
		return data, err
	case errors.Is(err, unix.ENOENT):
		return nil, &fs.PathError{Op: "open", Path: d.path(rel), Err: err}
	}
	var data []byte
	err = d.at(rel, false, func(dir int, name string) (err error) {
		data, _, err = readAt(dir, name, d.path(rel))
		return err
	})
	return data, err
}

// Mode returns the type and permission bits of rel, not following a symlink.
func (d *Dir) Mode(rel string) (fs.FileMode, error) {
	if p, ok := d.plannedFile(rel); ok {
		return p.perm, nil
	}
	var st unix.Stat_t
	err := d.at(rel, false, func(dir int, name string) error {
		if err := unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return &fs.PathError{Op: "stat", Path: d.path(rel), Err: err}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	m := fs.FileMode(st.Mode & 0o777)
	switch st.Mode & unix.S_IFMT {
	case unix.S_IFREG:
	case unix.S_IFDIR:
		m |= fs.ModeDir
	case unix.S_IFLNK:
		m |= fs.ModeSymlink
	default:
		m |= fs.ModeIrregular
	}
	return m, nil
}

// Write stores data at rel with perm unless the file already holds exactly
// that, and records it in the manifest with kind and node.
func (d *Dir) Write(rel string, data []byte, perm fs.FileMode, kind, node string) error {
	if err := CheckRel(rel); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	d.note(rel, sum, len(data), modeName(perm), kind, node)
	if d.plan != nil {
		return d.planWrite(rel, data, sum, perm)
	}
	var changed bool
	var st *unix.Stat_t
	var jerr error
	err := d.at(rel, true, func(dir int, name string) (err error) {
		changed, st, err = writeAt(dir, name, data, perm, d.path(rel), &hooks{
			before: func() { jerr = d.journal(rel) },
			known:  func(st *unix.Stat_t) bool { return d.knows(rel, sum, perm, st) },
		})
		return err
	})
	d.mu.Lock()
	if changed {
		d.changed = append(d.changed, rel)
		d.dirty = append(d.dirty, rel)
	}
	if st != nil {
		d.seen[rel] = statEntry{sum: sum, st: fileid.Of(st)}
	}
	d.mu.Unlock()
	return errors.Join(jerr, err)
}

// knows reports whether the stat cache, or this run's own write or
// verification of rel (the PKI's files are written by pki.Ensure, then
// again with their kind and node: a first run read each back), knows that
// the regular file at rel, whose stat is st, holds content with sha256 sum
// and mode perm. Either is trusted as the next run trusts the cache.
func (d *Dir) knows(rel string, sum [32]byte, perm fs.FileMode, st *unix.Stat_t) bool {
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&0o7777 != uint32(perm.Perm()) {
		return false
	}
	want := statEntry{sum: sum, st: fileid.Of(st)}
	if e, ok := d.cache.entry(rel); ok && e == want {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[rel] == want
}

// Note records in the manifest a symlink (data is its target) or file that
// the caller writes itself. Call it before creating a new one: a run killed
// in between leaves a file that the next run knows to remove.
func (d *Dir) Note(rel string, data []byte, kind, node string) {
	if err := CheckRel(rel); err != nil {
		d.fail(err)
		return
	}
	d.note(rel, sha256.Sum256(data), len(data), "", kind, node)
	d.mu.Lock()
	d.noted = append(d.noted, rel)
	d.mu.Unlock()
	if err := d.journal(rel); err != nil {
		d.fail(err)
	}
}

func (d *Dir) note(rel string, sum [32]byte, size int, mode, kind, node string) {
	d.mu.Lock()
	d.artifacts[rel] = Artifact{Path: rel, Node: node, Kind: kind, SHA256: hex.EncodeToString(sum[:]), Size: int64(size), Mode: mode}
	d.mu.Unlock()
}

func (d *Dir) fail(err error) {
	d.mu.Lock()
	if d.err == nil {
		d.err = err
	}
	d.mu.Unlock()
}

// Changed lists the files this run wrote, sorted.
func (d *Dir) Changed() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := append([]string(nil), d.changed...)
	sort.Strings(out)
	return out
}

// Sub returns a view of the directory rooted at prefix whose writes carry kind.
// It satisfies pki.Store.
func (d *Dir) Sub(prefix, kind string) *Sub { return &Sub{d: d, prefix: prefix, kind: kind} }

// Sub is a prefix view of a Dir.
type Sub struct {
	d      *Dir
	prefix string
	kind   string
}

// ReadFile reads prefix/name.
func (s *Sub) ReadFile(name string) ([]byte, error) { return s.d.ReadFile(s.prefix + "/" + name) }

// WriteFile writes prefix/name.
func (s *Sub) WriteFile(name string, data []byte, perm fs.FileMode) error {
	return s.d.Write(s.prefix+"/"+name, data, perm, s.kind, "")
}

// Mode returns the mode of prefix/name.
func (s *Sub) Mode(name string) (fs.FileMode, error) { return s.d.Mode(s.prefix + "/" + name) }

// previous returns the previous run's manifest, read once; a missing or
// unreadable one is empty.
func (d *Dir) previous() manifest {
	d.prevOnce.Do(func() {
		var st unix.Stat_t
		if e, ok := d.cache.entry(ManifestFile); ok && unix.Fstatat(d.fd, ManifestFile, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && fileid.Of(&st) == e.st {
			// The file the last run wrote: the stat cache holds what it says.
			d.prev = d.cache.manifest
		} else {
			_ = d.at(ManifestFile, false, func(dir int, name string) error {
				data, _, err := readAt(dir, name, d.path(ManifestFile))
				if err != nil || json.Unmarshal(data, &d.prev) != nil {
					d.prev = manifest{}
				}
				return nil
			})
		}
	})
	return d.prev
}

// HadKind reports whether the previous run's manifest lists an artifact
// of kind.
func (d *Dir) HadKind(kind string) bool {
	return slices.ContainsFunc(d.previous().Artifacts, func(a Artifact) bool { return a.Kind == kind })
}

// listedBefore reports whether the previous run's manifest lists rel; d.mu
// is held. The set is made on the first call: a run that writes nothing
// new never needs it.
func (d *Dir) listedBefore(rel string) bool {
	if d.prevSet == nil {
		prev := d.previous().Artifacts
		d.prevSet = make(map[string]bool, len(prev))
		for _, a := range prev {
			d.prevSet[a.Path] = true
		}
	}
	return d.prevSet[rel]
}

// Finish removes the files that the previous run's manifest listed, or
// that an unfinished run may have created (see Lock), and this run did not
// produce (outside keep, the state directories; inside them too when the
// manifest gave the file a node: a node's state, such as its certificate,
// that the run no longer produces because the node or its role is gone),
// makes what the run changed durable, and writes manifest.json last, so a
// manifest always describes complete files; then the stat cache for the
// next run. A directory of ours that is a symlink stops the removal
// (SymlinkError): nothing is removed through it. In a plan, Finish only
// records what it would remove.
func (d *Dir) Finish(keep ...string) error {
	if d.err != nil {
		return d.err
	}
	old := d.previous()
	var gone []string
	ofNode := map[string]bool{}
	for _, a := range old.Artifacts {
		gone = append(gone, a.Path)
		ofNode[a.Path] = a.Node != ""
	}
	if d.run != nil {
		gone = append(gone, d.run.pending...)
	}
	sort.Strings(gone)
	for i, p := range gone {
		if _, ok := d.artifacts[p]; ok || (i > 0 && gone[i-1] == p) || hasPrefix(p, keep) && !ofNode[p] || CheckRel(p) != nil {
			continue
		}
		if d.plan != nil {
			if _, err := d.Mode(p); err == nil {
				d.changes = append(d.changes, Change{Path: p, What: Removed})
			}
			continue
		}
		removed, err := d.remove(p)
		if err != nil {
			return err
		}
		if removed {
			d.changed = append(d.changed, p+" (removed)")
			d.removed = append(d.removed, p)
		}
	}
	if d.plan != nil {
		return nil
	}
	list := make([]Artifact, 0, len(d.artifacts))
	for _, a := range d.artifacts {
		if a.Mode == "" {
			if m, err := d.Mode(a.Path); err == nil && m&fs.ModeSymlink != 0 {
				a.Mode = ModeSymlink
			} else if err == nil && m.IsRegular() {
				a.Mode = modeName(m)
			}
		}
		list = append(list, a)
	}
	slices.SortFunc(list, func(a, b Artifact) int { return strings.Compare(a.Path, b.Path) })
	if err := d.durable(); err != nil {
		return err
	}
	m := manifest{Parts: d.parts, Artifacts: list}
	if err := d.writeManifest(m); err != nil {
		return err
	}
	if d.run == nil {
		return nil
	}
	d.know(list)
	return d.finished(d.nextCache(m))
}

// writeManifest writes m as manifest.json, durably, unless the file holds
// it already. When the stat cache knows the file to be the one the last
// run wrote and m is the manifest the cache was written with, m's bytes
// are the file's and are not even encoded.
func (d *Dir) writeManifest(m manifest) error {
	e, ok := d.cache.entry(ManifestFile)
	if ok && maps.Equal(d.cache.manifest.Parts, m.Parts) && slices.Equal(d.cache.manifest.Artifacts, m.Artifacts) {
		var st unix.Stat_t
		if unix.Fstatat(d.fd, ManifestFile, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && fileid.Of(&st) == e.st {
			d.seen[ManifestFile] = e
			return nil
		}
	}
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	sum := sha256.Sum256(data)
	var changed bool
	var st *unix.Stat_t
	err = d.at(ManifestFile, false, func(dir int, name string) (err error) {
		changed, st, err = writeAt(dir, name, data, 0o644, d.path(ManifestFile), &hooks{
			known: func(st *unix.Stat_t) bool { return d.knows(ManifestFile, sum, 0o644, st) },
		})
		return err
	})
	if err != nil {
		return err
	}
	if st != nil {
		d.seen[ManifestFile] = statEntry{sum: sum, st: fileid.Of(st)}
	}
	if changed {
		return d.sync([]string{ManifestFile}, []string{""})
	}
	return nil
}

// nextCache returns the encoder of the stat cache for the next run: of
// manifest m, with what this run wrote or verified of m's files and of
// manifest.json. It returns nil when that is the cache the run started
// with.
func (d *Dir) nextCache(m manifest) func(t int64) []byte {
	next := make(map[string]statEntry, len(m.Artifacts)+1)
	for _, a := range m.Artifacts {
		if e, ok := d.seen[a.Path]; ok {
			if sum, valid := sumOf(a); valid && e.sum == sum {
				next[a.Path] = e
			}
		}
	}
	if e, ok := d.seen[ManifestFile]; ok {
		next[ManifestFile] = e
	}
	if d.cache != nil && maps.Equal(next, d.cache.entries) {
		return nil
	}
	return func(t int64) []byte { return encodeStatCache(t, m, next) }
}

// remove removes file or symlink rel, not following a symlink on the way.
// A directory there now is left alone: it is no longer one of our files.
func (d *Dir) remove(rel string) (bool, error) {
	removed := false
	err := d.at(rel, false, func(dir int, name string) error {
		err := unix.Unlinkat(dir, name, 0)
		switch {
		case err == nil:
			removed = true
		case errors.Is(err, unix.ENOENT), errors.Is(err, unix.EISDIR):
		default:
			return &fs.PathError{Op: "remove", Path: d.path(rel), Err: err}
		}
		return nil
	})
	if errors.Is(err, fs.ErrNotExist) {
		err = nil
	}
	return removed, err
}

func hasPrefix(p string, prefixes []string) bool {
	for _, k := range prefixes {
		if p == k || strings.HasPrefix(p, k+"/") {
			return true
		}
	}
	return false
}
