package output

import (
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Below the root, hardway never follows a symlink.
//
// A directory that is a symlink (pki/, kubeconfigs/, nodes/<node>/, ...) is
// refused with a SymlinkError: replacing it would be worse, since pki/ holds
// the state a link may point at on purpose (a new empty directory there
// means a new CA), and deleting through it is what must not happen. A file
// of ours that is a symlink is replaced by the file: a rename replaces the
// link itself and never writes to its target. Reading a file that is a
// symlink is refused like a directory.
//
// Every path is opened from the root's descriptor with openat2
// RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS (one system call, the kernel checks
// every component), or, where openat2 is missing, one component at a time
// with O_NOFOLLOW. Paths come in slash-separated and relative (CheckRel);
// whatever the caller passes, nothing is read or written outside the root.

// SymlinkError says that a path below the output root crosses a symlink.
type SymlinkError struct {
	Path string // the symlink, on disk
}

func (e *SymlinkError) Error() string {
	return e.Path + " is a symlink: hardway does not follow symlinks below its output directory; " +
		"replace it by the directory it points to, or remove it"
}

// CheckRel refuses a path that is not relative, clean and slash-separated:
// absolute, empty, with an empty, "." or ".." element, or a NUL byte.
func CheckRel(rel string) error {
	if rel == "" || strings.HasPrefix(rel, "/") || strings.ContainsRune(rel, 0) {
		return fmt.Errorf("%q is not a relative path below the output directory", rel)
	}
	for elem := range strings.SplitSeq(rel, "/") {
		if elem == "" || elem == "." || elem == ".." {
			return fmt.Errorf("%q is not a relative path below the output directory", rel)
		}
	}
	return nil
}

// split returns rel's directory ("" for the root) and base name.
func split(rel string) (string, string) {
	if i := strings.LastIndexByte(rel, '/'); i >= 0 {
		return rel[:i], rel[i+1:]
	}
	return "", rel
}

// path is rel on disk, for messages.
func (d *Dir) path(rel string) string { return filepath.Join(d.Root, filepath.FromSlash(rel)) }

// openat2 is unix.Openat2; a test replaces it to exercise the fallback.
var openat2 = unix.Openat2

// noOpenat2 is set once openat2 turned out to be unavailable (a kernel
// before 5.6, or a seccomp filter that does not know it).
var noOpenat2 bool

// openDir opens directory rel ("" is the root) as an O_PATH descriptor,
// creating missing directories (0755) when create is set.
func (d *Dir) openDir(rel string, create bool) (int, error) {
	defer runtime.KeepAlive(d) // d.fd is closed by a cleanup once d is unreachable
	if rel == "" {
		return unix.Openat(d.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	}
	if err := CheckRel(rel); err != nil {
		return -1, err
	}
	if !noOpenat2 {
		fd, err := openat2(d.fd, rel, &unix.OpenHow{
			Flags:   unix.O_PATH | unix.O_DIRECTORY | unix.O_CLOEXEC,
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		switch {
		case err == nil:
			return fd, nil
		case errors.Is(err, unix.ENOSYS), errors.Is(err, unix.EPERM):
			noOpenat2 = true
		case errors.Is(err, unix.ENOENT) && !create:
			return -1, &fs.PathError{Op: "open", Path: d.path(rel), Err: err}
		}
		// Missing, a symlink, not a directory: the walk creates what is
		// missing and names the component that is in the way.
	}
	return d.walk(rel, create)
}

// walk opens directory rel one component at a time, never following a
// symlink, creating missing directories when create is set.
func (d *Dir) walk(rel string, create bool) (int, error) {
	fd, err := unix.Openat(d.fd, ".", unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	done := ""
	for elem := range strings.SplitSeq(rel, "/") {
		done = strings.TrimPrefix(done+"/"+elem, "/")
		next, err := unix.Openat(fd, elem, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if errors.Is(err, unix.ENOENT) && create {
			if err = unix.Mkdirat(fd, elem, 0o755); err == nil || errors.Is(err, unix.EEXIST) {
				next, err = unix.Openat(fd, elem, unix.O_PATH|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			}
		}
		if err != nil {
			var st unix.Stat_t
			if errors.Is(err, unix.ENOTDIR) || errors.Is(err, unix.ELOOP) {
				if unix.Fstatat(fd, elem, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFLNK {
					err = nil
				}
			}
			unix.Close(fd)
			if err == nil {
				return -1, &SymlinkError{Path: d.path(done)}
			}
			return -1, &fs.PathError{Op: "open", Path: d.path(done), Err: err}
		}
		unix.Close(fd)
		fd = next
	}
	return fd, nil
}

// openFile opens rel with flags (O_NOFOLLOW and O_CLOEXEC are added): a
// symlink at rel is opened itself with O_PATH, and fails otherwise.
func (d *Dir) openFile(rel string, flags int) (int, error) {
	defer runtime.KeepAlive(d)
	if err := CheckRel(rel); err != nil {
		return -1, err
	}
	flags |= unix.O_NOFOLLOW | unix.O_CLOEXEC
	if !noOpenat2 {
		fd, err := openat2(d.fd, rel, &unix.OpenHow{
			Flags:   uint64(flags),
			Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
		})
		if !errors.Is(err, unix.ENOSYS) && !errors.Is(err, unix.EPERM) {
			return fd, err
		}
		noOpenat2 = true
	}
	fd := -1
	err := d.at(rel, false, func(dir int, name string) (err error) {
		fd, err = unix.Openat(dir, name, flags, 0)
		return err
	})
	return fd, err
}

// MkdirAll makes directory rel and its parents (0755) below the root,
// refusing a symlink on the way (in a plan, nothing).
func (d *Dir) MkdirAll(rel string) error {
	if d.plan != nil {
		return nil
	}
	fd, err := d.openDir(rel, true)
	if err != nil {
		return err
	}
	return unix.Close(fd)
}

// RemoveEmptyDirs removes each subdirectory of directory rel that keep
// refuses, with the directories below it, as far as they hold no file:
// a directory that holds a file (or anything but a directory) stays, with
// the directories on the way to it. Nothing is followed through a
// symlink. A missing rel is not an error. A plan removes nothing.
func (d *Dir) RemoveEmptyDirs(rel string, keep func(name string) bool) error {
	if d.plan != nil {
		return nil // a plan reports files only
	}
	dir, err := d.openDir(rel, false)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer unix.Close(dir)
	names, err := readDirNames(dir, d.path(rel))
	if err != nil {
		return err
	}
	for _, name := range names {
		if keep(name) {
			continue
		}
		if err := removeEmpty(dir, name, d.path(rel+"/"+name)); err != nil {
			return err
		}
	}
	return nil
}

// removeEmpty removes directory name in dir and the directories below it,
// deepest first, as far as they are empty; anything that is not a
// directory stays, and so does what leads to it.
func removeEmpty(dir int, name, show string) error {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	switch {
	case errors.Is(err, unix.ENOTDIR), errors.Is(err, unix.ELOOP), errors.Is(err, unix.ENOENT):
		return nil // a file, a symlink, or gone: not ours to remove here
	case err != nil:
		return &fs.PathError{Op: "open", Path: show, Err: err}
	}
	names, err := readDirNames(fd, show)
	if err == nil {
		for _, n := range names {
			if err = removeEmpty(fd, n, show+"/"+n); err != nil {
				break
			}
		}
	}
	unix.Close(fd)
	if err != nil {
		return err
	}
	switch err := unix.Unlinkat(dir, name, unix.AT_REMOVEDIR); {
	case err == nil, errors.Is(err, unix.ENOTEMPTY), errors.Is(err, unix.EEXIST), errors.Is(err, unix.ENOENT):
		return nil
	default:
		return &fs.PathError{Op: "remove", Path: show, Err: err}
	}
}

// readDirNames lists the directory open (O_PATH or not) at dir.
func readDirNames(dir int, show string) ([]string, error) {
	fd, err := unix.Openat(dir, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: show, Err: err}
	}
	f := os.NewFile(uintptr(fd), show)
	defer f.Close()
	return f.Readdirnames(-1)
}

// at opens rel's directory and calls f with its descriptor and rel's base name.
func (d *Dir) at(rel string, create bool, f func(dir int, name string) error) error {
	if err := CheckRel(rel); err != nil {
		return err
	}
	dir, name := split(rel)
	fd, err := d.openDir(dir, create)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	return f(fd, name)
}

// readAt reads file name in directory dir, refusing a symlink, and
// returns its stat, taken before the read. A FIFO or device is refused
// too: only a regular file of ours is ever read.
func readAt(dir int, name, show string) ([]byte, *unix.Stat_t, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if errors.Is(err, unix.ELOOP) {
		return nil, nil, &SymlinkError{Path: show}
	}
	if err != nil {
		return nil, nil, &fs.PathError{Op: "open", Path: show, Err: err}
	}
	defer unix.Close(fd)
	return readFd(fd, show)
}

// readFd reads the regular file open at fd and returns its stat, taken
// before the read.
func readFd(fd int, show string) ([]byte, *unix.Stat_t, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, nil, &fs.PathError{Op: "stat", Path: show, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil, fmt.Errorf("%s is not a regular file", show)
	}
	data, err := readAll(fd, st.Size, math.MaxInt64)
	if err != nil {
		return nil, nil, &fs.PathError{Op: "read", Path: show, Err: err}
	}
	return data, &st, nil
}

// readAll reads fd to its end, expecting size bytes, but at most limit.
func readAll(fd int, size, limit int64) ([]byte, error) {
	buf := make([]byte, 0, min(size, limit)+1)
	for int64(len(buf)) < limit {
		n, err := unix.Read(fd, buf[len(buf):min(int64(cap(buf)), limit)])
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return nil, err
		}
		if n == 0 {
			break
		}
		buf = buf[:len(buf)+n]
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
	}
	return buf, nil
}

// hooks connect writeAt to the Dir it writes for; nil outside one.
type hooks struct {
	before func() // called, when the file must be written, before anything is
	// known reports that a file with stat st is known to hold the data
	// with its mode (the stat cache), so that it need not be read.
	known func(st *unix.Stat_t) bool
}

// writeAt stores data as file name in directory dir with mode perm, unless
// it already holds exactly these bytes with this mode; same bytes with
// another mode only get the mode. It reports whether it changed anything,
// and the file's stat once it held data with perm (nil if another process
// replaced it meanwhile). A new file goes through a temporary file
// (.<name>.tmp-<n>, created with mode 0600 and set to perm before any byte
// is written) and a rename, so that readers and interrupted runs see
// either the old or the new content. The data's writeback is started, but
// not waited for: the caller makes what changed durable (Dir.Finish).
func writeAt(dir int, name string, data []byte, perm fs.FileMode, show string, h *hooks) (bool, *unix.Stat_t, error) {
	if h == nil {
		h = &hooks{}
	}
	var st unix.Stat_t
	if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == int64(len(data)) {
		if h.known != nil && h.known(&st) {
			return false, &st, nil
		}
		if old, cur, err := readAt(dir, name, show); err == nil && string(old) == string(data) {
			if cur.Mode&0o7777 == uint32(perm.Perm()) {
				return false, cur, nil
			}
			if h.before != nil {
				h.before()
			}
			cur, err := chmodAt(dir, name, perm, show)
			return true, cur, err
		}
	}
	if h.before != nil {
		h.before()
	}
	var tmp string
	var fd int
	for try := 0; ; try++ {
		var err error
		tmp = "." + name + ".tmp-" + strconv.FormatUint(uint64(rand.Uint32()), 10)
		fd, err = unix.Openat(dir, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EEXIST) || try == 100 {
			return false, nil, &fs.PathError{Op: "create", Path: show, Err: err}
		}
	}
	f := os.NewFile(uintptr(fd), show)
	var written unix.Stat_t
	err := f.Chmod(perm.Perm())
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		// Start writing the data out now, without waiting: the fsync
		// that makes it durable (Dir.Finish) then waits less. A hint;
		// a file system without it writes the data out on fsync.
		unix.SyncFileRange(fd, 0, 0, unix.SYNC_FILE_RANGE_WRITE)
	}
	if err == nil {
		err = unix.Fstat(fd, &written)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dir, tmp, dir, name)
		if err != nil {
			err = &fs.PathError{Op: "rename", Path: show, Err: err}
		}
	}
	if err != nil {
		unix.Unlinkat(dir, tmp, 0)
		return false, nil, fmt.Errorf("write %s: %w", show, err)
	}
	// The rename changed the file's ctime: its stat is the one after it,
	// if the file there is still the one written.
	if unix.Fstatat(dir, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Ino != written.Ino || st.Dev != written.Dev {
		return true, nil, nil
	}
	return true, &st, nil
}

// chmodAt sets the mode of regular file name in dir, without following a
// symlink (which a rename may have put there since the check), and
// returns its stat after the change.
func chmodAt(dir int, name string, perm fs.FileMode, show string) (*unix.Stat_t, error) {
	fd, err := unix.Openat(dir, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "chmod", Path: show, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchmod(fd, uint32(perm.Perm())); err != nil {
		return nil, &fs.PathError{Op: "chmod", Path: show, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, nil
	}
	return &st, nil
}

// WriteFileAtomic writes data to path through a temporary file in the same
// directory and a rename, so readers and interrupted runs see either the old
// or the new content. It does nothing when the file already has these bytes
// and this mode, and reports whether it wrote. It is for a file outside an
// output directory, at a path the caller trusts; a Dir's files go through
// Dir.Write.
func WriteFileAtomic(path string, data []byte, perm fs.FileMode) (bool, error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return false, err
	}
	fd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return false, &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	changed, _, err := writeAt(fd, filepath.Base(path), data, perm, path, nil)
	return changed, err
}
