package verify

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/spec"
)

// loadExample parses and validates a spec file.
func loadExample(t *testing.T, path string) *spec.Document {
	t.Helper()
	doc, err := spec.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(spec.Options{}); len(is.Errors()) > 0 {
		t.Fatal(is.Errors().Error())
	}
	return doc
}

// generateExample generates a spec into a temp dir and returns the cluster dir.
func generateExample(t *testing.T, path string) string {
	t.Helper()
	doc := loadExample(t, path)
	res, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return res.Dir
}

// bootHost is what a test that boots nodes of the targets needs of this
// host: root and ip(8) (needRoot skips without them), the guests' tools
// (hack/deps.sh installs them: missing, the test fails), and the pinned
// binaries' directories, which it returns.
func bootHost(t *testing.T, targets ...string) []string {
	t.Helper()
	needRoot(t)
	if err := preflightGuests(targets...); err != nil {
		t.Fatalf("%v: hack/deps.sh installs it", err)
	}
	return binDirs(t)
}

// needRoot skips tests that create namespaces unless running as root, and in -short.
func needRoot(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts processes in network namespaces; skipped in -short")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root for network namespaces")
	}
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("needs ip(8) (iproute2)")
	}
}

// binDirs are the pinned binaries: $HARDWAY_BIN_DIR, else hack/tools.sh's cache.
func binDirs(t *testing.T) []string {
	t.Helper()
	if d := os.Getenv("HARDWAY_BIN_DIR"); d != "" {
		return []string{d}
	}
	var dirs []string
	for _, group := range []string{"k8s", "etcd"} {
		out, err := exec.Command(filepath.Join("..", "hack", "tools.sh"), "path", group).Output()
		if err != nil {
			t.Fatalf("no pinned %s binaries: run `make tools` (or set HARDWAY_BIN_DIR)", group)
		}
		dirs = append(dirs, strings.TrimSpace(string(out)))
	}
	return dirs
}

// processesUnder lists the live processes whose command line names dir:
// every process verify starts names its work dir in its arguments.
func processesUnder(t *testing.T, dir string) []string {
	t.Helper()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range procs {
		data, err := os.ReadFile(p)
		if err != nil || !strings.Contains(string(data), dir) {
			continue
		}
		pid := filepath.Base(filepath.Dir(p))
		if pid == "self" || pid == "thread-self" {
			continue
		}
		out = append(out, pid+": "+strings.ReplaceAll(string(data), "\x00", " "))
	}
	return out
}
