package main

import (
	"bytes"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// generated reports whether a file of the module is written by
// `hack/packer.sh generate`.
func generated(rel string) bool {
	return strings.HasSuffix(rel, ".hcl2spec.go") ||
		strings.HasPrefix(rel, "docs-partials/") || strings.HasPrefix(rel, ".web-docs/")
}

// TestGeneratedUpToDate regenerates the plugin's HCL2 specs, docs partials
// and rendered docs with the pinned packer-sdc, as `hack/packer.sh generate`
// does, in a copy of the module, and compares them with the checked-in files.
func TestGeneratedUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("runs packer-sdc")
	}
	sdc := tool(t, "packer-sdc")
	module, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	root, err := filepath.Abs(repo)
	if err != nil {
		t.Fatal(err)
	}
	// packer-sdc struct-markdown needs the module under a directory named
	// packer-plugin-*.
	work := filepath.Join(t.TempDir(), "packer-plugin-hardway")
	want := map[string][]byte{}
	err = filepath.WalkDir(module, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(module, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(work, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if generated(rel) {
			want[rel] = data
			return nil
		}
		return os.WriteFile(filepath.Join(work, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = work
		cmd.Env = append(os.Environ(), "PWD="+work, "PATH="+filepath.Dir(sdc)+string(os.PathListSeparator)+os.Getenv("PATH"), "GOWORK=off", "GOFLAGS=-mod=mod")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
	}
	run("go", "mod", "edit", "-replace", "github.com/hardway-dev/hardway="+root)
	run("go", "generate", "./...")
	run(sdc, "renderdocs", "-src", "docs", "-partials", "docs-partials", "-dst", ".web-docs")

	got := map[string][]byte{}
	err = filepath.WalkDir(work, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(work, p)
		if rel = filepath.ToSlash(rel); generated(rel) {
			got[rel], err = os.ReadFile(p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for rel, data := range got {
		if w, ok := want[rel]; !ok {
			t.Errorf("%s is generated but not checked in: run hack/packer.sh generate", rel)
		} else if !bytes.Equal(w, data) {
			t.Errorf("%s is out of date: run hack/packer.sh generate", rel)
		}
	}
	for rel := range want {
		if _, ok := got[rel]; !ok {
			t.Errorf("%s is no longer generated: run hack/packer.sh generate", rel)
		}
	}
	if len(got) == 0 {
		t.Error("nothing was generated")
	}
}
