package rootfs

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"errors"
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// Compression names a base tarball's compression, detected from its first
// bytes (never from its file name).
type Compression string

// The compressions a base may use; pct accepts the same set for templates.
const (
	Plain Compression = "tar"
	Gzip  Compression = "gzip"
	Xz    Compression = "xz"
	Zstd  Compression = "zstd"
	Bzip2 Compression = "bzip2"
)

// magics maps each compression to the bytes its streams start with.
var magics = []struct {
	c     Compression
	magic []byte
}{
	{Gzip, []byte{0x1f, 0x8b}},
	{Xz, []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}},
	{Zstd, []byte{0x28, 0xb5, 0x2f, 0xfd}},
	{Bzip2, []byte("BZh")},
}

// tarMagicOffset is where a POSIX (ustar) or GNU tar header keeps "ustar".
const tarMagicOffset = 257

// Decompress detects r's compression from its first bytes and returns the
// tar stream inside (an indexed base's frame by frame: index.go). A stream
// that is none of gzip, xz, zstd or bzip2 must be a tar archive itself (a
// ustar or GNU header). Close releases the decoder; it does not close r.
func Decompress(r io.Reader) (io.ReadCloser, Compression, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, err := br.Peek(tarMagicOffset + 8)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, "", err
	}
	if skippable(head) { // an indexed base, or a zstd stream after a skippable frame
		x, err := readIndex(br)
		if err != nil {
			return nil, "", fmt.Errorf("%s: %w", Zstd, err)
		}
		if x != nil {
			d, err := newIndexedDecoder(br, x)
			if err != nil {
				return nil, "", err
			}
			return d, Zstd, nil
		}
	}
	for _, m := range magics {
		if bytes.HasPrefix(head, m.magic) || m.c == Zstd && skippable(head) {
			rc, err := decoder(m.c, br)
			if err != nil {
				return nil, "", fmt.Errorf("%s: %w", m.c, err)
			}
			return rc, m.c, nil
		}
	}
	if len(head) < tarMagicOffset+5 || string(head[tarMagicOffset:tarMagicOffset+5]) != "ustar" {
		if len(head) == 0 {
			return nil, "", errors.New("empty file")
		}
		return nil, "", errors.New("not a tar archive, nor gzip, xz, zstd or bzip2 compressed")
	}
	return io.NopCloser(br), Plain, nil
}

// decoder returns the decompressing reader for c.
func decoder(c Compression, r io.Reader) (io.ReadCloser, error) {
	switch c {
	case Gzip:
		return gzip.NewReader(r)
	case Xz:
		x, err := xz.NewReader(r)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(x), nil
	case Zstd:
		// One goroutine: decoding a stream in several only hands blocks
		// from one to the next (its history is serial), for the same CPU
		// and four times the context switches; the other processors have
		// the template's frames to compress.
		d, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return d.IOReadCloser(), nil
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(r)), nil
	}
	return nil, fmt.Errorf("unsupported compression %q", c)
}
