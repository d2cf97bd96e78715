package bake

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hardway-dev/hardway/rootfs"
)

// IndexBase writes the base tarball in (any compression bake reads) to
// out as an indexed base (rootfs.IndexBase): the same tar stream as
// independent zstd frames after an index of what each holds, so that a
// bake passes over the frames its templates remove (an LXC template's
// kernel and modules) without decoding them. out may be in: the indexed
// base is written next to it and renamed into place once durable, so an
// interrupted run leaves out as it was. The mode is in's.
func IndexBase(ctx context.Context, in, out string) (*rootfs.Index, error) {
	src, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer src.Close()
	st, err := src.Stat()
	if err != nil {
		return nil, err
	}
	dir, name := filepath.Split(out)
	if dir == "" {
		dir = "."
	}
	// The frames first, then the index and the frames after it: the index
	// is known only once every frame is compressed.
	frames, err := os.CreateTemp(dir, "."+name+".frames-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(frames.Name())
	defer frames.Close()
	x, err := rootfs.IndexBase(ctx, frames, src, rootfs.IndexOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	if _, err := frames.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return nil, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := x.WriteTo(tmp); err != nil {
		return nil, err
	}
	if _, err := io.Copy(tmp, frames); err != nil {
		return nil, err
	}
	if err := tmp.Chmod(st.Mode().Perm()); err != nil {
		return nil, err
	}
	if err := tmp.Sync(); err != nil {
		return nil, err
	}
	if err := tmp.Close(); err != nil {
		return nil, err
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return nil, err
	}
	d, err := os.Open(dir)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return x, d.Sync()
}
