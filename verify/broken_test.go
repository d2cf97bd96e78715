package verify

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// TestBrokenFails: a broken generated file fails the row that checks what it
// breaks, and the rows before it pass. Each case boots w1 of workerSpec
// from its baked template beside the control plane verify runs (w2 is left
// out), with one thing broken: in the node's tree before the bake, in the
// generated files verify reads, or in the spec's images. The cases run at
// once, each w1 with a VMID of its own.
func TestBrokenFails(t *testing.T) {
	bins := bootHost(t, spec.TargetLXC)
	for i, c := range []struct {
		name, row string
		drop      string                          // an archive left out of spec.images
		tree      func(t *testing.T, j *bake.Job) // a change to w1's tree before the bake
		dir       func(t *testing.T, dir string)  // a change to the generated cluster directory
	}{
		{name: "a wrong API address in the kubelet's kubeconfig", row: "workers register and go Ready",
			tree: func(t *testing.T, j *bake.Job) {
				e, ok := j.Tree.Get("/var/lib/kubelet/kubeconfig")
				if !ok || !bytes.Contains(e.Data, []byte("https://10.240.0.21:6443")) {
					t.Fatalf("w1's kubelet kubeconfig has no server https://10.240.0.21:6443")
				}
				e.Data = bytes.ReplaceAll(e.Data, []byte("https://10.240.0.21:6443"), []byte("https://10.240.0.29:6443"))
			}},
		{name: "the host's route to the worker's pod CIDR missing", row: "smoke pods: pod CIDR IPs, HTTP over the node network",
			dir: func(t *testing.T, dir string) {
				p := filepath.Join(dir, hostInterfacesFile)
				data, err := os.ReadFile(p)
				if err != nil {
					t.Fatal(err)
				}
				var kept [][]byte
				for _, l := range bytes.SplitAfter(data, []byte("\n")) {
					if !bytes.Contains(l, []byte("via 10.240.0.31 ")) {
						kept = append(kept, l)
					}
				}
				if len(kept) == len(bytes.SplitAfter(data, []byte("\n"))) {
					t.Fatalf("%s has no route via w1:\n%s", hostInterfacesFile, data)
				}
				if err := os.WriteFile(p, bytes.Join(kept, nil), 0o644); err != nil {
					t.Fatal(err)
				}
			}},
		{name: "CoreDNS's image missing from spec.images", row: "CoreDNS resolves Service names from a pod", drop: "coredns-"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			doc := workerDoc(t, bins, c.drop, 251+i)
			res, x := generated(t, doc)
			jobs, err := bake.Jobs(x, bake.FormatLXC, "w1", "")
			if err != nil {
				t.Fatal(err)
			}
			if c.tree != nil {
				c.tree(t, &jobs[0])
			}
			if c.dir != nil {
				c.dir(t, res.Dir)
			}
			baked, err := bake.Run(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.SmallBase), Out: t.TempDir(), Parallel: 1, Log: slog.New(slog.DiscardHandler)}, jobs)
			if err != nil {
				t.Fatal(err)
			}
			// Fail fast: the rows after the broken one would each wait
			// out their timeout; a worker here is Ready in about 20 s
			// (150 s leaves room for a loaded machine).
			runBooted(t, doc, Options{Dir: res.Dir, BinDirs: bins, Artifacts: map[string]string{"w1": baked[0].Path},
				FailFast: true, WorkerTimeout: 150 * time.Second}, len(checks)+len(workerChecks), c.row)
		})
	}
}
