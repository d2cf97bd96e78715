package depcheck

import (
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

const root = "../.."

// given are commands every machine that builds hardway has: the Go toolchain.
var given = map[string]bool{"go": true}

// readDeps parses hack/deps.sh's PKGS list: package -> the commands in the
// brackets of its line's comment ("  openssl  # [openssl] why").
func readDeps(t *testing.T) map[string][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "hack/deps.sh"))
	if err != nil {
		t.Fatal(err)
	}
	_, list, ok := strings.Cut(string(data), "\nPKGS=(\n")
	list, _, closed := strings.Cut(list, "\n)\n")
	if !ok || !closed {
		t.Fatal("hack/deps.sh: no PKGS=( ... ) list, one package a line")
	}
	pkgs := map[string][]string{}
	for _, line := range strings.Split(list, "\n") {
		pkg, comment, _ := strings.Cut(line, "#")
		fields := strings.Fields(pkg)
		if len(fields) != 1 {
			t.Fatalf("hack/deps.sh: want one package a line in PKGS, got %q", line)
		}
		var cmds []string
		if c, ok := strings.CutPrefix(strings.TrimSpace(comment), "["); ok {
			c, _, _ = strings.Cut(c, "]")
			cmds = strings.Fields(c)
		}
		pkgs[fields[0]] = cmds
	}
	return pkgs
}

// pinnedTools are the binaries hack/tools.sh builds (its BINS lists).
func pinnedTools(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "hack/tools.sh"))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range regexp.MustCompile(`BINS=\(([^)]*)\)`).FindAllStringSubmatch(string(data), -1) {
		for _, b := range strings.Fields(m[1]) {
			out[b] = true
		}
	}
	if len(out) == 0 {
		t.Fatal("hack/tools.sh: no BINS=(...) list found; this test reads the pinned tools from it")
	}
	return out
}

// unprovided lists, as "command (file:line)", every use of a command that no
// package of pkgs provides and that is neither pinned, ours (a script under
// hack/) nor given.
func unprovided(uses []Use, pkgs map[string][]string, pinned map[string]bool) []string {
	have := map[string]bool{}
	for _, cmds := range pkgs {
		for _, c := range cmds {
			have[c] = true
		}
	}
	var out []string
	seen := map[string]bool{}
	for _, u := range uses {
		if seen[u.Command+u.Pos] {
			continue
		}
		seen[u.Command+u.Pos] = true
		if have[u.Command] || pinned[u.Command] || given[u.Command] {
			continue
		}
		if _, err := os.Stat(filepath.Join(root, "hack", u.Command)); err == nil {
			continue
		}
		out = append(out, u.Command+" ("+u.Pos+")")
	}
	return out
}

// scanned holds the one scan of the tree the tests share.
var scanned = sync.OnceValues(func() ([]Use, error) {
	mods, err := ReadModules(root)
	if err != nil {
		return nil, err
	}
	return Scan(root, mods)
})

func scan(t *testing.T) []Use {
	t.Helper()
	uses, err := scanned()
	if err != nil {
		t.Fatal(err)
	}
	// The scan must see the lookups this test exists for; if it finds none
	// of them it is broken, not the tree clean.
	seen := map[string]bool{}
	for _, u := range uses {
		seen[u.Command] = true
	}
	for _, c := range []string{"sudo", "systemd-analyze", "tar", "ip", "mke2fs"} {
		if !seen[c] {
			t.Fatalf("the scan found no use of %s; it misses lookups", c)
		}
	}
	return uses
}

// TestEveryLookedUpCommandIsInstalled: every external command our code looks
// up or runs comes from a package hack/deps.sh installs or a tool make tools
// builds.
func TestEveryLookedUpCommandIsInstalled(t *testing.T) {
	uses := scan(t)
	if miss := unprovided(uses, readDeps(t), pinnedTools(t)); len(miss) > 0 {
		t.Fatalf("commands looked up by the code but installed by nothing (add the Debian package and the command to hack/deps.sh, or build it in hack/tools.sh):\n  %s", strings.Join(miss, "\n  "))
	}
	cmds := map[string]bool{}
	for _, u := range uses {
		cmds[u.Command] = true
	}
	t.Logf("%d uses of %d commands, all provided", len(uses), len(cmds))
}

