package images

import (
	"bytes"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/hardway-dev/hardway/tools/images/oci"
)

// TestArchives builds every image of the catalog twice and checks that the
// archives are the same bytes and hold what containerd's importer and a
// kubelet need: the reference, linux/amd64, the entrypoint and user, a
// layer of sorted root-owned members at the fixed time.
func TestArchives(t *testing.T) {
	for _, im := range Catalog {
		t.Run(im.Name, func(t *testing.T) {
			first := archiveBytes(t, im)
			if second := archiveBytes(t, im); !bytes.Equal(first, second) {
				t.Fatalf("%s: two builds from the same inputs differ", im.Ref())
			}
			l := readLayout(t, first)
			for _, h := range l.headers {
				if !h.ModTime.Equal(created) || h.Uid != 0 || h.Gid != 0 {
					t.Errorf("archive member %s: mtime %v uid %d gid %d, want %v 0 0", h.Name, h.ModTime, h.Uid, h.Gid, created)
				}
			}
			if got := string(l.files["oci-layout"]); got != `{"imageLayoutVersion":"1.0.0"}` {
				t.Errorf("oci-layout = %q", got)
			}

			idx, m, cfg := l.image(t)
			d := idx.Manifests[0]
			if got := d.Annotations[oci.AnnotationImageName]; got != im.Ref() {
				t.Errorf("index %s = %q, want %q", oci.AnnotationImageName, got, im.Ref())
			}
			if got := d.Annotations[oci.AnnotationRefName]; got != im.Tag {
				t.Errorf("index %s = %q, want %q", oci.AnnotationRefName, got, im.Tag)
			}
			if d.Platform == nil || d.Platform.OS != "linux" || d.Platform.Architecture != "amd64" {
				t.Errorf("index platform = %+v, want linux/amd64", d.Platform)
			}
			if d.MediaType != types.OCIManifestSchema1 || m.Config.MediaType != types.OCIConfigJSON || m.Layers[0].MediaType != types.OCILayer {
				t.Errorf("media types %s, %s, %s: want OCI's", d.MediaType, m.Config.MediaType, m.Layers[0].MediaType)
			}
			if cfg.OS != "linux" || cfg.Architecture != "amd64" || !cfg.Created.Time.Equal(created) {
				t.Errorf("config: %s/%s created %v", cfg.OS, cfg.Architecture, cfg.Created.Time)
			}
			if cfg.RootFS.Type != "layers" || len(cfg.RootFS.DiffIDs) != 1 {
				t.Errorf("config rootfs: %+v, want one layer", cfg.RootFS)
			}
			if !slices.Equal(cfg.Config.Entrypoint, []string{im.Path}) || cfg.Config.User != im.User {
				t.Errorf("config: entrypoint %q user %q, want [%s] %q", cfg.Config.Entrypoint, cfg.Config.User, im.Path, im.User)
			}

			files := l.layerFiles(t, m)
			if !slices.IsSorted(files.names) {
				t.Errorf("layer members not sorted: %q", files.names)
			}
			for _, h := range files.headers {
				if !h.ModTime.Equal(created) || h.Uid != 0 || h.Gid != 0 {
					t.Errorf("layer member %s: mtime %v uid %d gid %d", h.Name, h.ModTime, h.Uid, h.Gid)
				}
			}
			prog := files.headers[strings.TrimPrefix(im.Path, "/")]
			if prog == nil || prog.Mode != 0o755 {
				t.Fatalf("layer: %s missing or not 0755: %+v", im.Path, prog)
			}
			for k, v := range im.Xattrs {
				if got := prog.PAXRecords["SCHILY.xattr."+k]; got != v {
					t.Errorf("%s: xattr %s = %q, want %q", im.Path, k, got, v)
				}
			}
		})
	}
}

// TestLayerTarRejects: file paths that would make a wrong layer are errors.
func TestLayerTarRejects(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files []oci.File
	}{
		{"relative", []oci.File{{Path: "pause"}}},
		{"root", []oci.File{{Path: "/"}}},
		{"twice", []oci.File{{Path: "/a"}, {Path: "/./a"}}},
	} {
		if _, err := oci.LayerTar(tc.files, created); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
	}
}
