package rootfs

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// synthetic writes a base tarball of about size bytes on the fly: a few
// directories, one file of half the size (a base's largest file must not be
// held either), and files of 1 MiB for the rest. Content is a cheap pattern.
func synthetic(size int64) io.Reader {
	pr, pw := io.Pipe()
	go func() {
		tw := tar.NewWriter(pw)
		err := func() error {
			for _, d := range []string{"./", "./sbin/", "./usr/", "./usr/lib/", "./usr/lib/systemd/", "./data/"} {
				if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755}); err != nil {
					return err
				}
			}
			if err := writePattern(tw, "./usr/lib/systemd/systemd", 1<<20); err != nil {
				return err
			}
			if err := writePattern(tw, "./data/big", size/2); err != nil {
				return err
			}
			for i, left := 0, size/2; left > 0; i, left = i+1, left-(1<<20) {
				if err := writePattern(tw, fmt.Sprintf("./data/f%06d", i), min(left, 1<<20)); err != nil {
					return err
				}
			}
			return tw.Close()
		}()
		pw.CloseWithError(err)
	}()
	return pr
}

// chunk is the content pattern of synthetic files.
var chunk = func() []byte {
	b := make([]byte, 64<<10)
	for i := range b {
		b[i] = byte(i * 7)
	}
	return b
}()

// writePattern writes a file of n bytes.
func writePattern(tw *tar.Writer, name string, n int64) error {
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: n}); err != nil {
		return err
	}
	for n > 0 {
		k := min(n, int64(len(chunk)))
		if _, err := tw.Write(chunk[:k]); err != nil {
			return err
		}
		n -= k
	}
	return nil
}

// peakHeap runs f and returns the largest HeapInuse seen while it ran.
func peakHeap(f func()) uint64 {
	runtime.GC()
	var peak atomic.Uint64
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-done:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()
	f()
	close(done)
	wg.Wait()
	return peak.Load()
}

// TestMemoryFlat streams synthetic bases of 32 MiB to 2 GiB (one file of
// half the size) through a merge and checks that the peak heap does not
// grow with the base: the merge holds no file's content. (The peak of the
// small base is lower only because the garbage collector has not run yet.)
func TestMemoryFlat(t *testing.T) {
	sizes := []int64{32 << 20, 512 << 20, 2048 << 20}
	if testing.Short() {
		sizes = []int64{32 << 20, 128 << 20}
	}
	layer := Layer{Name: "node", Entries: []Entry{Bytes("/etc/hostname", 0o644, 0, 0, []byte("n\n"))}}
	peaks := make([]uint64, len(sizes))
	for i, size := range sizes {
		info, err := Scan(context.Background(), synthetic(size))
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(info, Sysprep(info), layer)
		if err != nil {
			t.Fatal(err)
		}
		var st *Stats
		peaks[i] = peakHeap(func() {
			st, err = Merge(context.Background(), io.Discard, synthetic(size), p, Options{})
		})
		if err != nil {
			t.Fatal(err)
		}
		if st.Bytes < size {
			t.Fatalf("merged %d bytes of content, want at least %d", st.Bytes, size)
		}
		t.Logf("base %d MiB: peak heap in use %.1f MiB", size>>20, float64(peaks[i])/(1<<20))
	}
	const limit, slack = 24 << 20, 8 << 20
	last := len(sizes) - 1
	if peaks[last] > limit || peaks[last] > peaks[0]+slack {
		t.Errorf("peak heap %.1f MiB for %d MiB, %.1f MiB for %d MiB: it grows with the base (limit %d MiB)",
			float64(peaks[0])/(1<<20), sizes[0]>>20, float64(peaks[last])/(1<<20), sizes[last]>>20, limit>>20)
	}
}

// BenchmarkMerge reports throughput (MB/s of base content) and B/op for
// bases of two sizes: B/op does not depend on the size.
func BenchmarkMerge(b *testing.B) {
	for _, size := range []int64{64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			info, err := Scan(context.Background(), synthetic(size))
			if err != nil {
				b.Fatal(err)
			}
			p, err := NewPlan(info, Sysprep(info))
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := Merge(context.Background(), io.Discard, synthetic(size), p, Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
