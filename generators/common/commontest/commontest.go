// Package commontest is what the role generators' tests share: a generation
// context built from an example spec with a real PKI, a tree's file on disk
// for the real tools to read, and the rule for tests that need such a tool.
package commontest

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

var (
	mu    sync.Mutex
	cache = map[string]*nodegen.Context{}
)

// Context loads the spec at path (relative to the calling test's package),
// validates it, applies mutate (before defaults, as if the file said so) and
// issues its PKI in a temporary directory. Unmutated contexts are cached for
// the test binary's life: RSA examples take seconds to issue.
func Context(t testing.TB, path string, mutate ...func(*spec.Cluster)) *nodegen.Context {
	t.Helper()
	if len(mutate) == 0 {
		mu.Lock()
		defer mu.Unlock()
		if x, ok := cache[path]; ok {
			return x
		}
	}
	doc, err := spec.LoadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	for _, m := range mutate {
		m(doc.Cluster)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatalf("%s: %v", path, is)
	}
	d, err := output.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Ensure(doc.Cluster, d.Sub("pki", "pki"), pki.Options{})
	if err != nil {
		t.Fatalf("%s: pki: %v", path, err)
	}
	x := nodegen.New(doc.Cluster, b)
	if len(mutate) == 0 {
		cache[path] = x
	}
	return x
}

// Hostile returns a context of the spec at path (validated, with the PKI of
// Context's) whose cluster edit then changes behind validation's back: the
// values validation would refuse, for the tests that show that the
// generators refuse or quote them on their own. Each call has its own copy
// of the cluster.
func Hostile(t testing.TB, path string, edit func(*spec.Cluster)) *nodegen.Context {
	t.Helper()
	x := Context(t, path)
	doc, err := spec.LoadFile(path)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	if is := doc.Validate(spec.Options{}).Errors(); len(is) > 0 {
		t.Fatalf("%s: %v", path, is)
	}
	edit(doc.Cluster)
	return nodegen.New(doc.Cluster, x.PKI)
}

// Node returns the node called name, failing the test if there is none.
func Node(t testing.TB, x *nodegen.Context, name string) spec.Node {
	t.Helper()
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s in %s", name, x.C.Metadata.Name)
	}
	return n
}

// File returns the content of the regular file p of tree tr.
func File(t testing.TB, tr *tree.Tree, p string) []byte {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("tree %s has no %s", tr.Node, p)
	}
	if !e.IsFile() {
		t.Fatalf("tree %s: %s is not a regular file", tr.Node, p)
	}
	return e.Data
}

// WriteFile writes data to dir/name and returns the path.
func WriteFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// WriteRoot writes tr under dir as an emitter would, for tools that read a
// root directory (systemd-analyze --root, tmpfiles): modes only, since every
// owner in these trees is root anyway.
func WriteRoot(t testing.TB, tr *tree.Tree, dir string) {
	t.Helper()
	for _, e := range tr.Entries() {
		p := filepath.Join(dir, filepath.FromSlash(e.Path))
		var err error
		switch {
		case e.IsDir():
			err = os.MkdirAll(p, e.Mode.Perm())
		case e.IsSymlink():
			err = os.Symlink(e.Target, p)
		default:
			err = os.WriteFile(p, e.Data, e.Mode.Perm())
		}
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Tool returns the path of an external program a test needs. In -short mode
// the test is skipped; otherwise a missing tool fails it (CI installs them;
// pkg is the Debian package to install).
func Tool(t testing.TB, name, pkg string) string {
	t.Helper()
	if testing.Short() {
		t.Skipf("-short: skipping the %s check", name)
	}
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	t.Fatalf("%s not found (apt-get install -y %s): %v", name, pkg, err)
	return ""
}

// Run runs a tool and returns its combined output and whether it exited 0.
// An error other than a non-zero exit fails the test.
func Run(t testing.TB, name string, args ...string) (string, bool) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		t.Fatalf("%s: %v", name, err)
	}
	return string(out), err == nil
}

// PublicNIC gives node a second interface on vmbr0 with the default route,
// as the seed's gateway has; a mutate function for Context.
func PublicNIC(node string) func(*spec.Cluster) {
	return func(c *spec.Cluster) {
		for i := range c.Spec.Nodes {
			if c.Spec.Nodes[i].Name == node {
				c.Spec.Nodes[i].Interfaces = []spec.Interface{{Bridge: "vmbr0", Address: "203.0.113.5/24", Gateway: "203.0.113.1"}}
			}
		}
	}
}
