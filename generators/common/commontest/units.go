package commontest

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/tree"
	"github.com/hardway-dev/hardway/unitfile"
)

// UnitRoot writes tr under a new directory laid out as a merged-/usr Debian
// for systemd-analyze verify --root: the host's units (targets, the
// distribution's services), /bin, /sbin and /lib linked to /usr, and a stub
// executable for every program an Exec*= line of the tree's units runs.
func UnitRoot(t testing.TB, tr *tree.Tree) string {
	t.Helper()
	root := t.TempDir()
	for _, d := range []string{"lib", "bin", "sbin"} {
		if err := os.MkdirAll(filepath.Join(root, "usr", d), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("usr/"+d, filepath.Join(root, d)); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("cp", "-a", "/usr/lib/systemd", filepath.Join(root, "usr/lib/")).CombinedOutput(); err != nil {
		t.Fatalf("copy the host's units: %v: %s", err, out)
	}
	WriteRoot(t, tr, root)
	for _, e := range tr.Entries() {
		if !e.IsFile() || path.Dir(e.Path) != tree.UnitDir {
			continue
		}
		for _, lines := range ExecLines(t, e.Data) {
			for _, argv := range lines {
				stub(t, root, strings.TrimLeft(argv[0], "-@:+!|"))
			}
		}
	}
	return root
}

// stub creates an executable at p inside root unless something is there.
func stub(t testing.TB, root, p string) {
	t.Helper()
	if !path.IsAbs(p) {
		t.Fatalf("unit command %q is not an absolute path", p)
	}
	f := filepath.Join(root, p)
	if _, err := os.Lstat(f); err == nil {
		return
	}
	if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(f, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
}

// ExecLines returns the Exec*= command lines of a unit as argv, keyed by
// setting, split as systemd splits them (unitfile.Split: quotes, C
// escapes, "%%", "$$"), and any prefix ("-", "@", ...) left on the
// executable.
func ExecLines(t testing.TB, unit []byte) map[string][][]string {
	t.Helper()
	out := map[string][][]string{}
	u, err := unitfile.Parse("unit", unit)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range unitfile.ExecKeys {
		for _, v := range u.Values("Service", key) {
			c, err := unitfile.Split(v, map[string]string{})
			if err != nil {
				t.Fatalf("%s=%s: %v", key, v, err)
			}
			argv := slices.Clone(c.Argv)
			argv[0] = c.Prefixes + argv[0]
			out[key] = append(out[key], argv)
		}
	}
	return out
}

// Verify runs systemd-analyze verify on units (names or paths inside root)
// and returns what it printed; any message counts as a failure, since
// systemd-analyze exits 0 on an unknown key or an unparsable value, which
// systemd would then ignore at boot.
func Verify(t testing.TB, root string, units ...string) (string, bool) {
	t.Helper()
	analyze := Tool(t, "systemd-analyze", "systemd")
	cmd := exec.Command(analyze, append([]string{"verify", "--root=" + root}, units...)...)
	cmd.Env = append(os.Environ(), "SYSTEMD_LOG_COLOR=0")
	out, err := cmd.CombinedOutput()
	msg := strings.TrimSpace(string(out))
	return msg, err == nil && msg == ""
}
