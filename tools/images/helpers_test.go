package images

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/hardway-dev/hardway/tools/images/oci"
)

// created is the timestamp of the test images.
var created = time.Unix(1700000000, 0).UTC()

// repoRoot is hardway's repository, two levels up from this module.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// toolDir is the bin dir of a hack/tools.sh group: $HARDWAY_BIN_DIR when it
// holds bin (make tools links every pinned binary there), else the cache.
// Outside -short a missing tool fails the test with the command that builds it.
func toolDir(t testing.TB, group, bin string) string {
	t.Helper()
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		if _, err := os.Stat(filepath.Join(d, bin)); err == nil {
			return d
		}
	}
	out, err := exec.Command(filepath.Join(repoRoot(t), "hack", "tools.sh"), "path", group).Output()
	if err == nil {
		return strings.TrimSpace(string(out))
	}
	if testing.Short() {
		t.Skipf("-short: %s is not built (hack/tools.sh %s)", bin, group)
	}
	t.Fatalf("%s is not built: run `hack/tools.sh %s` (make tools / make images) or set HARDWAY_BIN_DIR", bin, group)
	return ""
}

// options are the build options of the tests; the CoreDNS binary only when
// the catalog row needs it.
func options(t testing.TB, im Image) Options {
	t.Helper()
	o := Options{ModuleDir: ".", Created: created}
	if im.Name == "coredns" {
		o.CoreDNS = filepath.Join(toolDir(t, "coredns", "coredns"), "coredns")
	}
	return o
}

// archiveBytes builds im and returns its archive.
func archiveBytes(t testing.TB, im Image) []byte {
	t.Helper()
	img, err := Build(context.Background(), im, options(t, im))
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := oci.WriteArchive(&buf, img, im.Ref(), created); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// layout is an archive read back: its members by name, in order.
type layout struct {
	names   []string
	headers map[string]*tar.Header
	files   map[string][]byte
}

func readLayout(t testing.TB, archive []byte) layout {
	t.Helper()
	l := layout{headers: map[string]*tar.Header{}, files: map[string][]byte{}}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return l
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		l.names = append(l.names, h.Name)
		l.headers[h.Name] = h
		l.files[h.Name] = data
	}
}

func (l layout) json(t testing.TB, name string, v any) {
	t.Helper()
	data, ok := l.files[name]
	if !ok {
		t.Fatalf("archive has no %s (members: %q)", name, l.names)
	}
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
}

func blobName(h v1.Hash) string { return "blobs/" + h.Algorithm + "/" + h.Hex }

// image follows the archive's index to its one manifest and config.
func (l layout) image(t testing.TB) (v1.IndexManifest, v1.Manifest, v1.ConfigFile) {
	t.Helper()
	var idx v1.IndexManifest
	l.json(t, "index.json", &idx)
	if len(idx.Manifests) != 1 {
		t.Fatalf("index.json lists %d manifests, want 1", len(idx.Manifests))
	}
	var m v1.Manifest
	l.json(t, blobName(idx.Manifests[0].Digest), &m)
	var cfg v1.ConfigFile
	l.json(t, blobName(m.Config.Digest), &cfg)
	return idx, m, cfg
}

// layerFiles returns the members of the image's one layer.
func (l layout) layerFiles(t testing.TB, m v1.Manifest) layout {
	t.Helper()
	if len(m.Layers) != 1 {
		t.Fatalf("manifest has %d layers, want 1", len(m.Layers))
	}
	zr, err := gzip.NewReader(bytes.NewReader(l.files[blobName(m.Layers[0].Digest)]))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return readLayout(t, raw)
}

// extract writes the program of im's archive to a temp file and returns its path.
func extract(t testing.TB, im Image, archive []byte) string {
	t.Helper()
	l := readLayout(t, archive)
	_, m, _ := l.image(t)
	files := l.layerFiles(t, m)
	data, ok := files.files[strings.TrimPrefix(im.Path, "/")]
	if !ok {
		t.Fatalf("%s: layer has no %s", im.Ref(), im.Path)
	}
	p := filepath.Join(t.TempDir(), filepath.Base(im.Path))
	if err := os.WriteFile(p, data, 0o755); err != nil {
		t.Fatal(err)
	}
	return p
}

func catalogImage(t testing.TB, name string) Image {
	t.Helper()
	for _, im := range Catalog {
		if im.Name == name {
			return im
		}
	}
	t.Fatalf("no %s in the catalog", name)
	return Image{}
}
