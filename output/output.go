// Package output writes a run's files into the output directory: atomically
// (temp file + rename), only when the bytes or mode changed, under a lock, and
// records every artifact in manifest.json.
package output

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// Artifact is one line of manifest.json.
type Artifact struct {
	Path   string `json:"path"`
	Node   string `json:"node,omitempty"`
	Kind   string `json:"kind"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

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

	mu        sync.Mutex
	artifacts map[string]Artifact
	changed   []string
	inputs    string
	prev      *manifest // the previous run's manifest, read once
}

// Open prepares root for writing.
func Open(root string) (*Dir, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return &Dir{Root: root, artifacts: map[string]Artifact{}}, nil
}

// Lock takes an exclusive lock on the directory for the life of the process
// or until the returned function is called. A second run waits for the first
// and says so on wait (a message callback), instead of interleaving writes.
func Lock(root string, wait func(string)) (func(), error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(root, ".hardway.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if wait != nil {
			wait(fmt.Sprintf("another hardway run holds %s; waiting for it to finish", path))
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
	}
	return func() {
		syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

// ReadFile reads a file relative to the root.
func (d *Dir) ReadFile(rel string) ([]byte, error) {
	return os.ReadFile(filepath.Join(d.Root, filepath.FromSlash(rel)))
}

// Write stores data at rel with perm unless the file already holds exactly
// that, and records it in the manifest with kind and node.
func (d *Dir) Write(rel string, data []byte, perm fs.FileMode, kind, node string) error {
	d.Note(rel, data, kind, node)
	changed, err := WriteFileAtomic(filepath.Join(d.Root, filepath.FromSlash(rel)), data, perm)
	if changed {
		d.mu.Lock()
		d.changed = append(d.changed, rel)
		d.mu.Unlock()
	}
	return err
}

// Note records in the manifest a file that is already on disk with data
// (written earlier in the run, or kept from a previous run).
func (d *Dir) Note(rel string, data []byte, kind, node string) {
	sum := sha256.Sum256(data)
	d.mu.Lock()
	d.artifacts[rel] = Artifact{Path: rel, Node: node, Kind: kind, SHA256: hex.EncodeToString(sum[:]), Size: int64(len(data))}
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

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers and interrupted runs see either the old
// or the new content. It does nothing when the file already has these bytes
// and this mode, and reports whether it wrote.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (bool, error) {
	if st, err := os.Lstat(path); err == nil && st.Mode().IsRegular() && st.Mode().Perm() == perm.Perm() && st.Size() == int64(len(data)) {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, data) {
			return false, nil
		}
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			os.Remove(tmp)
		}
	}()
	// Set the mode before any byte is written, so a key is never readable by others.
	if err := f.Chmod(perm.Perm()); err != nil {
		f.Close()
		return false, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	if err := os.Rename(tmp, path); err != nil {
		return false, err
	}
	ok = true
	return true, nil
}

// Unchanged reports whether the previous run was made from the same inputs
// (a digest the caller computes) and every artifact it listed outside the
// given prefixes is still on disk with its size. If so, those artifacts are
// taken over into this run's manifest and the caller may skip producing them;
// a deleted or resized file sends the caller down the full path, which
// rewrites only what differs.
func (d *Dir) Unchanged(inputs string, except ...string) bool {
	d.mu.Lock()
	d.inputs = inputs
	d.mu.Unlock()
	old, err := d.readManifest()
	if err != nil || old.Inputs == "" || old.Inputs != inputs {
		return false
	}
	var take []Artifact
	for _, a := range old.Artifacts {
		if hasPrefix(a.Path, except) {
			continue
		}
		fi, err := os.Lstat(filepath.Join(d.Root, filepath.FromSlash(a.Path)))
		if err != nil || fi.Size() != a.Size {
			return false
		}
		take = append(take, a)
	}
	d.mu.Lock()
	for _, a := range take {
		d.artifacts[a.Path] = a
	}
	d.mu.Unlock()
	return true
}

func (d *Dir) readManifest() (manifest, error) {
	if d.prev != nil {
		return *d.prev, nil
	}
	var m manifest
	data, err := d.ReadFile(ManifestFile)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return manifest{}, err
	}
	d.prev = &m
	return m, nil
}

// Finish removes files that the previous run's manifest listed and this run
// did not produce (outside keep, the state directories), flushes the file
// system, and writes manifest.json last, so a manifest always describes
// complete files.
func (d *Dir) Finish(keep ...string) error {
	old, _ := d.readManifest()
	d.mu.Lock()
	list := make([]Artifact, 0, len(d.artifacts))
	for _, a := range d.artifacts {
		list = append(list, a)
	}
	d.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].Path < list[j].Path })
	for _, a := range old.Artifacts {
		if _, ok := d.artifacts[a.Path]; ok || hasPrefix(a.Path, keep) || !filepath.IsLocal(a.Path) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.Root, filepath.FromSlash(a.Path))); err != nil {
			return err
		}
		d.changed = append(d.changed, a.Path+" (removed)")
	}
	if len(d.changed) > 0 {
		syncFS(d.Root)
	}
	data, err := json.MarshalIndent(manifest{Inputs: d.inputs, Artifacts: list}, "", "  ")
	if err != nil {
		return err
	}
	_, err = WriteFileAtomic(filepath.Join(d.Root, ManifestFile), append(data, '\n'), 0o644)
	return err
}
func hasPrefix(p string, prefixes []string) bool {
	for _, k := range prefixes {
		if p == k || strings.HasPrefix(p, k+"/") {
			return true
		}
	}
	return false
}

// syncFS flushes the file system holding dir once per run, instead of one
// fsync per file: renames already protect against an interrupted process.
func syncFS(dir string) {
	f, err := os.Open(dir)
	if err != nil {
		return
	}
	defer f.Close()
	_ = unix.Syncfs(int(f.Fd()))
}
