package rootfs

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
)

// clean is the absolute clean path of a tar member name: "./etc/x",
// "etc/x/" and "/etc/x" are all /etc/x; ".", "./" and "" are /. A name that
// tries to leave the root ("../x") stays inside it.
func clean(name string) string { return path.Clean("/" + name) }

// memberName is the name a path gets in the merged stream: relative to the
// root and "./"-prefixed, as `tar -C dir .` writes it and pct's
// `--anchored --exclude ./dev/*` expects; directories end in "/".
func memberName(p string, dir bool) string {
	switch {
	case p == "/":
		return "./"
	case dir:
		return "." + p + "/"
	}
	return "." + p
}

// under reports whether p is strictly below directory d.
func under(p, d string) bool {
	if d == "/" {
		return p != "/"
	}
	return len(p) > len(d) && p[len(d)] == '/' && p[:len(d)] == d
}

// baseStream reads a base tarball member by member, turning every way it can
// be broken (bad compression, bad checksum, truncation, a missing
// end-of-archive marker, a bad header) into an error that says so.
type baseStream struct {
	dec     io.ReadCloser
	skipped func() []Skipped // runs of an indexed base's frames its decoder passed over (PassOver)
	comp    Compression
	tail    *zeroTail
	tr      *tar.Reader
	members int
	last    string // name of the last member read, for messages
}

// openBase starts reading the (compressed) tarball r.
func openBase(r io.Reader) (*baseStream, error) {
	var dec io.ReadCloser
	var comp Compression
	var skipped func() []Skipped
	if d, ok := r.(decoded); ok {
		dec, comp, skipped = io.NopCloser(d.r), d.c, d.skipped
	} else {
		var err error
		if dec, comp, err = Decompress(r); err != nil {
			return nil, &InputError{err}
		}
	}
	tail := &zeroTail{r: dec}
	return &baseStream{dec: dec, comp: comp, skipped: skipped, tail: tail, tr: tar.NewReader(tail)}, nil
}

// next returns the next member and its clean path, or io.EOF after the last
// one once the whole stream (up to the compression's own checksum) has been
// verified.
func (b *baseStream) next(ctx context.Context) (*tar.Header, string, error) {
	if err := ctx.Err(); err != nil {
		return nil, "", err
	}
	h, err := b.tr.Next()
	switch {
	case err == io.EOF:
		return nil, "", b.finish()
	case err != nil:
		return nil, "", b.broken(err)
	}
	b.members++
	b.last = h.Name
	return h, clean(h.Name), nil
}

// finish checks what follows the last member: tar's end-of-archive marker
// (two zero blocks; an archive cut at a member boundary has none), and the
// rest of the compressed stream, whose checksum the decoder verifies at its end.
func (b *baseStream) finish() error {
	if b.tail.zeros < 512 {
		return &InputError{fmt.Errorf("truncated: the archive ends after %d members (last %q) without tar's end-of-archive marker", b.members, b.last)}
	}
	if _, err := io.Copy(io.Discard, b.tail); err != nil {
		return b.broken(err)
	}
	return io.EOF
}

// broken words a read error of the stream.
func (b *baseStream) broken(err error) error {
	where := fmt.Sprintf("after %d members", b.members)
	if b.last != "" {
		where += fmt.Sprintf(" (last %q)", b.last)
	}
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return &InputError{fmt.Errorf("truncated %s stream %s: %w", b.comp, where, err)}
	case errors.Is(err, tar.ErrHeader):
		return &InputError{fmt.Errorf("corrupt tar archive %s: %w", where, err)}
	}
	return &InputError{fmt.Errorf("corrupt %s stream %s: %w", b.comp, where, err)}
}

// Decoded is r, the tar stream that Decompress found compressed with c,
// for readers that share one decompression of a base: Scan, Merge and
// MergeScan read it as it is, and word its errors as c's.
func Decoded(r io.Reader, c Compression) io.Reader { return decoded{r: r, c: c} }

// DecodedPassing is Decoded for a stream whose decoder passed over runs
// of an indexed base's frames (PassOver): skipped says which, once r is
// read to its end.
func DecodedPassing(r io.Reader, c Compression, skipped func() []Skipped) io.Reader {
	return decoded{r: r, c: c, skipped: skipped}
}

type decoded struct {
	r       io.Reader
	c       Compression
	skipped func() []Skipped
}

func (d decoded) Read(p []byte) (int, error) { return d.r.Read(p) }

// InputError is a base tarball that cannot be read (not a tarball,
// corrupt, truncated) or is refused (UnsafeBaseError), as opposed to a
// problem of the layers or of the output.
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// read wraps an error met while reading the current member's content.
func (b *baseStream) read(err error) error {
	if err == nil {
		return nil
	}
	return b.broken(err)
}

// close releases the decoder.
func (b *baseStream) close() { b.dec.Close() }

// zeroTail counts how many zero bytes end what has been read so far: at the
// end of a well-formed tar stream, at least one 512-byte zero block.
type zeroTail struct {
	r     io.Reader
	zeros int64
}

func (z *zeroTail) Read(p []byte) (int, error) {
	n, err := z.r.Read(p)
	i := n
	for i > 0 && p[i-1] == 0 {
		i--
	}
	if i == 0 {
		z.zeros += int64(n)
	} else {
		z.zeros = int64(n - i)
	}
	return n, err
}
