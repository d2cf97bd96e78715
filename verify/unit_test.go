package verify

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/unitfile"
)

// TestGeneratedUnits parses every unit of the generated example clusters:
// each splits into an absolute executable, and the control-plane units that
// verify starts name the binary of their role.
func TestGeneratedUnits(t *testing.T) {
	bins := map[string]string{
		"etcd.service":                    "etcd",
		"kube-apiserver.service":          "kube-apiserver",
		"kube-controller-manager.service": "kube-controller-manager",
		"kube-scheduler.service":          "kube-scheduler",
	}
	for _, example := range []string{"seed-lxc", "seed-kvm", "mixed"} {
		t.Run(example, func(t *testing.T) {
			dir := generateExample(t, filepath.Join("..", "examples", example+".yaml"))
			tars, _ := filepath.Glob(filepath.Join(dir, "nodes", "*", nodefiles.OverlayTar.Name))
			var units []string
			for _, p := range tars {
				node := filepath.Base(filepath.Dir(p))
				found, _ := filepath.Glob(filepath.Join(overlayTree(t, dir, node), "etc", "systemd", "system", "*.service"))
				units = append(units, found...)
			}
			if len(units) == 0 {
				t.Fatal("no units generated")
			}
			seen := map[string]bool{}
			for _, p := range units {
				u, err := unitfile.Read(p)
				if err != nil {
					t.Error(err)
					continue
				}
				for _, key := range unitfile.ExecKeys {
					if _, err := u.Exec(key); err != nil {
						t.Error(err)
					}
				}
				want, ok := bins[u.Name]
				if !ok {
					continue
				}
				seen[u.Name] = true
				c, err := u.ExecStart()
				if err != nil {
					t.Error(err)
					continue
				}
				if filepath.Base(c.Argv[0]) != want || strings.Contains(strings.Join(c.Argv, " "), "\\") {
					t.Errorf("%s: ExecStart %q", p, c.Argv)
				}
			}
			for u := range bins {
				if !seen[u] {
					t.Errorf("no %s generated", u)
				}
			}
		})
	}
}
