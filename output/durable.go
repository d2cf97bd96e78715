package output

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"golang.org/x/sys/unix"
)

// durable makes what this run changed durable, before the manifest lists
// it: an fsync of every file the run wrote or chmodded, and of every
// directory whose entries it changed or may have changed (on the path to a
// file written, removed, or noted: a new directory is named by its parent),
// up to the root, and of the parent of every directory Open created. These
// wait for this run's writes only, where a syncfs of the whole file system
// also waits for every other process's.
//
// But each fsync costs a flush of the disk's write cache (on ext4, an
// fsync of a file whose journal commit is done flushes on its own), and a
// syncfs one: beyond maxFsyncs, one syncfs is made instead. Measured on
// the 2-core development VM, whose kernel writes dirty pages out quickly
// (sync phase of a first generate, medians of 10 and 6 interleaved runs):
// with no writer beside it, the seed's ~500 fsyncs took 97 ms against 23
// ms for a syncfs, the ~4,800 of 3 controllers and 100 workers 788 against
// 126 ms; with dd rewriting a 1 GiB file beside it, 732 against 771 ms and
// 2,367 against 1,083 ms. So on that machine the fsyncs win nothing: the
// other writers' dirty pages are written out fast there. They keep a run
// from waiting for other processes' writes where those are many or the
// disk slow; beyond maxFsyncs, their own flushes cost more than that wait
// did there.
func (d *Dir) durable() error {
	dirs := map[string]bool{}
	var order []string
	for _, list := range [][]string{d.dirty, d.removed, d.noted} {
		for _, p := range list {
			for dir, _ := split(p); !dirs[dir]; dir, _ = split(dir) {
				dirs[dir] = true
				order = append(order, dir)
				if dir == "" {
					break
				}
			}
		}
	}
	if len(order) == 0 {
		return nil
	}
	var err error
	if len(d.dirty)+len(order) > maxFsyncs {
		err = d.syncFS()
	} else {
		err = d.sync(d.dirty, order)
	}
	if err != nil {
		return err
	}
	for _, c := range d.created {
		if err := syncPath(filepath.Dir(c)); err != nil {
			return err
		}
	}
	d.created = nil
	return nil
}

// maxFsyncs is the most fsyncs durable makes; a run that needs more makes
// one syncfs.
const maxFsyncs = 1024

// syncers is how many fsyncs sync runs at once: a journaling file system
// commits the concurrent ones together, and an fsync mostly waits.
const syncers = 64

// sync fsyncs files and directories dirs ("" is the root), all relative
// to the root, on syncers goroutines. A file or directory that is gone,
// or is a symlink now, is skipped: it is not what this run wrote.
func (d *Dir) sync(files, dirs []string) error {
	return parallel(len(files)+len(dirs), func(i int) error {
		if i < len(files) {
			return d.syncOne(files[i], unix.O_RDONLY|unix.O_NONBLOCK)
		}
		return d.syncOne(dirs[i-len(files)], unix.O_RDONLY|unix.O_DIRECTORY)
	})
}

func (d *Dir) syncOne(rel string, flags int) error {
	defer runtime.KeepAlive(d)
	var fd int
	var err error
	if rel == "" {
		fd, err = unix.Openat(d.fd, ".", flags|unix.O_CLOEXEC, 0)
	} else {
		fd, err = d.openFile(rel, flags)
	}
	if errors.Is(err, unix.ENOENT) || errors.Is(err, unix.ELOOP) || errors.Is(err, unix.ENOTDIR) {
		return nil
	}
	if err == nil {
		err = fsync(fd)
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", d.path(rel), err)
	}
	return nil
}

// syncFS flushes the whole file system that holds the root.
func (d *Dir) syncFS() error {
	defer runtime.KeepAlive(d)
	fd, err := unix.Openat(d.fd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = syncfs(fd)
		unix.Close(fd)
	}
	if err != nil {
		return fmt.Errorf("sync %s: %w", d.Root, err)
	}
	return nil
}

// syncPath fsyncs the directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fsync(int(f.Fd()))
}

// fsync and syncfs are unix's; a test replaces them to see what is synced.
var (
	fsync  = unix.Fsync
	syncfs = unix.Syncfs
)

// parallel calls f(0) ... f(n-1) on up to syncers goroutines and returns
// the first error.
func parallel(n int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(n, syncers) {
		wg.Go(func() {
			for i := range next {
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	return first
}
