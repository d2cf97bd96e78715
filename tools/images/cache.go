package images

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/hardway-dev/hardway/tools/images/oci"
)

// digestSuffix names the file beside an archive that records the digest of
// the image manifest it holds: an archive whose image has not changed is
// left as it is.
const digestSuffix = ".digest"

// Write builds every image of the catalog into dir, as <name>-<tag>.tar, and
// returns the archives' absolute paths in catalog order. An archive whose
// recorded manifest digest is that of the image just built is kept as it is.
func Write(ctx context.Context, dir string, o Options, log *slog.Logger) ([]string, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	for _, im := range Catalog {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := write(ctx, dir, im, o, log)
		if err != nil {
			return nil, err
		}
		paths = append(paths, p)
	}
	return paths, nil
}

func write(ctx context.Context, dir string, im Image, o Options, log *slog.Logger) (string, error) {
	start := time.Now()
	dest := filepath.Join(dir, im.Archive())
	img, err := Build(ctx, im, o)
	if err != nil {
		return "", err
	}
	digest, err := img.Digest()
	if err != nil {
		return "", fmt.Errorf("%s: %w", im.Ref(), err)
	}
	want := []byte(digest.String() + "\n")
	have, err := os.ReadFile(dest + digestSuffix)
	if err == nil && bytes.Equal(have, want) {
		if _, err := os.Stat(dest); err == nil {
			log.Info("image up to date", "ref", im.Ref(), "digest", digest.String(), "archive", dest)
			return dest, nil
		}
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}

	err = atomicWrite(dest, func(f *os.File) error {
		return oci.WriteArchive(f, img, im.Ref(), o.Created)
	})
	if err == nil {
		err = atomicWrite(dest+digestSuffix, func(f *os.File) error {
			_, err := f.Write(want)
			return err
		})
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", im.Ref(), err)
	}
	log.Info("image built", "ref", im.Ref(), "digest", digest.String(), "archive", dest,
		"seconds", time.Since(start).Round(100*time.Millisecond).Seconds())
	return dest, nil
}

// atomicWrite writes dest through a temporary file in its directory that
// is renamed into place once complete.
func atomicWrite(dest string, fill func(*os.File) error) error {
	f, err := os.CreateTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".tmp.")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name()) // fails harmlessly once renamed
	if err := fill(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), dest)
}
