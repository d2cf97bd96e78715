package main

import (
	"archive/tar"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestSourceDateEpoch: the SOURCE_DATE_EPOCH the command is started with
// dates every entry of the overlay tars, and a run with another value
// rewrites them (the value is one of generate's inputs); plan, started
// with the same value, finds nothing to change.
func TestSourceDateEpoch(t *testing.T) {
	out := t.TempDir()
	for _, c := range []struct {
		env  string
		want int64
	}{{"1700000000", 1700000000}, {"", 0}} {
		t.Setenv("SOURCE_DATE_EPOCH", c.env)
		if o, code := hardway(t, "generate", "-f", seed, "--dir", out); code != 0 {
			t.Fatalf("generate with SOURCE_DATE_EPOCH=%q: %s", c.env, o)
		}
		tars, _ := filepath.Glob(filepath.Join(out, "kublxc", "nodes", "*", "overlay.tar"))
		if len(tars) == 0 {
			t.Fatal("no nodes/*/overlay.tar")
		}
		for _, p := range tars {
			f, err := os.Open(p)
			if err != nil {
				t.Fatal(err)
			}
			tr := tar.NewReader(f)
			for {
				h, err := tr.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", p, err)
				}
				if h.ModTime.Unix() != c.want {
					t.Errorf("SOURCE_DATE_EPOCH=%q: %s: %s dated %d, want %d", c.env, p, h.Name, h.ModTime.Unix(), c.want)
					break
				}
			}
			f.Close()
		}
		if o, code := hardway(t, "plan", "-f", seed, "--dir", out); code != 0 {
			t.Errorf("plan with SOURCE_DATE_EPOCH=%q after generate with it: exit %d\n%s", c.env, code, o)
		}
	}
}
