package images

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"testing"
)

// TestReferencesMatchGenerators: each image is named by the reference the
// generated files make nodes look for (read from the hardway module's
// source), so that an air-gapped node finds it among the imported archives.
func TestReferencesMatchGenerators(t *testing.T) {
	for _, tc := range []struct {
		image, file, constant string
	}{
		{"pause", "generators/worker/worker.go", "SandboxImage"},         // containerd's sandbox image
		{"coredns", "generators/manifests/manifests.go", "CoreDNSImage"}, // the CoreDNS Deployment's image
		{"pause", "spec/images.go", "PauseImage"},                        // what validate looks for
		{"coredns", "spec/images.go", "CoreDNSImage"},
		{"smoke", "verify/check_worker.go", "SmokeImage"}, // the worker checks' pods
	} {
		got := stringConst(t, filepath.Join(repoRoot(t), tc.file), tc.constant)
		if want := catalogImage(t, tc.image).Ref(); got != want {
			t.Errorf("%s: %s = %q, but make images builds %s", tc.file, tc.constant, got, want)
		}
	}
}

// stringConst returns the value of a string constant declared in file: a
// string literal, or spec.<Name>, a constant of the spec package's images.go.
func stringConst(t testing.TB, file, name string) string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range f.Decls {
		gd, ok := d.(*ast.GenDecl)
		if !ok || gd.Tok != token.CONST {
			continue
		}
		for _, s := range gd.Specs {
			vs := s.(*ast.ValueSpec)
			for i, n := range vs.Names {
				if n.Name != name || i >= len(vs.Values) {
					continue
				}
				if sel, ok := vs.Values[i].(*ast.SelectorExpr); ok {
					if x, ok := sel.X.(*ast.Ident); ok && x.Name == "spec" {
						return stringConst(t, filepath.Join(repoRoot(t), "spec", "images.go"), sel.Sel.Name)
					}
				}
				lit, ok := vs.Values[i].(*ast.BasicLit)
				if !ok || lit.Kind != token.STRING {
					t.Fatalf("%s: %s is not a string literal", file, name)
				}
				v, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
		}
	}
	t.Fatalf("%s declares no constant %s", file, name)
	return ""
}
