package bake

import (
	"archive/tar"
	"context"
	"fmt"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// BenchmarkBake bakes cp1 (with stand-in binaries) from synthetic bases of
// two sizes whose content compresses like a root file system's: MB/s is the
// base content streamed, merged, compressed and written; B/op does not grow
// with the base. hack/benchbake measures the real seed worker.
func BenchmarkBake(b *testing.B) {
	doc := testSpec(b, spec.ModeUpstream, fakeBins(b, controllerBins...), nil)
	x, _ := generated(b, doc)
	for _, size := range []int{64 << 20, 256 << 20} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			var extra []member
			text := []byte("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt\n")
			for i := 0; i*(1<<20) < size; i++ {
				content := make([]byte, 1<<20)
				for j := range content {
					content[j] = text[(j*7+i)%len(text)] ^ byte(j>>12)
				}
				extra = append(extra, member{Header: tar.Header{Typeflag: tar.TypeReg, Name: fmt.Sprintf("./var/f%04d", i), Mode: 0o644}, data: string(content)})
			}
			base := buildBase(b, extra)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := bakeOne(b, context.Background(), x, doc, base, b.TempDir(), "cp1"); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
