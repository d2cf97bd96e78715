package controller_test

import (
	"bufio"
	"bytes"
	"flag"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/hardway-dev/hardway/generators/controller"
	"github.com/hardway-dev/hardway/generators/etcd"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pki"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// contexts caches one generation context per example spec: issuing an RSA
// PKI (mixed.yaml) takes seconds.
var (
	mu       sync.Mutex
	contexts = map[string]*nodegen.Context{}
	pkiDirs  []string
)

func TestMain(m *testing.M) {
	flag.Parse()
	code := m.Run()
	for _, d := range pkiDirs {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// load parses and validates ../../examples/<name>, issues its PKI into a
// temporary directory and returns the generation context.
func load(t *testing.T, name string) *nodegen.Context {
	t.Helper()
	mu.Lock()
	defer mu.Unlock()
	if x, ok := contexts[name]; ok {
		return x
	}
	doc, err := spec.LoadFile("../../examples/" + name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	if errs := doc.Validate(spec.Options{}).Errors(); len(errs) > 0 {
		t.Fatalf("validate %s: %v", name, errs)
	}
	dir, err := os.MkdirTemp("", "hardway-controller-test-")
	if err != nil {
		t.Fatal(err)
	}
	pkiDirs = append(pkiDirs, dir)
	d, err := output.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := pki.Ensure(doc.Cluster, d.Sub("pki", "pki"), pki.Options{})
	if err != nil {
		t.Fatalf("pki for %s: %v", name, err)
	}
	x := nodegen.New(doc.Cluster, b)
	contexts[name] = x
	return x
}

// nodeTree runs the etcd and controller generators (those under test) for
// the node called name, as the generators package would for its roles.
func nodeTree(t *testing.T, x *nodegen.Context, name string) *tree.Tree {
	t.Helper()
	n, ok := x.C.Node(name)
	if !ok {
		t.Fatalf("no node %s", name)
	}
	tr := tree.New(name)
	if n.Has(spec.RoleEtcd) {
		if err := etcd.Generate(x, n, tr); err != nil {
			t.Fatal(err)
		}
	}
	if n.Has(spec.RoleController) {
		if err := controller.Generate(x, n, tr); err != nil {
			t.Fatal(err)
		}
	}
	if err := tr.Check(); err != nil {
		t.Fatal(err)
	}
	return tr
}

// file returns the content of p in tr, failing the test if it is missing.
func file(t *testing.T, tr *tree.Tree, p string) []byte {
	t.Helper()
	e, ok := tr.Get(p)
	if !ok {
		t.Fatalf("%s: no %s", tr.Node, p)
	}
	return e.Data
}

// unitFiles returns the paths of the unit files in tr, sorted.
func unitFiles(tr *tree.Tree) []string {
	var out []string
	for _, e := range tr.Entries() {
		if e.IsFile() && path.Dir(e.Path) == tree.UnitDir {
			out = append(out, e.Path)
		}
	}
	sort.Strings(out)
	return out
}

// commands returns the command lines of a unit's Exec* settings, split into
// words after joining "\"-continued lines. Units must not need a shell: a
// word holding a quote or a $ is reported as an error.
func commands(t *testing.T, unit []byte) map[string][][]string {
	t.Helper()
	out := map[string][][]string{}
	var logical []string
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(unit))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		logical = append(logical, cur.String())
		cur.Reset()
	}
	for _, l := range logical {
		k, v, ok := strings.Cut(strings.TrimSpace(l), "=")
		if !ok || !strings.HasPrefix(k, "Exec") {
			continue
		}
		words := strings.Fields(v)
		for _, w := range words {
			if strings.ContainsAny(w, `"'$;|&`) {
				t.Errorf("%s: word %q needs a shell", k, w)
			}
		}
		out[k] = append(out[k], words)
	}
	return out
}

// flags returns the --name=value flags of a command line (value "" when the
// flag has none), failing on a flag given twice.
func flags(t *testing.T, argv []string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "--") {
			continue
		}
		k, v, _ := strings.Cut(a, "=")
		if _, dup := out[k]; dup {
			t.Errorf("%s: %s given twice", argv[0], k)
		}
		out[k] = v
	}
	return out
}

// execStart returns the flags of the single ExecStart of unit p in tr.
func execStart(t *testing.T, tr *tree.Tree, p string) (bin string, fl map[string]string) {
	t.Helper()
	c := commands(t, file(t, tr, p))["ExecStart"]
	if len(c) != 1 {
		t.Fatalf("%s: %d ExecStart lines, want 1", p, len(c))
	}
	return c[0][0], flags(t, c[0])
}

// binDirs returns the directories holding the pinned kube-* and etcd
// binaries: $HARDWAY_BIN_DIR, else the caches hack/tools.sh builds.
func binDirs(t *testing.T) []string {
	t.Helper()
	if testing.Short() {
		t.Skip("-short: skipping the check against the pinned binaries")
	}
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		return []string{d}
	}
	var dirs []string
	for _, group := range []string{"k8s", "etcd"} {
		out, err := exec.Command("../../hack/tools.sh", "path", group).Output()
		if err != nil {
			t.Fatalf("the pinned %s binaries are not built: run `make tools` (hack/tools.sh %s) or set HARDWAY_BIN_DIR", group, group)
		}
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	return dirs
}

// findBin returns the path of binary name in dirs.
func findBin(t *testing.T, dirs []string, name string) string {
	t.Helper()
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	t.Fatalf("%s not found in %v: run `make tools` or set HARDWAY_BIN_DIR", name, dirs)
	return ""
}

// help returns a binary's help text for the subcommand (if any) of argv.
func help(t *testing.T, bin string, sub string) string {
	t.Helper()
	var args []string
	switch {
	case path.Base(bin) == "kubectl" && sub == "":
		args = []string{"options"} // kubectl's global flags
	case sub != "":
		args = []string{sub, "--help"}
	default:
		args = []string{"--help"}
	}
	// Some binaries print their help on stderr or exit non-zero after it.
	out, _ := exec.Command(bin, args...).CombinedOutput()
	if len(out) < 100 {
		t.Fatalf("%s %v printed no help: %s", bin, args, out)
	}
	return string(out)
}
