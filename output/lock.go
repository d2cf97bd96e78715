package output

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockFile is the name of the lock of an output directory.
const LockFile = ".hardway.lock"

// Lock takes an exclusive lock on the directory for the life of the process
// or until the returned function is called. A second run waits for the first
// and says so on wait (a message callback), instead of interleaving writes.
func Lock(root string, wait func(string)) (func(), error) {
	f, err := lock(root, wait)
	if err != nil {
		return nil, err
	}
	return func() { unlock(f) }, nil
}

func lock(root string, wait func(string)) (*os.File, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	path := filepath.Join(root, LockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o644)
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
	return f, nil
}

func unlock(f *os.File) {
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// The lock file also says how the last run ended, and carries the stat
// cache (statcache.go) from one finished run to the next:
//
//   - "clean\n", then the cache if there is one: the last run finished.
//   - "dirty\n", then the cache it started with if there was one, then one
//     path per line: a run started and did not finish; the paths are
//     files it was about to create that its predecessor's manifest does
//     not list (it was killed or failed before writing its own).
//   - Empty (a new directory, or one of a hardway before this format):
//     unknown.
//
// Both marks have one length, so that a run that creates no file and
// keeps the cache only overwrites them in place. The cache starts with a
// NUL byte, which no path holds, so a journal can follow it.
const (
	cleanMark = "clean\n"
	dirtyMark = "dirty\n"
)

// run is the state of a locked run.
type run struct {
	f        *os.File
	cacheEnd int64           // where the cache kept in the file ends (after the mark when there is none)
	off      int64           // where the next journal line goes
	pending  []string        // paths an unfinished run may have left
	logged   map[string]bool // paths journaled by this run
}

// Lock takes the directory's lock for one run (see the package function)
// and reads how the run before ended. If it did not finish, the temporary
// files it may have left are removed now (Sweep; not below skip, where
// others write without this lock), and the files it may have created
// without listing them are removed by Finish unless this run produces them.
// Finish records that this run finished. It returns the function that
// releases the lock and the temporary files removed.
func (d *Dir) Lock(wait func(string), skip ...string) (func(), []string, error) {
	f, err := lock(d.Root, wait)
	if err != nil {
		return nil, nil, err
	}
	r, clean, cache, err := begin(f)
	var swept []string
	if err == nil && !clean {
		swept, err = Sweep(d.Root, skip...)
	}
	if err != nil {
		unlock(f)
		return nil, nil, err
	}
	d.cache = cache
	d.run = r
	return func() {
		d.run = nil
		unlock(f)
	}, swept, nil
}

// begin reads the lock file f, whether the last run finished and its
// stat cache, and marks the file dirty for this run: it keeps the cache
// and, after an unfinished run, that run's journal (this run may be
// killed too; it goes on after the last complete line).
func begin(f *os.File) (r *run, clean bool, cache *statCache, err error) {
	r = &run{f: f, logged: map[string]bool{}}
	size := int64(0)
	if fi, err := f.Stat(); err == nil {
		size = fi.Size()
	}
	state, err := readAll(int(f.Fd()), size, 64<<20)
	if err != nil {
		return nil, false, nil, &fs.PathError{Op: "read", Path: f.Name(), Err: err}
	}
	mark := string(state[:min(len(state), len(cleanMark))])
	rest := state[len(mark):]
	var kept []byte // the cache, as the file holds it
	if mark == cleanMark || mark == dirtyMark {
		if n := statCacheLen(rest); n > 0 {
			if cache = decodeStatCache(rest[:n]); cache != nil {
				kept = rest[:n]
			}
		}
	}
	r.cacheEnd = int64(len(dirtyMark) + len(kept))
	rest = rest[len(kept):]
	// After "clean", anything but a cache that checks out is a cache torn
	// by a crash after the run's manifest: the run finished.
	clean = mark == cleanMark
	if mark == dirtyMark && (len(rest) == 0 || rest[0] != 0) {
		r.off = r.cacheEnd + int64(bytes.LastIndexByte(rest, '\n')+1)
		for p := range strings.Lines(string(rest)) {
			if p, ok := strings.CutSuffix(p, "\n"); ok && CheckRel(p) == nil {
				r.pending = append(r.pending, p)
				r.logged[p] = true
			}
		}
		return r, false, cache, nil
	}
	// Finished, unknown, or a journal this hardway cannot find: this
	// run's journal starts after the cache.
	r.off = int64(len(state))
	return r, clean, cache, r.mark(dirtyMark)
}

// journal records, before rel is first written, that this run may create
// it, unless the previous manifest lists it (Finish then knows it anyway).
func (d *Dir) journal(rel string) error {
	if d.run == nil {
		return nil
	}
	d.previous()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listedBefore(rel) || d.run.logged[rel] {
		return nil
	}
	line := rel + "\n"
	if _, err := d.run.f.WriteAt([]byte(line), d.run.off); err != nil {
		return fmt.Errorf("%s: %w", d.run.f.Name(), err)
	}
	d.run.off += int64(len(line))
	d.run.logged[rel] = true
	return nil
}

// finished marks the locked run as complete in the lock file. With encode
// it replaces the stat cache by the one encode returns for time t;
// without, it keeps the cache the file holds.
func (d *Dir) finished(encode func(t int64) []byte) error {
	r := d.run
	if encode == nil {
		if err := r.mark(cleanMark); err != nil {
			return err
		}
	} else {
		// The cache's time is the file system's, read after every stat
		// the entries hold: writing the mark sets the file's times to now.
		r.cacheEnd = int64(len(dirtyMark))
		if err := r.mark(dirtyMark); err != nil {
			return err
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(r.f.Fd()), &st); err != nil {
			return fmt.Errorf("%s: %w", r.f.Name(), err)
		}
		t := max(st.Ctim.Nano(), st.Mtim.Nano())
		data := append([]byte(cleanMark), encode(t)...)
		if _, err := r.f.WriteAt(data, 0); err != nil {
			return fmt.Errorf("%s: %w", r.f.Name(), err)
		}
		r.cacheEnd = int64(len(data))
		r.off = r.cacheEnd
	}
	r.pending = nil
	clear(r.logged)
	return nil
}

// mark makes the lock file hold mark, the cache it keeps, and no journal.
func (r *run) mark(mark string) error {
	var err error
	if r.off > r.cacheEnd {
		err = r.f.Truncate(r.cacheEnd)
	}
	if err == nil {
		_, err = r.f.WriteAt([]byte(mark), 0)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", r.f.Name(), err)
	}
	r.off = r.cacheEnd
	return nil
}

// IsTemp reports whether name is a temporary name of hardway's:
// .<name>.tmp-<digits> (atomic writes of output and bake), .<stem>.work-<digits>
// (bake's KVM work directory) or .<name>.hardway-tmp (emit's symlink swap).
func IsTemp(name string) bool {
	if len(name) < 2 || name[0] != '.' {
		return false
	}
	if strings.HasSuffix(name, ".hardway-tmp") {
		return len(name) > len("..hardway-tmp")
	}
	for _, infix := range []string{".tmp-", ".work-"} {
		i := strings.LastIndex(name, infix)
		if i < 2 {
			continue
		}
		digits := name[i+len(infix):]
		if digits != "" && strings.Trim(digits, "0123456789") == "" {
			return true
		}
	}
	return false
}

// Sweep removes every file, symlink or directory below dir whose name
// IsTemp, and returns their paths relative to dir. It follows no symlink
// and does not descend into skip (paths relative to dir). The caller must
// hold dir's lock, and no writer of ours may be at work below dir without
// it: a temporary file of a run in progress is not a leftover.
func Sweep(dir string, skip ...string) ([]string, error) {
	var swept []string
	err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if e.IsDir() && hasPrefix(rel, skip) {
			return filepath.SkipDir
		}
		if !IsTemp(e.Name()) {
			return nil
		}
		if e.IsDir() {
			if err := removeTree(p); err != nil {
				return err
			}
			swept = append(swept, rel)
			return filepath.SkipDir
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		swept = append(swept, rel)
		return nil
	})
	return swept, err
}

