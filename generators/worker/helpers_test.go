package worker_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// examples caches, per example spec, the parsed cluster and its PKI: issuing
// the RSA PKI of mixed.yaml takes seconds.
var (
	mu       sync.Mutex
	examples = map[string]*nodegen.Context{}
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "hardway-worker-test-")
	if err != nil {
		panic(err)
	}
	pkiRoot = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// pkiRoot holds the PKI state of every example, one directory each.
var pkiRoot string

// load parses and validates ../../examples/<name> and issues its PKI.
func load(t *testing.T, name string) *nodegen.Context {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if x, ok := examples[name]; ok {
		return x
	}
	doc, err := spec.LoadFile("../../examples/" + name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if errs := doc.Validate(spec.Options{}).Errors(); len(errs) > 0 {
		t.Fatalf("validate %s: %v", name, errs)
	}
	d, err := output.Open(filepath.Join(pkiRoot, name))
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Ensure(doc.Cluster, d.Sub("pki", "pki"), pki.Options{})
	if err != nil {
		t.Fatalf("pki of %s: %v", name, err)
	}
	x := nodegen.New(doc.Cluster, b)
	examples[name] = x
	return x
}

// variant returns a context for a copy of example name's cluster changed by
// edit, with the example's PKI (edits must not touch what the PKI depends on
// for the worker: node names, addresses, the worker list).
func variant(t *testing.T, name string, edit func(c *spec.Cluster)) *nodegen.Context {
	t.Helper()
	x := load(t, name)
	c := *x.C
	c.Spec.Nodes = slices.Clone(c.Spec.Nodes)
	for i := range c.Spec.Nodes {
		c.Spec.Nodes[i].Roles = slices.Clone(c.Spec.Nodes[i].Roles)
	}
	c.Spec.Images = slices.Clone(c.Spec.Images)
	edit(&c)
	return nodegen.New(&c, x.PKI)
}

// nodeTree runs the worker generator for the node called name.
func nodeTree(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s", name)
	}
	tr := tree.New(name)
	if err := worker.Generate(x, n, tr); err != nil {
		t.Fatalf("generate %s: %v", name, err)
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// workerCase is one worker of one example spec.
type workerCase struct {
	example string
	x       *nodegen.Context
	node    string
}

// workers returns every worker of the example specs, which together cover
// both targets and both binaries modes.
func workers(t *testing.T) []workerCase {
	t.Helper()
	var out []workerCase
	for _, ex := range []string{"seed-lxc.yaml", "mixed.yaml", "seed-kvm.yaml"} {
		x := load(t, ex)
		for _, n := range x.C.NodesWith(spec.RoleWorker) {
			out = append(out, workerCase{ex, x, n.Name})
		}
	}
	return out
}

// file returns the content of p in tr, failing the test if it is missing.
func file(t *testing.T, tr *tree.Tree, p string) []byte {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("%s: no %s", tr.Node, p)
	}
	if !e.IsFile() {
		t.Fatalf("%s: %s is not a regular file", tr.Node, p)
	}
	return e.Data
}

// unitPaths returns the unit files hardway installs in tr.
func unitPaths(tr *tree.Tree) []string {
	var out []string
	for _, e := range tr.Entries() {
		if e.IsFile() && path.Dir(e.Path) == tree.UnitDir {
			out = append(out, e.Path)
		}
	}
	return out
}

// execLines returns the Exec*= command lines of a unit as words (commontest.ExecLines).
func execLines(t *testing.T, unit []byte) map[string][][]string { return commontest.ExecLines(t, unit) }

// k8sBin returns the path of the pinned Kubernetes binary name:
// $HARDWAY_BIN_DIR, else the cache hack/tools.sh fills.
func k8sBin(t *testing.T, name string) string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the check against the pinned binaries")
	}
	dir := os.Getenv("HARDWAY_BIN_DIR")
	if dir == "" {
		out, err := exec.Command("../../hack/tools.sh", "path", "k8s").Output()
		if err != nil {
			t.Fatal("the pinned Kubernetes binaries are not built: run `make tools` (hack/tools.sh k8s) or set HARDWAY_BIN_DIR")
		}
		dir = strings.TrimSpace(string(out))
	}
	p := filepath.Join(dir, name)
	if st, err := os.Stat(p); err != nil || st.Mode()&0o111 == 0 {
		t.Fatalf("%s is not an executable in %s: run `make tools` or set HARDWAY_BIN_DIR", name, dir)
	}
	return p
}