// TestGuardFailsWithoutAPackage takes each package out of the list in turn:
// the check must then name every command only that package provided.
func TestGuardFailsWithoutAPackage(t *testing.T) {
	uses := scan(t)
	pkgs, pinned := readDeps(t), pinnedTools(t)
	used := map[string]bool{}
	for _, u := range uses {
		used[u.Command] = true
	}
	tried := 0
	for pkg, cmds := range pkgs {
		var only []string
		for _, c := range cmds {
			if used[c] && !pinned[c] && providers(pkgs, c) == 1 {
				only = append(only, c)
			}
		}
		if len(only) == 0 {
			continue
		}
		tried++
		without := map[string][]string{}
		for p, c := range pkgs {
			if p != pkg {
				without[p] = c
			}
		}
		miss := strings.Join(unprovided(uses, without, pinned), "\n")
		for _, c := range only {
			if !strings.Contains(miss, c+" (") {
				t.Errorf("without %s in hack/deps.sh the check does not name %s", pkg, c)
			}
		}
	}
	if tried < 10 {
		t.Fatalf("only %d packages provide a looked-up command; the scan is missing uses", tried)
	}
}

func providers(pkgs map[string][]string, cmd string) int {
	n := 0
	for _, cmds := range pkgs {
		for _, c := range cmds {
			if c == cmd {
				n++
			}
		}
	}
	return n
}

// TestDepsMatchPackages checks hack/deps.sh's list against dpkg's own file
// lists: each command is really shipped by the package it is listed under
// (directly, or as a Debian alternative the package registers). A package
// that is not installed is an error in the full suite (make test ran
// hack/deps.sh first) and skipped in -short.
func TestDepsMatchPackages(t *testing.T) {
	if _, err := os.Stat("/var/lib/dpkg/info"); err != nil {
		t.Skip("not a Debian machine: no dpkg database")
	}
	pkgs := readDeps(t)
	names := make([]string, 0, len(pkgs))
	for p := range pkgs {
		names = append(names, p)
	}
	sort.Strings(names)
	var notInstalled []string
	for _, pkg := range names {
		files, ok := dpkgFiles(pkg)
		if !ok {
			notInstalled = append(notInstalled, pkg)
			continue
		}
		for _, c := range pkgs[pkg] {
			if !ships(files, c) {
				t.Errorf("hack/deps.sh: %s does not ship %s (dpkg -L %s)", pkg, c, pkg)
			}
		}
	}
	if len(notInstalled) > 0 {
		msg := "not installed, so not checked: " + strings.Join(notInstalled, " ") + " (run hack/deps.sh)"
		if testing.Short() {
			t.Log(msg)
		} else {
			t.Error(msg)
		}
	}
}

// dpkgFiles returns the paths a package installed, from dpkg's database.
func dpkgFiles(pkg string) (map[string]bool, bool) {
	for _, name := range []string{pkg, pkg + ":amd64", pkg + ":all"} {
		data, err := os.ReadFile(filepath.Join("/var/lib/dpkg/info", name+".list"))
		if err != nil {
			continue
		}
		files := map[string]bool{}
		for _, l := range strings.Split(string(data), "\n") {
			files[l] = true
		}
		return files, true
	}
	return nil, false
}

// ships reports whether files hold cmd in a bin directory, or an alternative
// named cmd whose choices include one of files.
func ships(files map[string]bool, cmd string) bool {
	for _, dir := range []string{"/bin", "/sbin", "/usr/bin", "/usr/sbin"} {
		if files[dir+"/"+cmd] {
			return true
		}
	}
	alt, err := os.ReadFile(filepath.Join("/var/lib/dpkg/alternatives", cmd))
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(alt), "\n") {
		if files[strings.TrimSpace(l)] {
			return true
		}
	}
	return false
}
