package controller_test

import (
	"bytes"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/tree"
)

// verifyNodes are the nodes whose every unit is checked against real tools:
// a dedicated etcd member, the first controller (bootstrap unit), a stacked
// controller+etcd, and a packaged-binaries controller.
var verifyNodes = []struct{ spec, node string }{
	{"seed-lxc.yaml", "etcd1"},
	{"seed-lxc.yaml", "controller"},
	{"mixed.yaml", "cp1"},
	{"seed-kvm.yaml", "kub-master"},
}

// TestSystemdVerify runs `systemd-analyze verify` on every unit of the
// nodes, inside a root holding the node's tree, the host's system units
// (for targets such as multi-user.target) and, for this check only, stub
// executables at the ExecStart paths. Warnings count as failures.
func TestSystemdVerify(t *testing.T) {
	sa := commontest.Tool(t, "systemd-analyze", "systemd")
	for _, c := range verifyNodes {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			root := verifyRoot(t, tr)
			if out, err := systemdVerify(sa, root, unitFiles(tr)); err != nil || out != "" {
				t.Errorf("systemd-analyze verify (%v):\n%s", err, out)
			}
		})
	}
}

// TestSystemdVerifyFails proves the check above can fail: a unit with an
// invalid setting must be reported.
func TestSystemdVerifyFails(t *testing.T) {
	sa := commontest.Tool(t, "systemd-analyze", "systemd")
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), "controller1")
	root := verifyRoot(t, tr)
	p := filepath.Join(root, tree.UnitDir, "kube-scheduler.service")
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	broken := bytes.Replace(data, []byte("Restart=on-failure"), []byte("Restart=sometimes"), 1)
	if bytes.Equal(broken, data) {
		t.Fatal("kube-scheduler.service has no Restart=on-failure to break")
	}
	if err := os.WriteFile(p, broken, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := systemdVerify(sa, root, []string{p}); err == nil && out == "" {
		t.Error("systemd-analyze verify accepted Restart=sometimes")
	}
}

// verifyRoot is tr under a root for systemd-analyze verify: the host's
// units and stub executables at the Exec*= paths (commontest.UnitRoot).
func verifyRoot(t *testing.T, tr *tree.Tree) string { return commontest.UnitRoot(t, tr) }

// systemdVerify runs systemd-analyze verify on units (paths on the node)
// under root and returns what it printed.
func systemdVerify(sa, root string, units []string) (string, error) {
	args := []string{"verify", "--root=" + root}
	for _, u := range units {
		if !strings.HasPrefix(u, root) {
			u = filepath.Join(root, u)
		}
		args = append(args, u)
	}
	out, err := exec.Command(sa, args...).CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// pinned are the binaries whose flags are checked against their --help.
var pinned = map[string]bool{"etcd": true, "kube-apiserver": true, "kube-controller-manager": true, "kube-scheduler": true, "kubectl": true}

// TestFlagsInHelp checks every flag of every command line of the nodes'
// units against the --help of the pinned binary (Kubernetes v1.34.2, etcd
// v3.6.5): a flag the binary does not list (misspelt, removed or hidden as
// deprecated) fails.
func TestFlagsInHelp(t *testing.T) {
	dirs := binDirs(t)
	helps := map[string]string{}
	helpOf := func(bin, sub string) string {
		key := bin + " " + sub
		if _, ok := helps[key]; !ok {
			helps[key] = help(t, bin, sub)
		}
		return helps[key]
	}
	for _, c := range verifyNodes {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			for _, u := range unitFiles(tr) {
				for key, cmds := range commands(t, file(t, tr, u)) {
					for _, argv := range cmds {
						name := path.Base(argv[0])
						if !pinned[name] {
							continue
						}
						bin := findBin(t, dirs, name)
						text := helpOf(bin, "")
						if sub := subcommand(argv); sub != "" {
							text += helpOf(bin, sub)
						}
						for _, a := range argv[1:] {
							if !strings.HasPrefix(a, "--") {
								continue
							}
							flag, _, _ := strings.Cut(a, "=")
							re := regexp.MustCompile(`(?m)(^|[\s,])` + regexp.QuoteMeta(flag) + `([\s=\[':,]|$)`)
							if !re.MatchString(text) {
								t.Errorf("%s %s: %s does not know %s", path.Base(u), key, name, flag)
							}
						}
					}
				}
			}
		})
	}
}

// subcommand returns the first word after the binary that is not a flag.
func subcommand(argv []string) string {
	for _, a := range argv[1:] {
		if !strings.HasPrefix(a, "-") {
			return a
		}
	}
	return ""
}

// TestFlagsParse runs each pinned control-plane binary with its unit's
// flags plus --version: the binary parses every flag (types, bools, IPs,
// CIDRs) before it prints its version and exits, so a bad value fails here.
func TestFlagsParse(t *testing.T) {
	dirs := binDirs(t)
	for _, c := range verifyNodes {
		t.Run(c.node, func(t *testing.T) {
			tr := nodeTree(t, load(t, c.spec), c.node)
			for _, u := range unitFiles(tr) {
				for _, argv := range commands(t, file(t, tr, u))["ExecStart"] {
					name := path.Base(argv[0])
					if !pinned[name] || name == "kubectl" {
						continue
					}
					cmd := exec.Command(findBin(t, dirs, name), append(argv[1:], "--version")...)
					out, err := cmd.CombinedOutput()
					if err != nil {
						t.Errorf("%s: %s rejects its flags: %v\n%s", path.Base(u), name, err, out)
					}
				}
			}
		})
	}
}
