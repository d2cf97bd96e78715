package common_test

import (
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/common"
	"github.com/hardway-dev/hardway/generators/common/commontest"
	"github.com/hardway-dev/hardway/tree"
)

// TestReadyUnit: every KVM node of the examples, and no LXC node, gets
// hardway-ready.service, waiting for the services its roles run (listed here
// by hand from docs/roles.md), and systemd-analyze verify accepts it.
func TestReadyUnit(t *testing.T) {
	want := map[string][]string{ // example/node: services, in the tree's order
		"seed-kvm/kub-master": {"etcd.service", "kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service"},
		"seed-kvm/kub-node1":  {"kubelet.service", "kube-proxy.service"},
		"mixed/cp1":           {"etcd.service", "kube-apiserver.service", "kube-controller-manager.service", "kube-scheduler.service"},
	}
	for key, units := range want {
		ex, node, _ := strings.Cut(key, "/")
		x := commontest.Context(t, "../../examples/"+ex+".yaml")
		tr, err := generators.Node(x, commontest.Node(t, x, node))
		if err != nil {
			t.Fatal(err)
		}
		got := common.RoleUnits(tr)
		for _, u := range units {
			if !slices.Contains(got, u) {
				t.Errorf("%s: the ready unit does not wait for %s (waits for %v)", key, u, got)
			}
		}
		unit := commontest.File(t, tr, "/etc/systemd/system/"+common.ReadyUnit)
		msg := common.ReadyMessage(node, commontest.Node(t, x, node).Roles)
		if !slices.ContainsFunc(commontest.ExecLines(t, unit)["ExecStart"], func(argv []string) bool {
			return argv[0] == "/bin/echo" && strings.Join(argv[1:], " ") == msg
		}) {
			t.Errorf("%s: no ExecStart that echoes %q:\n%s", key, msg, unit)
		}
	}
	x := commontest.Context(t, "../../examples/seed-lxc.yaml")
	tr, err := generators.Node(x, commontest.Node(t, x, "controller"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.Get("/etc/systemd/system/" + common.ReadyUnit); ok {
		t.Error("an LXC node has the ready unit")
	}

	x = commontest.Context(t, "../../examples/seed-kvm.yaml")
	tr, err = generators.Node(x, commontest.Node(t, x, "kub-node1"))
	if err != nil {
		t.Fatal(err)
	}
	root := commontest.UnitRoot(t, tr)
	if out, ok := commontest.Verify(t, root, common.ReadyUnit); !ok {
		t.Errorf("systemd-analyze verify %s: %s", common.ReadyUnit, out)
	}
}

// TestReadyHostile: a node name and roles that would split the echo
// command, start another one or expand, given to Ready behind validation's
// and nodegen.Check's back, still reach echo as the words of ReadyMessage, and
// the comments and the Description hold them on their lines.
func TestReadyHostile(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-kvm.yaml")
	n := commontest.Node(t, x, "kub-node1")
	n.Name = `kub-node1 ; /usr/sbin/reboot "$HOME" %n \`
	n.Roles = []string{"worker", "a b\nExecStartPre=/usr/sbin/reboot"}
	tr := tree.New("kub-node1")
	common.Ready(x, n, tr)
	unit := commontest.File(t, tr, "/etc/systemd/system/"+common.ReadyUnit)
	msg := common.ReadyMessage(n.Name, n.Roles)
	ex := commontest.ExecLines(t, unit)
	if len(ex) != 1 || len(ex["ExecStart"]) != 1 || strings.Join(ex["ExecStart"][0][1:], " ") != msg {
		t.Errorf("Exec lines %q, want one echo of %q:\n%s", ex, msg, unit)
	}
	for _, l := range strings.Split(string(unit), "\n") {
		if strings.Contains(l, "reboot") && !strings.HasPrefix(l, "#") && !strings.HasPrefix(l, "Description=") && !strings.HasPrefix(l, "ExecStart=/bin/echo ") {
			t.Errorf("the node's name or roles make a line of their own: %q", l)
		}
	}
}

// TestReadyWaitsForEveryUnit runs the unit's wait loop with a systemctl
// that reports the units of a file active: it must not finish while one
// of them is not (systemctl is-active with several units succeeds when any
// of them is active).
func TestReadyWaitsForEveryUnit(t *testing.T) {
	x := commontest.Context(t, "../../examples/seed-kvm.yaml")
	tr, err := generators.Node(x, commontest.Node(t, x, "kub-node1"))
	if err != nil {
		t.Fatal(err)
	}
	script := waitScript(t, tr)
	dir := t.TempDir()
	active := filepath.Join(dir, "active")
	fake := "#!/bin/sh\n# systemctl is-active --quiet UNIT\ngrep -qx \"$3\" " + active + "\n"
	if err := os.WriteFile(filepath.Join(dir, "systemctl"), []byte(fake), 0o755); err != nil {
		t.Fatal(err)
	}
	units := common.RoleUnits(tr)
	os.WriteFile(active, []byte(units[0]+"\n"), 0o644)
	cmd := exec.Command("/bin/sh", "-c", script)
	cmd.Env = []string{"PATH=" + dir + ":/usr/bin:/bin"}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		t.Fatalf("the wait ended with only %s active: %v", units[0], err)
	case <-time.After(3 * time.Second):
	}
	os.WriteFile(active, []byte(strings.Join(units, "\n")+"\n"), 0o644)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatalf("the wait did not end with %v active", units)
	}
}

// waitScript is the shell script of the ready unit's first ExecStart, as
// systemd runs it: /bin/sh -c '...' with $$ turned into $.
func waitScript(t *testing.T, tr *tree.Tree) string {
	unit := string(commontest.File(t, tr, "/etc/systemd/system/"+common.ReadyUnit))
	for _, l := range strings.Split(unit, "\n") {
		if s, ok := strings.CutPrefix(l, "ExecStart=/bin/sh -c '"); ok {
			return strings.ReplaceAll(strings.TrimSuffix(s, "'"), "$$", "$")
		}
	}
	t.Fatalf("no wait loop in the ready unit:\n%s", unit)
	return ""
}

// TestUnitExits: a unit that the tree of any example's node records as
// a job that exits (tree.Unit.Exits) is one whose text says so (Type=oneshot
// without RemainAfterExit), and every unit whose text says so is recorded
// so: RoleUnits reads the field, not the text.
func TestUnitExits(t *testing.T) {
	specs, _ := filepath.Glob("../../examples/*.yaml")
	jobs := 0
	for _, s := range specs {
		x := commontest.Context(t, s)
		trees, err := generators.Nodes(x)
		if err != nil {
			t.Fatal(err)
		}
		for _, tr := range trees {
			for _, u := range tr.Units() {
				e, ok := tr.Get(path.Join(tree.UnitDir, u.Name))
				if !ok || !e.IsFile() {
					continue // the distribution's unit
				}
				exits := unitValue(e.Data, "Type") == "oneshot" && !isYes(unitValue(e.Data, "RemainAfterExit"))
				if u.Exits != exits {
					t.Errorf("%s, %s: Exits %v, its text says %v", s, u.Name, u.Exits, exits)
				}
				if exits {
					jobs++
				}
			}
		}
	}
	if jobs == 0 {
		t.Error("no example has a job that exits: the test checks one side only")
	}
}

// unitValue is the last value of key in a unit file.
func unitValue(unit []byte, key string) string {
	var v string
	for _, l := range strings.Split(string(unit), "\n") {
		k, val, ok := strings.Cut(strings.TrimSpace(l), "=")
		if ok && strings.TrimSpace(k) == key {
			v = strings.TrimSpace(val)
		}
	}
	return v
}

// isYes is systemd's reading of a boolean.
func isYes(v string) bool {
	switch strings.ToLower(v) {
	case "yes", "true", "on", "1":
		return true
	}
	return false
}
