package archcheck

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const root = "../.."

// modules are the directories of the modules the table covers.
var modules = []string{".", "packer"}

// rel is import path p relative to Module, and whether p is in it.
func rel(p string) (string, bool) {
	if p == Module {
		return "", true
	}
	return strings.CutPrefix(p, Module+"/")
}

// graph lists the packages of dir's module with `go list -deps`'s answer:
// each package's direct imports and, to check that they are the whole
// graph, its deps; both cut down to Module's packages.
func graph(t *testing.T, dir string) (pkgs []Package, deps map[string][]string) {
	t.Helper()
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}|{{join .Imports \" \"}}|{{join .Deps \" \"}}", "./...")
	cmd.Dir = filepath.Join(root, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list in %s: %v\n%s", dir, err, stderr.Bytes())
	}
	ours := func(list string) []string {
		var r []string
		for _, p := range strings.Fields(list) {
			if q, ok := rel(p); ok {
				r = append(r, q)
			}
		}
		return r
	}
	deps = map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Split(sc.Text(), "|")
		p, ok := rel(f[0])
		if len(f) != 3 || !ok {
			t.Fatalf("go list in %s: unexpected line %q", dir, sc.Text())
		}
		pkgs = append(pkgs, Package{Path: p, Imports: ours(f[1])})
		deps[p] = ours(f[2])
	}
	return pkgs, deps
}

// TestImportRules holds both modules to docs/architecture.md's table.
func TestImportRules(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(root, "docs/architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := ParseRules(string(doc))
	if err != nil {
		t.Fatalf("docs/architecture.md: %v", err)
	}
	var all []Package
	deps := map[string][]string{}
	for _, m := range modules {
		pkgs, d := graph(t, m)
		for _, p := range pkgs {
			if _, dup := deps[p.Path]; !dup {
				all = append(all, p)
				deps[p.Path] = d[p.Path]
			}
		}
	}
	byPath := map[string]Package{}
	for _, p := range all {
		byPath[p.Path] = p
	}
	// The imports must span what go list -deps reports, or Check would
	// miss a package the modules do not list (none should be outside).
	for _, p := range all {
		var got []string
		for _, c := range reach(byPath, p.Path) {
			got = append(got, c[len(c)-1])
		}
		slices.Sort(got)
		want := slices.Clone(deps[p.Path])
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%s: imports reach %v, go list -deps says %v", p.Path, got, want)
		}
	}
	for _, b := range Check(rules, all) {
		t.Error("docs/architecture.md: " + b)
	}
}

// TestCheckFindsBreaches runs Check on a made-up graph with one breach of
// each kind, so that a Check that finds nothing cannot pass.
func TestCheckFindsBreaches(t *testing.T) {
	rules, err := ParseRules(strings.Join([]string{
		"| Package | Stage | Owns | Must not import |",
		"|---|---|---|---|",
		"| `spec` | 0 | the spec | `...` |",
		"| `gen/...` | 2 | generators | `out` |",
		"| `gen/x` | 2 | one generator | — |",
		"| `out` | 0 | output | `...` |",
		"| `bake` | 4 | bake | — |",
		"| `stale` | 1 | nothing | — |",
	}, "\n"))
	if err != nil {
		t.Fatal(err)
	}
	pkgs := []Package{
		{Path: "spec", Imports: []string{"out"}},          // forbidden by ...
		{Path: "gen/a", Imports: []string{"gen/b"}},       // reaches out through gen/b
		{Path: "gen/b", Imports: []string{"out", "bake"}}, // forbidden, later stage
		{Path: "gen/x", Imports: []string{"out"}},         // its own row allows it
		{Path: "out"},
		{Path: "bake", Imports: []string{"gen/x"}},
		{Path: "lost"},
	}
	want := []string{
		"gen/a: must not import out (gen/a → gen/b → out)",
		"gen/a: stage 2 imports stage 4 (gen/a → gen/b → bake)",
		"gen/b: must not import out (gen/b → out)",
		"gen/b: stage 2 imports stage 4 (gen/b → bake)",
		"lost: no row of the table matches it",
		"spec: must not import ... (spec → out)",
		"stale: the row matches no package",
	}
	if got := Check(rules, pkgs); !slices.Equal(got, want) {
		t.Errorf("Check:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
