package verify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// TestBootSeed is issue 12's proof on the seed's LXC cluster: all of its
// nodes (gateway, three lbs, two etcd members, three controllers, two
// workers) baked from the full Debian base with the pinned binaries and the
// image archives, booted under lxc-start at their spec addresses, and the
// rows of a booted cluster must pass; nothing of the run may be left.
func TestBootSeed(t *testing.T) {
	bins := bootHost(t, spec.TargetLXC)
	// The gateway row logs in with a throwaway key the copy authorizes.
	key, identity, err := ThrowawayKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	doc := pinnedExample(t, "../examples/seed-lxc.yaml", bins, key)
	res, x := generated(t, doc)
	jobs, err := bake.Jobs(x, bake.FormatLXC, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	baked, err := bake.Run(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.FullBase), Out: t.TempDir(), Parallel: 2, Log: slog.New(slog.DiscardHandler)}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("baked %d templates in %s", len(baked), time.Since(start).Round(time.Millisecond))
	runBooted(t, doc, Options{Dir: res.Dir, BinDirs: bins, Artifacts: nodeArtifacts(baked), Boot: true, SSHIdentity: identity}, len(bootChecks)+len(workerChecks)+len(lastChecks), "")
}

// nodeArtifacts maps each node to its baked artifact (node jobs only).
func nodeArtifacts(baked []bake.Result) map[string]string {
	artifacts := map[string]string{}
	for _, r := range baked {
		artifacts[r.Job.Node] = r.Path
	}
	return artifacts
}

// generated generates doc into a temp dir.
func generated(t *testing.T, doc *spec.Document) (*clusterdir.Result, *nodegen.Context) {
	t.Helper()
	res, err := clusterdir.Run(context.Background(), doc, clusterdir.Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return res, nodegen.New(doc.Cluster, res.Bundle)
}

// runBooted runs verify with o (its cluster, work directory and output
// filled in) and fails the test on an error, a failing row other than
// failing (every row before it must pass; "" for none) or a row count other
// than rows; afterwards nothing of the run may be left: no process,
// namespace, mount or container cgroup.
func runBooted(t *testing.T, doc *spec.Document, o Options, rows int, failing string) {
	t.Helper()
	// Not t.TempDir: the unprivileged containers' root (uid 100000)
	// must reach their rootfs below it.
	work, err := os.MkdirTemp("", "hardway-boot-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(work) })
	if err := os.Chmod(work, 0o711); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	start := time.Now()
	o.Cluster, o.WorkDir, o.Out = doc.Cluster, work, &out
	o.Log = slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn}))
	rep, err := Run(context.Background(), o)
	t.Logf("verify with %s booted, in %s:\n%s", strings.Join(slices.Sorted(maps.Keys(o.Artifacts)), ", "), time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatal(err)
	}
	failed := false
	for _, r := range rep.Rows {
		switch {
		case failed: // after the broken row, others may fail with it
		case r.Name == failing && r.Pass:
			t.Errorf("row %d %s passed, want it failed", r.N, r.Name)
		case r.Name == failing:
			failed = true
			t.Logf("row %d %s failed, as it must: %s", r.N, r.Name, r.Detail)
		case !r.Pass:
			t.Errorf("row %d %s: %s", r.N, r.Name, r.Detail)
		}
	}
	if failing != "" && !failed {
		t.Errorf("no row %q failed", failing)
	}
	if n := len(rep.Rows); n != rows {
		t.Errorf("%d rows, want %d", n, rows)
	}
	assertNothingLeft(t, rep, work)
	assertNoMountsUnder(t, work)
	for name := range o.Artifacts {
		if n, _ := doc.Cluster.Node(name); n.Target == spec.TargetLXC {
			assertNoCgroup(t, fmt.Sprintf("lxc/%d", n.VMID))
		}
	}
}

// pinnedExample is bake.PinnedCopy of an example, with the pinned binaries
// (bins and $HARDWAY_RUNTIME_DIR) and the archives `make images` built.
func pinnedExample(t *testing.T, file string, bins []string, authorizedKeys ...string) *spec.Document {
	t.Helper()
	runtimeDir := os.Getenv("HARDWAY_RUNTIME_DIR")
	if runtimeDir == "" {
		t.Fatal("HARDWAY_RUNTIME_DIR is not set: make runtime's bin/runtime (make test sets it)")
	}
	copied, err := bake.PinnedCopy(file, t.TempDir(), append(slices.Clone(bins), runtimeDir), imageArchives(t), authorizedKeys...)
	if err != nil {
		t.Fatal(err)
	}
	return loadExample(t, copied)
}
