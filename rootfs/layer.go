package rootfs

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/fileid"
	"github.com/hardway-dev/hardway/tree"
)

// Entry is one file system object a layer puts into the root file system.
type Entry struct {
	Path     string      // absolute and clean, e.g. /usr/local/bin/etcd
	Mode     fs.FileMode // type (fs.ModeDir, fs.ModeSymlink or none), permissions, setuid/setgid/sticky
	UID, GID int
	Target   string // symlink target
	Size     int64  // regular file size
	// Open returns a regular file's content, exactly Size bytes; nil is an
	// empty file. It is called while the merged stream is written, so that no
	// layer holds more than its own small files in memory.
	Open func() (io.ReadCloser, error)
	// Implicit marks a parent directory the layer did not declare: where the
	// base has that directory, the base's owner and mode stay; where the base
	// has a symlink there, the layer's paths below follow the link.
	Implicit bool
	// Secret marks private key material (tree.Entry.Secret): Stats.Secrets
	// lists it, so that the artifact holding it is kept from other readers.
	Secret bool
}

// IsDir, IsSymlink and IsFile tell the entry's type.
func (e *Entry) IsDir() bool     { return e.Mode&fs.ModeDir != 0 }
func (e *Entry) IsSymlink() bool { return e.Mode&fs.ModeSymlink != 0 }
func (e *Entry) IsFile() bool    { return e.Mode&fs.ModeType == 0 }

// Layer is a set of entries laid over the base, and base paths it removes.
type Layer struct {
	Name    string // in messages: "sysprep", "binaries", "node etcd1"
	Entries []Entry
	// Remove lists base paths to drop, with their subtrees: clean absolute
	// paths or path.Match patterns such as /etc/ssh/ssh_host_*. It applies to
	// the base only; a layer's own entries are never removed.
	Remove []string
}

// FromTree is the layer of a node's file tree: every entry of t.Entries(),
// the parents that the tree did not add itself marked implicit.
func FromTree(name string, t *tree.Tree) (Layer, error) {
	if err := t.Check(); err != nil {
		return Layer{}, err
	}
	l := Layer{Name: name}
	for _, e := range t.Entries() {
		if e.Path == "/" {
			continue
		}
		_, explicit := t.Get(e.Path)
		le := Entry{Path: e.Path, Mode: e.Mode, UID: e.UID, GID: e.GID, Target: e.Target, Implicit: !explicit}
		if e.IsFile() {
			le = Bytes(e.Path, e.Mode.Perm(), e.UID, e.GID, e.Data)
			le.Secret = e.Secret
		}
		l.Entries = append(l.Entries, le)
	}
	return l, nil
}

// Bytes is a regular file entry holding data.
func Bytes(p string, perm fs.FileMode, uid, gid int, data []byte) Entry {
	return Entry{
		Path: p, Mode: perm, UID: uid, GID: gid, Size: int64(len(data)),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
	}
}

// Symlink is a symbolic link entry owned by root.
func Symlink(p, target string) Entry {
	return Entry{Path: p, Mode: fs.ModeSymlink | 0o777, Target: target}
}

// HashMismatchError reports a pinned file whose content is not what the pin says.
type HashMismatchError struct {
	File      string // on the build machine
	Got, Want string // hex SHA-256
}

func (e *HashMismatchError) Error() string {
	return fmt.Sprintf("%s has SHA-256 %s, but its pin is %s", e.File, e.Got, e.Want)
}

// PinnedFile is a regular file entry at p (root-owned, perm) whose content is
// the build machine's file src, which must have SHA-256 want (hex). The file
// is hashed now, so that a wrong pin fails before anything is written. A
// file changed in between fails the bake instead of slipping in: the copy
// into the stream is of the file hashed (its device, inode, size,
// modification and change times, checked when it is opened and once it
// is read), or, when its change time is too recent to tell a later write
// from the hash (racyWindow, as git's racy entries), is hashed again as
// it is copied. A write changes the change time, which cannot be set
// back; a pinned binary is seldom younger than the bake, so it is hashed
// once.
func PinnedFile(p string, perm fs.FileMode, src, want string) (Entry, error) {
	start := time.Now()
	got, size, hashed, err := hashFile(src)
	if err != nil {
		return Entry{}, err
	}
	if got != want {
		return Entry{}, &HashMismatchError{File: src, Got: got, Want: want}
	}
	trusted := hashed != fileid.ID{} && hashed.Settled(start, racyWindow)
	return Entry{
		Path: p, Mode: perm, Size: size,
		Open: func() (io.ReadCloser, error) {
			f, _, err := OpenRegular(src)
			if err != nil {
				return nil, err
			}
			if id, err := fileid.Stat(f); trusted && err == nil && id == hashed {
				return &unchangedReader{f: f, file: src, id: hashed}, nil
			}
			return &verifyingReader{f: f, h: sha256.New(), file: src, want: want}, nil
		},
	}, nil
}

// racyWindow is how recent a pinned file's change time may be, before its
// hash began, for a write after the hash to show in it: file systems
// keep times to a clock tick, some (FAT) to 2 s.
var racyWindow = 2 * time.Second

// ChangedError is a pinned file changed between its check and its copy.
type ChangedError struct{ File string }

