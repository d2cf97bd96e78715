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
// wait for this run's writes, where a syncfs of the whole file system
// waits for every other process's dirty pages too (issue #14).
//
// The fsyncs run syncers at a time (a journaling file system commits the
// concurrent ones together), and writeAt has started each file's
// writeback when it wrote it (sync_file_range), so that the data is on its
// way while the run goes on. Measured on the 2-core development VM (ext4
// on virtio, load average 11-15 from other sessions; sync phase of a
// first generate of 3 controllers and 100 workers, ~5,000 files and
// directories, median of 10 interleaved runs): 543 ms with fsyncs alone,
// 439 ms with writeback started early, 170 ms for one syncfs, which this
// machine's kernel makes cheap by writing other processes' dirty pages out
// fast; 256 fsyncs at a time instead of 64 took 726 ms (4 runs), 4 or 16
// at a time no less than 64 (5 runs each). With 1,000 workers (48,225
// files and directories, one run each, load ~20): 6.6 s of fsyncs against
// 0.48 s for a syncfs. The cost grows with the number of files, not with
// their bytes.
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
	if err := d.sync(d.dirty, order); err != nil {
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

// syncers is how many fsyncs sync runs at once: a journaling file system
// commits the concurrent ones together, and an fsync mostly waits.
const syncers = 64

// sync fsyncs files and directories dirs ("" is the root), all relative
// to the root, on syncers goroutines. A file or directory that is gone,
// or is a symlink now, is skipped: it is not what this run wrote.
func (d *Dir) sync(files, dirs []string) error {
	return Parallel(len(files)+len(dirs), syncers, func(i int) error {
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

// syncPath fsyncs the directory at path.
func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	return fsync(int(f.Fd()))
}

// fsync is unix's; a test replaces it to see what is synced.
var fsync = unix.Fsync

// Parallel calls f(0) ... f(n-1) on up to workers goroutines and returns
// the first error to happen (every call is made).
func Parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  = make(chan int)
	)
	for range min(n, workers) {
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
