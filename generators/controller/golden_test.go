package controller_test

import (
	"os"
	"path"
	"path/filepath"
	"testing"

	"github.com/hardway-dev/hardway/tree"
)

// golden are the seed-lxc first controller's files that hold no key
// material (certificates and keys are random per run); compared byte for
// byte with testdata/golden/<node>/<path>. Update with `go test -update`.
var golden = []string{
	tree.UnitDir + "/kube-apiserver.service",
	tree.UnitDir + "/kube-controller-manager.service",
	tree.UnitDir + "/kube-scheduler.service",
	tree.UnitDir + "/hardway-bootstrap.service",
	kd + "/kube-scheduler.yaml",
}

func TestGolden(t *testing.T) {
	tr := nodeTree(t, load(t, "seed-lxc.yaml"), "controller")
	for _, p := range golden {
		got := file(t, tr, p)
		g := filepath.Join("testdata", "golden", tr.Node, path.Base(p))
		if *update {
			if err := os.MkdirAll(filepath.Dir(g), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(g, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(g)
		if err != nil {
			t.Fatalf("%v (run go test -update to create it)", err)
		}
		if string(got) != string(want) {
			t.Errorf("%s differs from %s (run go test -update and review the diff):\n%s", p, g, got)
		}
	}
}
