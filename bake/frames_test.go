package bake

import (
	"bytes"
	"errors"
	"io"
	"os/exec"
	"runtime"
	"sync"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// framesInput is a stream of testFrame-sized chunks and a partial last
// one, compressible but not trivially.
func framesInput() []byte {
	data := make([]byte, 12*testFrame+12345)
	for i := range data {
		data[i] = byte(i*i>>7) ^ byte(i>>13)
	}
	return data
}

// testFrame is the frame size of the tests: many frames from a small input.
const testFrame = 1 << 20

// compressFrames writes data to a frame writer of pool in writes of step
// bytes.
func compressFrames(t *testing.T, pool *framePool, data []byte, step int) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := pool.newFrameWriter(&buf)
	for off := 0; off < len(data); off += step {
		if _, err := w.Write(data[off:min(off+step, len(data))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestZstdDeterministic: the template's bytes do not depend on the number
// of processors of the machine that bakes it, nor on the encoders of the
// pool or how the stream is written, and they decode to the stream (with
// Go's decoder, and with zstd(1), which GNU tar's --zstd runs for pct).
func TestZstdDeterministic(t *testing.T) {
	data := framesInput()
	var first []byte
	for _, maxprocs := range []int{1, 2} {
		for _, procs := range []int{1, 2, 0} {
			for _, step := range []int{10240, len(data)} {
				prev := runtime.GOMAXPROCS(maxprocs)
				pool, err := newFramePool(procs, testFrame, 1)
				if err != nil {
					t.Fatal(err)
				}
				got := compressFrames(t, pool, data, step)
				pool.Close()
				runtime.GOMAXPROCS(prev)
				if first == nil {
					first = got
					continue
				}
				if !bytes.Equal(first, got) {
					t.Fatalf("GOMAXPROCS %d, %d encoders, writes of %d bytes: other bytes", maxprocs, procs, step)
				}
			}
		}
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	if out, err := dec.DecodeAll(first, nil); err != nil || !bytes.Equal(out, data) {
		t.Fatalf("Go's decoder: %v, same stream %v", err, bytes.Equal(out, data))
	}
	if _, err := exec.LookPath("zstd"); err != nil {
		t.Skip("no zstd(1)")
	}
	cmd := exec.Command("zstd", "-d", "-c")
	cmd.Stdin = bytes.NewReader(first)
	out, err := cmd.Output()
	if err != nil || !bytes.Equal(out, data) {
		t.Fatalf("zstd -d: %v, same stream %v", err, bytes.Equal(out, data))
	}
}

// TestFramesShared: templates compressed at once on one pool get the bytes
// each gets alone.
func TestFramesShared(t *testing.T) {
	pool, err := newFramePool(2, testFrame, 2) // fewer than the streams: some buffers are made apart
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	inputs := [][]byte{framesInput(), bytes.Repeat([]byte("hardway "), 3*testFrame/8+1), {}}
	var alone [][]byte
	for _, in := range inputs {
		alone = append(alone, compressFrames(t, pool, in, 4096))
	}
	got := make([][]byte, len(inputs))
	var wg sync.WaitGroup
	for i, in := range inputs {
		wg.Go(func() { got[i] = compressFrames(t, pool, in, 4096) })
	}
	wg.Wait()
	for i := range inputs {
		if !bytes.Equal(got[i], alone[i]) {
			t.Errorf("input %d: other bytes when compressed beside the others", i)
		}
	}
	if len(alone[2]) == 0 {
		t.Error("an empty stream gave no frame")
	}
}

// failWriter fails after n bytes.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n -= len(p); w.n < 0 {
		return 0, errors.New("disk full")
	}
	return len(p), nil
}

// TestFramesWriteError: the output's error stops the writes and comes out
// of Close; nothing waits forever.
func TestFramesWriteError(t *testing.T) {
	pool, err := newFramePool(2, testFrame, 1)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	w := pool.newFrameWriter(&failWriter{n: 100})
	var werr error
	data := framesInput()
	for i := 0; i < 10 && werr == nil; i++ {
		_, werr = w.Write(data)
	}
	if cerr := w.Close(); werr == nil || cerr == nil {
		t.Fatalf("write error %v, close error %v: want disk full", werr, cerr)
	}
	// The pool's slots came back: another stream goes through.
	if err := pool.newFrameWriter(io.Discard).Close(); err != nil {
		t.Fatal(err)
	}
}
