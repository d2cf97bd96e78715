package oci

import (
	"archive/tar"
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Annotations on the index's manifest descriptor that name the image.
const (
	// AnnotationImageName is the full reference; containerd's importer
	// (`ctr images import`) names the image after it.
	AnnotationImageName = "io.containerd.image.name"
	// AnnotationRefName is the OCI image layout's name: the tag alone, as
	// `docker save` writes it.
	AnnotationRefName = "org.opencontainers.image.ref.name"
)

// blob is one file under blobs/ of the layout.
type blob struct {
	digest v1.Hash
	size   int64
	open   func() (io.ReadCloser, error)
}

// WriteArchive writes img as an OCI image layout tarball whose index names
// it ref (a tagged reference such as registry.k8s.io/pause:3.10.1), the
// blobs sorted by digest, every entry stamped mtime and owned by root.
func WriteArchive(w io.Writer, img v1.Image, ref string, mtime time.Time) error {
	tag, err := name.NewTag(ref, name.StrictValidation)
	if err != nil {
		return fmt.Errorf("image reference %q: %w", ref, err)
	}
	manifest, err := img.RawManifest()
	if err != nil {
		return fmt.Errorf("%s: manifest: %w", ref, err)
	}
	mdigest, msize, err := v1.SHA256(bytes.NewReader(manifest))
	if err != nil {
		return err
	}
	mt, err := img.MediaType()
	if err != nil {
		return fmt.Errorf("%s: media type: %w", ref, err)
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return fmt.Errorf("%s: config: %w", ref, err)
	}
	rawCfg, err := img.RawConfigFile()
	if err != nil {
		return fmt.Errorf("%s: config: %w", ref, err)
	}
	cdigest, csize, err := v1.SHA256(bytes.NewReader(rawCfg))
	if err != nil {
		return err
	}

	index := v1.IndexManifest{
		SchemaVersion: 2,
		MediaType:     types.OCIImageIndex,
		Manifests: []v1.Descriptor{{
			MediaType: mt,
			Digest:    mdigest,
			Size:      msize,
			Platform:  &v1.Platform{OS: cfg.OS, Architecture: cfg.Architecture, Variant: cfg.Variant},
			Annotations: map[string]string{
				AnnotationImageName: tag.Name(),
				AnnotationRefName:   tag.TagStr(),
			},
		}},
	}
	rawIndex, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("%s: index: %w", ref, err)
	}

	blobs := []blob{
		{mdigest, msize, opener(manifest)},
		{cdigest, csize, opener(rawCfg)},
	}
	layers, err := img.Layers()
	if err != nil {
		return fmt.Errorf("%s: layers: %w", ref, err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			return fmt.Errorf("%s: layer digest: %w", ref, err)
		}
		s, err := l.Size()
		if err != nil {
			return fmt.Errorf("%s: layer size: %w", ref, err)
		}
		blobs = append(blobs, blob{d, s, l.Compressed})
	}
	slices.SortFunc(blobs, func(a, b blob) int {
		return cmp.Compare(a.digest.String(), b.digest.String())
	})
	blobs = slices.CompactFunc(blobs, func(a, b blob) bool { return a.digest == b.digest })

	tw := tar.NewWriter(w)
	file := func(n string, size int64) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: size, ModTime: mtime, Format: tar.FormatUSTAR})
	}
	dir := func(n string) error {
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755, ModTime: mtime, Format: tar.FormatUSTAR})
	}
	small := func(n string, data []byte) error {
		if err := file(n, int64(len(data))); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	if err := small("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`)); err != nil {
		return fmt.Errorf("%s: write: %w", ref, err)
	}
	if err := small("index.json", rawIndex); err != nil {
		return fmt.Errorf("%s: write: %w", ref, err)
	}
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := dir(d); err != nil {
			return fmt.Errorf("%s: write: %w", ref, err)
		}
	}
	for _, b := range blobs {
		n := "blobs/" + b.digest.Algorithm + "/" + b.digest.Hex
		if err := file(n, b.size); err != nil {
			return fmt.Errorf("%s: write %s: %w", ref, n, err)
		}
		if err := copyBlob(tw, b); err != nil {
			return fmt.Errorf("%s: write %s: %w", ref, n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("%s: write: %w", ref, err)
	}
	return nil
}

// copyBlob streams b into the archive and checks it is the size it claimed.
func copyBlob(w io.Writer, b blob) error {
	rc, err := b.open()
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	if err != nil {
		return err
	}
	if n != b.size {
		return fmt.Errorf("blob is %d bytes, its descriptor says %d", n, b.size)
	}
	return rc.Close()
}

func opener(b []byte) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }
}
