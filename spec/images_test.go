package spec

import (
	"archive/tar"
	"bytes"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// exceptImages drops the warnings about image archives: missing ones,
// which every test spec with workers and no spec.images gets, and archives
// not built yet (the examples list what `make images` builds).
func exceptImages(is Issues) Issues {
	return slices.DeleteFunc(slices.Clone(is), func(i Issue) bool {
		return strings.HasPrefix(i.Path, "spec.images") && i.Warning
	})
}

// writeTar writes a tar archive of name → content.
func writeTar(t *testing.T, file string, members map[string]string) {
	t.Helper()
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, name := range slices.Sorted(maps.Keys(members)) {
		data := members[name]
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	tw.Close()
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// validateImages validates testdata/base.yaml, with spec.images set to
// images (a YAML list; none when empty), as dir/cluster.yaml, reading the
// archives.
func validateImages(t *testing.T, dir, images string) Issues {
	t.Helper()
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	data := string(base)
	if images != "" {
		data = strings.Replace(data, "spec:\n", "spec:\n  images: "+images+"\n", 1)
	}
	file := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	doc, err := LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return doc.Validate(Options{Artifacts: true})
}

// ociIndex is an index.json naming refs as containerd's import reads them.
func ociIndex(refs ...string) string {
	var ms []string
	for _, r := range refs {
		ms = append(ms, `{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:`+strings.Repeat("0", 64)+`","size":1,"annotations":{"io.containerd.image.name":"`+r+`","org.opencontainers.image.ref.name":"x"}}`)
	}
	return `{"schemaVersion":2,"manifests":[` + strings.Join(ms, ",") + `]}`
}

// TestRequiredImagesWarning: a spec with workers warns, naming the missing
// references, unless its archives provide pause and CoreDNS; read from the
// archives' index.json (OCI layout) or manifest.json (docker save).
func TestRequiredImagesWarning(t *testing.T) {
	dir := t.TempDir()
	writeTar(t, filepath.Join(dir, "images/pause.tar"), map[string]string{"oci-layout": "{}", "index.json": ociIndex(PauseImage)})
	writeTar(t, filepath.Join(dir, "images/coredns.tar"), map[string]string{"manifest.json": `[{"Config":"c.json","RepoTags":["` + CoreDNSImage + `"],"Layers":[]}]`})
	writeTar(t, filepath.Join(dir, "images/other.tar"), map[string]string{"./index.json": ociIndex("example.com/app:v1")})
	for _, c := range []struct {
		name, images string
		want         []string // references the warning names; none: no warning
	}{
		{"none", "", []string{PauseImage, CoreDNSImage}},
		{"both", "[images/pause.tar, images/coredns.tar]", nil},
		{"no CoreDNS", "[images/pause.tar, images/other.tar]", []string{CoreDNSImage}},
		{"no pause", "[./images/coredns.tar]", []string{PauseImage}},
	} {
		t.Run(c.name, func(t *testing.T) {
			is := validateImages(t, dir, c.images)
			var got []Issue
			for _, i := range is {
				if i.Path == "spec.images" {
					got = append(got, i)
				}
			}
			if len(is.Errors()) > 0 {
				t.Fatalf("errors: %v", is.Errors())
			}
			if len(c.want) == 0 {
				if len(got) > 0 {
					t.Errorf("unexpected: %v", got)
				}
				return
			}
			if len(got) != 1 || !got[0].Warning {
				t.Fatalf("got %v, want one warning", got)
			}
			for _, r := range RequiredImages {
				if named := strings.Contains(got[0].Msg, r); named != slices.Contains(c.want, r) {
					t.Errorf("warning %q: names %s = %v, want %v", got[0].Msg, r, named, !named)
				}
			}
		})
	}
}

// TestMissingArchiveWarns: an archive not built yet is a warning of
// validate (generate does not need it; bake refuses a worker without it).
func TestMissingArchiveWarns(t *testing.T) {
	is := validateImages(t, t.TempDir(), "[images/pause-3.10.1.tar]")
	if len(is.Errors()) > 0 || len(is) != 1 || is[0].Path != "spec.images[0]" || !strings.Contains(is[0].Msg, "make images") {
		t.Errorf("got %v, want one warning about spec.images[0] naming make images", is)
	}
}