// removeTree removes dir and everything below it, first making its
// directories writable (an extracted root file system has read-only ones).
func removeTree(dir string) error {
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.IsDir() {
			_ = os.Chmod(p, 0o700)
		}
		return nil
	})
	return os.RemoveAll(dir)
}

// BusyFile is the lock that writers holding no run lock (bakes, which may
// share an output directory) hold shared while they work in it.
const BusyFile = ".hardway-busy.lock"

// Working marks dir as having a writer of ours at work until release is
// called: it holds BusyFile shared, so any number of writers work side by
// side. A writer that finds no other at work (it gets the lock exclusively)
// first sweeps the temporary files an interrupted writer left below dir
// (see Sweep) and returns their paths; one that finds others at work sweeps
// nothing, since their temporary files are not leftovers.
func Working(dir string) (release func(), swept []string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	path := filepath.Join(dir, BusyFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return nil, nil, err
	}
	fd := int(f.Fd())
	if err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB); err == nil {
		swept, err = Sweep(dir)
		if err != nil {
			unlock(f)
			return nil, nil, fmt.Errorf("sweep %s: %w", dir, err)
		}
	} else if !errors.Is(err, syscall.EWOULDBLOCK) {
		f.Close()
		return nil, nil, fmt.Errorf("lock %s: %w", path, err)
	}
	// Shared from here on (a conversion, or waiting out a sweep in progress).
	if err := syscall.Flock(fd, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return func() { unlock(f) }, swept, nil
}

// Unmake removes dir, which a writer made (Working) and left empty, with
// its BusyFile, unless another writer is at work in it.
func Unmake(dir string) {
	path := filepath.Join(dir, BusyFile)
	f, err := os.OpenFile(path, os.O_RDWR|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return
	}
	if es, err := os.ReadDir(dir); err == nil && len(es) == 1 {
		os.Remove(path)
		os.Remove(dir)
	}
}
