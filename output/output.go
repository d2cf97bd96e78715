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
	"os"
	"runtime"
	"sort"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
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
	// Inputs is the digest of everything the outputs were made from; see Unchanged.
	Inputs    string     `json:"inputs,omitempty"`
	Artifacts []Artifact `json:"artifacts"`
}

// ManifestFile is the name of the manifest inside the cluster directory.
const ManifestFile = "manifest.json"

// Dir is a cluster's output directory for one run.
type Dir struct {
	Root string
	fd   int // the root, O_PATH: every path below it is opened from here (fs.go)

	mu        sync.Mutex
	artifacts map[string]Artifact
	changed   []string
	inputs    string
	err       error // the first bad path given to Note, returned by Finish
	run       *run  // set by Lock

	verifyOnce sync.Once
	verify     *verification // started by Verify

	prevOnce sync.Once
	prev     manifest        // the previous run's manifest
	prevSet  map[string]bool // its paths
}

// Open prepares root for writing. The root itself may be a symlink; below
// it, none is followed.
func Open(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	fd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: root, Err: err}
	}
	d := &Dir{Root: root, fd: fd, artifacts: map[string]Artifact{}}
	runtime.AddCleanup(d, func(fd int) { unix.Close(fd) }, fd)
	return d, nil
}

// ReadFile reads a regular file relative to the root.
func (d *Dir) ReadFile(rel string) ([]byte, error) {
	var data []byte
	err := d.at(rel, false, func(dir int, name string) (err error) {
		data, _, err = readAt(dir, name, d.path(rel))
		return err
	})
	return data, err
}

// Mode returns the type and permission bits of rel, not following a symlink.
func (d *Dir) Mode(rel string) (fs.FileMode, error) {
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
	d.note(rel, data, modeName(perm), kind, node)
	var changed bool
	var jerr error
	err := d.at(rel, true, func(dir int, name string) (err error) {
		changed, err = writeAt(dir, name, data, perm, d.path(rel), func() { jerr = d.journal(rel) })
		return err
	})
	if changed {
		d.mu.Lock()
		d.changed = append(d.changed, rel)
		d.mu.Unlock()
	}
	return errors.Join(jerr, err)
}

// Note records in the manifest a symlink (data is its target) or file that
// the caller writes itself. Call it before creating a new one: a run killed
// in between leaves a file that the next run knows to remove.
func (d *Dir) Note(rel string, data []byte, kind, node string) {
	if err := CheckRel(rel); err != nil {
		d.fail(err)
		return
	}
	d.note(rel, data, "", kind, node)
	if err := d.journal(rel); err != nil {
		d.fail(err)
	}
}

func (d *Dir) note(rel string, data []byte, mode, kind, node string) {
	sum := sha256.Sum256(data)
	d.mu.Lock()
	d.artifacts[rel] = Artifact{Path: rel, Node: node, Kind: kind, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data)), Mode: mode}
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
		if data, err := d.ReadFile(ManifestFile); err == nil {
			if json.Unmarshal(data, &d.prev) != nil {
				d.prev = manifest{}
			}
		}
		d.prevSet = make(map[string]bool, len(d.prev.Artifacts))
		for _, a := range d.prev.Artifacts {
			d.prevSet[a.Path] = true
		}
	})
	return d.prev
}

// Finish removes the files that the previous run's manifest listed, or that
// an unfinished run may have created (see Lock), and this run did not
// produce (outside keep, the state directories), flushes the file system,
// and writes manifest.json last, so a manifest always describes complete
// files. A directory of ours that is a symlink stops the removal
// (SymlinkError): nothing is removed through it.
func (d *Dir) Finish(keep ...string) error {
	if d.err != nil {
		return d.err
	}
	old := d.previous()
	var gone []string
	for _, a := range old.Artifacts {
		gone = append(gone, a.Path)
	}
	if d.run != nil {
		gone = append(gone, d.run.pending...)
	}
	sort.Strings(gone)
	for i, p := range gone {
		if _, ok := d.artifacts[p]; ok || (i > 0 && gone[i-1] == p) || hasPrefix(p, keep) || CheckRel(p) != nil {
			continue
		}
		removed, err := d.remove(p)
		if err != nil {
			return err
		}
		if removed {
			d.changed = append(d.changed, p+" (removed)")
		}
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
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	if len(d.changed) > 0 {
		syncFS(d.fd)
	}
	data, err := json.MarshalIndent(manifest{Inputs: d.inputs, Artifacts: list}, "", "  ")
	if err != nil {
		return err
	}
	if err := d.at(ManifestFile, false, func(dir int, name string) error {
		_, err := writeAt(dir, name, append(data, '\n'), 0o644, d.path(ManifestFile), nil)
		return err
	}); err != nil {
		return err
	}
	return d.finished()
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

// syncFS flushes the file system holding the directory fd once per run,
// instead of one fsync per file: renames already protect against an
// interrupted process.
func syncFS(fd int) {
	if f, err := unix.Openat(fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err == nil {
		_ = unix.Syncfs(f)
		unix.Close(f)
	}
}
