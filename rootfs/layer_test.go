package rootfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestOpenRegular: a regular file, also behind a symlink, opens with its
// size; a directory and a missing file are refused, and so CopyFile and
// FileSHA256 refuse them too.
func TestOpenRegular(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	writeFile(t, file, "data")
	link := filepath.Join(dir, "link")
	if err := os.Symlink("f", link); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, src, err string
	}{
		{"file", file, ""},
		{"symlink", link, ""},
		{"directory", dir, "is not a regular file"},
		{"missing", filepath.Join(dir, "none"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, st, err := OpenRegular(tc.src)
			if tc.err == "" {
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if st.Size() != 4 {
					t.Errorf("size %d, want 4", st.Size())
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("OpenRegular(%s): %v, want an error with %q", tc.src, err, tc.err)
			}
			if err := CopyFile(tc.src, filepath.Join(t.TempDir(), "copy")); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("CopyFile(%s): %v, want an error with %q", tc.src, err, tc.err)
			}
			if _, err := FileSHA256(tc.src); err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("FileSHA256(%s): %v, want an error with %q", tc.src, err, tc.err)
			}
		})
	}
}
