package bake

import (
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// A template is a sequence of independent zstd frames, each the
// compression of frameSize bytes of the tar stream (the last one of what
// is left), so that its frames are compressed on every processor at once
// and still give the same bytes on any machine: a frame's bytes depend on
// its chunk alone, and the chunks end at fixed offsets of the stream,
// whatever the number of processors or their timing.
//
// Concatenated frames are one valid zstd stream (RFC 8878, section 3.1):
// `zstd -d` and every decoder read them as one. Proxmox extracts a
// .tar.zst template with GNU tar and its --zstd option (pve-container,
// src/PVE/LXC/Create.pm: tar_compression_option maps .zst to --zstd for
// check_tar_archive's `tar -tvf` and restore_tar_archive's `tar xpf -`),
// and GNU tar runs `zstd -d` on it.
//
// frameSize is chosen by measure (BENCHMARKS.md, issue #14), on the seed
// worker's 645 MB tar stream: one stream gave 218.2 MB, frames of 4, 8 and
// 16 MiB 224.2 (+2.7%), 220.9 (+1.2%) and 219.6 MB (+0.6%), for the same
// CPU; `zstd -T0 -3` gives 219.3 MB. 8 MiB is the encoder's window at
// level 3: a frame loses only the matches reaching across its start,
// and the memory stays that of a few windows.
const frameSize = 8 << 20

// framePool compresses the frames of every template of a run: procs
// encoders (zstd's default level, 3, as `zstd -T0`), shared by all the
// templates that are baked together, and at most procs frames taken and
// not yet written, which bounds the memory: each encoder keeps a window
// (frameSize, WithLowerEncoderMem) and its tables, each frame its chunk
// and its compressed bytes, each template the chunk it fills.
type framePool struct {
	enc    *zstd.Encoder // EncodeAll only: at most procs calls at once
	size   int           // of a frame's chunk: frameSize, smaller in tests
	slots  chan struct{} // frames taken from the stream and not yet written
	bufs   chan []byte   // free buffers of size capacity: chunks, and compressed frames
	region []byte        // the buffers' memory, mapped apart from the Go heap
	open   sync.WaitGroup
}

// newFramePool makes a pool of procs encoders (every processor with 0)
// for frames of size bytes, and the buffers of up to writers streams
// compressed at once: two a slot (a chunk and its frame) and the chunk
// each stream fills. Close releases them.
//
// The buffers are mapped once, apart from the Go heap, and asked to be
// backed by huge pages: they are long-lived and written through, and on
// this project's build machine (a virtual machine) a fresh 4 KiB page
// costs a fault of some 10 µs; in the Go heap they would also double the
// garbage collector's goal, and so the memory the rest touches.
func newFramePool(procs, size, writers int) (*framePool, error) {
	if procs <= 0 {
		procs = runtime.GOMAXPROCS(0)
	}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(procs), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithZeroFrames(true), zstd.WithLowerEncoderMem(true), zstd.WithWindowSize(size))
	if err != nil {
		return nil, err
	}
	n := 2*procs + max(writers, 1)
	region, err := unix.Mmap(-1, 0, n*size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, fmt.Errorf("zstd frame buffers: %w", err)
	}
	_ = unix.Madvise(region, unix.MADV_HUGEPAGE) // only fewer page faults: where it is refused, 4 KiB pages do
	p := &framePool{enc: enc, size: size, slots: make(chan struct{}, procs), bufs: make(chan []byte, n), region: region}
	for i := range n {
		p.bufs <- region[i*size : i*size : (i+1)*size]
	}
	return p, nil
}

// Close unmaps the buffers once every frame writer is closed.
func (p *framePool) Close() error {
	p.open.Wait()
	return unix.Munmap(p.region)
}

// buf is an empty buffer of the frames' size: a free one, or a new one
// if more streams are compressed at once than the pool was made for.
func (p *framePool) buf() []byte {
	select {
	case b := <-p.bufs:
		return b
	default:
		return make([]byte, 0, p.size)
	}
}

// free gives b back for reuse.
func (p *framePool) free(b []byte) {
	select {
	case p.bufs <- b[:0]:
	default:
	}
}

// frame is one chunk of a stream on its way: its compressed bytes once
// ready is closed.
type frame struct {
	chunk, out []byte
	buf        []byte // out's buffer, unless out outgrew it
	ready      chan struct{}
}

// frameWriter compresses what is written to it as frames of pool.size
// bytes, on pool's encoders, and writes them in order to w. Close
// compresses the rest and waits for every frame to be written.
type frameWriter struct {
	pool   *framePool
	cur    []byte
	queue  chan *frame   // the frames in stream order, to the goroutine writing them
	done   chan struct{} // closed when that goroutine has ended
	failed chan struct{} // closed on its first write error, then err is set
	err    error
	frames int // frames taken
}

// newFrameWriter starts writing the frames of a stream to w.
func (p *framePool) newFrameWriter(w io.Writer) *frameWriter {
	p.open.Add(1)
	z := &frameWriter{pool: p, cur: p.buf(), queue: make(chan *frame, cap(p.slots)),
		done: make(chan struct{}), failed: make(chan struct{})}
	go z.write(w)
	return z
}

// write writes the frames to w in order, each once compressed, and gives
// their buffers and slots back; after an error it only gives them back.
func (z *frameWriter) write(w io.Writer) {
	defer close(z.done)
	for f := range z.queue {
		<-f.ready
		if z.err == nil {
			if _, err := w.Write(f.out); err != nil {
				z.err = err
				close(z.failed)
			}
		}
		z.pool.free(f.chunk)
		z.pool.free(f.buf)
		<-z.pool.slots
	}
}

func (z *frameWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		k := copy(z.cur[len(z.cur):z.pool.size], p)
		z.cur = z.cur[:len(z.cur)+k]
		p, n = p[k:], n+k
		if len(z.cur) == z.pool.size {
			if err := z.take(); err != nil {
				return n, err
			}
		}
	}
	return n, nil
}

// take sends the current chunk to be compressed, once a slot is free.
func (z *frameWriter) take() error {
	select {
	case z.pool.slots <- struct{}{}:
	case <-z.failed:
		return z.err
	}
	f := &frame{chunk: z.cur, buf: z.pool.buf(), ready: make(chan struct{})}
	z.queue <- f
	z.frames++
	z.cur = z.pool.buf()
	go func() {
		f.out = z.pool.enc.EncodeAll(f.chunk, f.buf)
		close(f.ready)
	}()
	return nil
}

// Close compresses what is left (an empty stream is one empty frame) and
// returns once every frame is written, with the first write error.
func (z *frameWriter) Close() error {
	if len(z.cur) > 0 || z.frames == 0 {
		_ = z.take() // fails only with z.err
	}
	close(z.queue)
	<-z.done
	z.pool.free(z.cur)
	z.pool.open.Done()
	return z.err
}
