package bake

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestPendingWritesBack: writing an artifact starts the writeback of each
// stretch of writebackEvery bytes as it is passed, from where the last
// stopped, and never of bytes not yet written; a reset starts again from 0.
// With the real sync_file_range the bytes published are the bytes written.
func TestPendingWritesBack(t *testing.T) {
	type span struct{ off, n int64 }
	var got []span
	dir := t.TempDir()
	p, err := create(dir, "t.tar.zst")
	if err != nil {
		t.Fatal(err)
	}
	defer p.abort()
	p.writeback = func(off, n int64) {
		if off+n > p.n {
			t.Errorf("writeback of [%d, %d) with %d bytes written", off, off+n, p.n)
		}
		got = append(got, span{off, n})
	}
	chunk := bytes.Repeat([]byte{'x'}, 3<<20) // not a divisor of writebackEvery
	write := func(total int) {
		for w := 0; w < total; w += len(chunk) {
			if _, err := p.Write(chunk); err != nil {
				t.Fatal(err)
			}
		}
	}
	write(2*writebackEvery + 1)
	want := []span{{0, 33 << 20}, {33 << 20, 33 << 20}}
	if !slices.Equal(got, want) {
		t.Errorf("writebacks %v, want %v", got, want)
	}
	if err := p.reset(); err != nil {
		t.Fatal(err)
	}
	got = nil
	write(writebackEvery)
	if want := []span{{0, 33 << 20}}; !slices.Equal(got, want) {
		t.Errorf("after reset: writebacks %v, want %v", got, want)
	}

	p.writeback = nil // sync_file_range(2) itself
	write(writebackEvery)
	written := p.n
	if _, err := p.publish(publicMode); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, "t.tar.zst"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() != written {
		t.Errorf("published %d bytes, wrote %d", fi.Size(), written)
	}
}
