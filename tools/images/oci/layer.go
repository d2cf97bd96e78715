// Package oci writes container images as reproducible OCI image layout
// tarballs: layers from in-memory files, sorted, with fixed timestamps and
// numeric owners, so that the same inputs give the same bytes.
package oci

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"path"
	"slices"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// File is one regular file of a layer.
type File struct {
	Path   string            // absolute path in the image, e.g. /pause
	Mode   int64             // permission bits
	UID    int               // numeric owner
	GID    int               // numeric group
	Data   []byte            // content
	Xattrs map[string]string // extended attributes, e.g. security.capability
}

// LayerTar returns the uncompressed tar of files: their parent directories
// (0755, root) and the files, sorted by path, every entry stamped mtime.
func LayerTar(files []File, mtime time.Time) ([]byte, error) {
	type entry struct {
		hdr  *tar.Header
		data []byte
	}
	entries := map[string]entry{}
	for _, f := range files {
		name := strings.TrimPrefix(path.Clean(f.Path), "/")
		if !path.IsAbs(f.Path) || name == "" || name == "." {
			return nil, fmt.Errorf("layer file %q: want an absolute file path", f.Path)
		}
		if _, dup := entries[name]; dup {
			return nil, fmt.Errorf("layer file %q: listed twice", f.Path)
		}
		hdr := &tar.Header{
			Typeflag: tar.TypeReg,
			Name:     name,
			Mode:     f.Mode,
			Uid:      f.UID,
			Gid:      f.GID,
			Size:     int64(len(f.Data)),
			ModTime:  mtime,
			Format:   tar.FormatUSTAR,
		}
		if len(f.Xattrs) > 0 {
			hdr.Format = tar.FormatPAX
			hdr.PAXRecords = map[string]string{}
			for k, v := range f.Xattrs {
				// The record containerd's and Docker's tar appliers read.
				hdr.PAXRecords["SCHILY.xattr."+k] = v
			}
		}
		entries[name] = entry{hdr: hdr, data: f.Data}
		for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
			key := dir + "/"
			if _, ok := entries[key]; ok {
				continue
			}
			entries[key] = entry{hdr: &tar.Header{
				Typeflag: tar.TypeDir,
				Name:     key,
				Mode:     0o755,
				ModTime:  mtime,
				Format:   tar.FormatUSTAR,
			}}
		}
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	slices.Sort(names)

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		e := entries[n]
		if err := tw.WriteHeader(e.hdr); err != nil {
			return nil, fmt.Errorf("layer %s: %w", n, err)
		}
		if _, err := tw.Write(e.data); err != nil {
			return nil, fmt.Errorf("layer %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return nil, fmt.Errorf("layer: %w", err)
	}
	return buf.Bytes(), nil
}

// Layer returns the gzip-compressed OCI layer of an uncompressed layer tar
// (see LayerTar). It compresses once and keeps the result in memory.
func Layer(uncompressed []byte) (v1.Layer, error) {
	l, err := tarball.LayerFromOpener(
		func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(uncompressed)), nil },
		tarball.WithMediaType(types.OCILayer),
		tarball.WithCompressedCaching,
	)
	if err != nil {
		return nil, fmt.Errorf("compress layer: %w", err)
	}
	return l, nil
}
