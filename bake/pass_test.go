package bake

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// TestFanOut: every reader of a fanOut gets the whole decoded base, also
// when another one stops early; once all are closed it stops reading.
func TestFanOut(t *testing.T) {
	base := buildBase(t, nil)
	raw, err := os.ReadFile(base)
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	want, err := io.ReadAll(dec)
	dec.Close()
	if err != nil {
		t.Fatal(err)
	}
	var read, read2 atomic.Int64
	fo, err := newFanOut(context.Background(), base, 3, []*atomic.Int64{&read, &read2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := make([][]byte, 3)
	var wg sync.WaitGroup
	for i, r := range fo.readers {
		wg.Go(func() {
			defer r.Close()
			if i == 1 {
				var one [1]byte
				r.stream.Read(one[:])
				return // stops early
			}
			got[i], _ = io.ReadAll(r.stream)
		})
	}
	wg.Wait()
	<-fo.done
	for _, i := range []int{0, 2} {
		if !bytes.Equal(got[i], want) {
			t.Errorf("reader %d got %d bytes, want the %d of the decoded base", i, len(got[i]), len(want))
		}
	}
	for _, n := range []int64{read.Load(), read2.Load()} {
		if n != int64(len(raw)) {
			t.Errorf("counted %d bytes read of %d", n, len(raw))
		}
	}

	// All readers gone: the fan-out ends without reading the rest.
	fo, err = newFanOut(context.Background(), base, 2, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fo.readers {
		r.Close()
	}
	<-fo.done
}
