package bake

import (
	"bytes"
	"context"
	"io"
	"os"
	"sync"
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
	var read int64
	var mu sync.Mutex
	fo, err := newFanOut(context.Background(), base, 3, func(n int64) { mu.Lock(); read += n; mu.Unlock() })
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
	if read != int64(len(raw)) {
		t.Errorf("counted %d bytes read of %d", read, len(raw))
	}

	// All readers gone: the fan-out ends without reading the rest.
	fo, err = newFanOut(context.Background(), base, 2, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fo.readers {
		r.Close()
	}
	<-fo.done
}