func (e *ChangedError) Error() string {
	return fmt.Sprintf("%s changed after it was checked against its pin", e.File)
}

// unchangedReader reads a pinned file whose ID is the one hashed, and at
// EOF fails if it changed while read.
type unchangedReader struct {
	f    *os.File
	file string
	id   fileid.ID
}

func (u *unchangedReader) Read(p []byte) (int, error) {
	n, err := u.f.Read(p)
	if err == io.EOF {
		if id, serr := fileid.Stat(u.f); serr != nil || id != u.id {
			return n, &ChangedError{File: u.file}
		}
	}
	return n, err
}

func (u *unchangedReader) Close() error { return u.f.Close() }

// CopyFile copies the regular file src (symbolic links followed) to the new
// file dst (replaced if it exists), with src's permissions.
func CopyFile(src, dst string) error {
	in, st, err := OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, st.Mode().Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// OpenRegular opens the regular file src (symbolic links followed) for
// reading and returns it with its FileInfo; anything else is an error.
func OpenRegular(src string) (*os.File, fs.FileInfo, error) {
	f, err := os.Open(src)
	if err != nil {
		return nil, nil, err
	}
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", src)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, st, nil
}

// FileSHA256 is the SHA-256 (hex) of the regular file src (symbolic links
// followed), as a pin in spec.binaries.sha256 gives it.
func FileSHA256(src string) (string, error) {
	sum, _, _, err := hashFile(src)
	return sum, err
}

// hashFile returns the SHA-256 (hex) and size of the regular file src, and
// its ID when that was the same as the file was opened and once it was
// read (the zero ID when it changed meanwhile).
func hashFile(src string) (sum string, size int64, id fileid.ID, err error) {
	f, _, err := OpenRegular(src)
	if err != nil {
		return "", 0, id, err
	}
	defer f.Close()
	before, berr := fileid.Stat(f)
	h := sha256.New()
	size, err = io.Copy(h, f)
	if err != nil {
		return "", 0, id, fmt.Errorf("%s: %w", src, err)
	}
	if after, aerr := fileid.Stat(f); berr == nil && aerr == nil && after == before {
		id = before
	}
	return hex.EncodeToString(h.Sum(nil)), size, id, nil
}

// verifyingReader hashes what it reads and fails at EOF on a mismatch.
type verifyingReader struct {
	f          *os.File
	h          hash.Hash
	file, want string
}

func (v *verifyingReader) Read(p []byte) (int, error) {
	n, err := v.f.Read(p)
	v.h.Write(p[:n])
	if err == io.EOF {
		if got := hex.EncodeToString(v.h.Sum(nil)); got != v.want {
			return n, &HashMismatchError{File: v.file, Got: got, Want: v.want}
		}
	}
	return n, err
}

func (v *verifyingReader) Close() error { return v.f.Close() }

// StatFile is a regular file entry at p whose content is the build
// machine's file src, unpinned (spec images carry no pin).
func StatFile(p string, perm fs.FileMode, src string) (Entry, error) {
	st, err := os.Stat(src)
	if err != nil {
		return Entry{}, err
	}
	if !st.Mode().IsRegular() {
		return Entry{}, fmt.Errorf("%s is not a regular file", src)
	}
	return Entry{
		Path: p, Mode: perm, Size: st.Size(),
		Open: func() (io.ReadCloser, error) { return os.Open(src) },
	}, nil
}

// withParents returns es sorted by path with every missing parent directory
// added as an implicit 0755 root:root directory.
func withParents(es []Entry) []Entry {
	have := map[string]bool{}
	for _, e := range es {
		have[e.Path] = true
	}
	out := append([]Entry(nil), es...)
	for _, e := range es {
		for d := path.Dir(e.Path); d != "/"; d = path.Dir(d) {
			if have[d] {
				break
			}
			have[d] = true
			out = append(out, Entry{Path: d, Mode: fs.ModeDir | 0o755, Implicit: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// checkPath refuses a layer path that is not absolute and clean.
func checkPath(layer, p string) error {
	if !strings.HasPrefix(p, "/") || path.Clean(p) != p || p == "/" {
		return fmt.Errorf("layer %s: path %q is not an absolute clean path below /", layer, p)
	}
	return nil
}

// Tar writes the layer's declared entries (not the implicit parents) as a
// tar stream, modified at mtime, for a machine that extracts it over its own
// root (the Packer provisioner's sysprep); Remove is the caller's to apply.
func (l Layer) Tar(w io.Writer, mtime time.Time) error {
	tw := tar.NewWriter(w)
	for i := range l.Entries {
		e := &l.Entries[i]
		if e.Implicit {
			continue
		}
		if err := tw.WriteHeader(header(e, mtime)); err != nil {
			return err
		}
		if !e.IsFile() || e.Size == 0 {
			continue
		}
		rc, err := e.Open()
		if err != nil {
			return fmt.Errorf("layer %s: %s: %w", l.Name, e.Path, err)
		}
		_, err = io.Copy(tw, rc)
		rc.Close()
		if err != nil {
			return fmt.Errorf("layer %s: %s: %w", l.Name, e.Path, err)
		}
	}
	return tw.Close()
}
