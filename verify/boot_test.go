package verify

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/generate"
	"github.com/hardway-dev/hardway/generators/gen"
	"github.com/hardway-dev/hardway/rootfs/rootfstest"
	"github.com/hardway-dev/hardway/spec"
)

// TestBootSeed is issue 12's proof on the seed's LXC cluster: all of its
// nodes (gateway, three lbs, two etcd members, three controllers, two
// workers) baked from the full Debian base with the pinned binaries and the
// image archives, booted under lxc-start at their spec addresses, and the
// rows of a booted cluster must pass; nothing of the run may be left.
func TestBootSeed(t *testing.T) {
	needRoot(t)
	if err := preflightWorkers(spec.TargetLXC); err != nil {
		t.Fatalf("%v: hack/deps.sh installs it", err)
	}
	bins := binDirs(t)
	doc := pinnedExample(t, "../examples/seed-lxc.yaml", bins)
	res, x := generated(t, doc)
	jobs, err := bake.Jobs(x, bake.FormatLXC, "", "")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	baked, err := bake.Run(context.Background(), bake.Config{Doc: doc, Base: rootfstest.Base(t, rootfstest.FullBase), Out: t.TempDir(), Jobs: 2, Log: slog.New(slog.DiscardHandler)}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	artifacts := map[string]string{}
	for _, r := range baked {
		artifacts[r.Job.Node] = r.Path
	}
	t.Logf("baked %d templates in %s", len(baked), time.Since(start).Round(time.Millisecond))
	runBooted(t, doc, res.Dir, bins, artifacts, true, len(bootChecks)+len(workerChecks))
}

// generated generates doc into a temp dir.
func generated(t *testing.T, doc *spec.Document) (*generate.Result, *gen.Context) {
	t.Helper()
	res, err := generate.Run(context.Background(), doc, generate.Options{Out: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	return res, gen.New(doc.Cluster, res.Bundle)
}

// runBooted runs verify on the cluster directory dir with artifacts booted
// (every node, with boot), and fails the test on an error, a failing row or
// a row count other than rows; afterwards nothing of the run may be left:
// no process, namespace, mount or container cgroup.
func runBooted(t *testing.T, doc *spec.Document, dir string, bins []string, artifacts map[string]string, boot bool, rows int) {
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
	rep, err := Run(context.Background(), Options{
		Cluster:   doc.Cluster,
		Dir:       dir,
		BinDirs:   bins,
		WorkDir:   work,
		Out:       &out,
		Log:       slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelWarn})),
		Artifacts: artifacts,
		Boot:      boot,
	})
	t.Logf("verify with %s booted, in %s:\n%s", strings.Join(slices.Sorted(maps.Keys(artifacts)), ", "), time.Since(start).Round(time.Millisecond), out.String())
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Rows {
		if !r.Pass {
			t.Errorf("row %d %s: %s", r.N, r.Name, r.Detail)
		}
	}
	if n := len(rep.Rows); n != rows {
		t.Errorf("%d rows, want %d", n, rows)
	}
	assertNothingLeft(t, rep, work)
	assertNoMountsUnder(t, work)
	for name := range artifacts {
		if n, _ := doc.Cluster.Node(name); n.Target == spec.TargetLXC {
			assertNoCgroup(t, fmt.Sprintf("lxc/%d", n.VMID))
		}
	}
}

// pinnedExample copies an example spec into a temp dir with what bake
// needs beside it: binaries.dir holds hard links to the pinned binaries (bin dirs and
// $HARDWAY_RUNTIME_DIR), pinned in spec.binaries.sha256 as `hardway pin`
// would, and spec.images the archives `make images` built (the smoke image
// among them). The user's file is never changed.
func pinnedExample(t *testing.T, file string, bins []string) *spec.Document {
	t.Helper()
	dir := t.TempDir()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	runtimeDir := os.Getenv("HARDWAY_RUNTIME_DIR")
	if runtimeDir == "" {
		t.Fatal("HARDWAY_RUNTIME_DIR is not set: make runtime's bin/runtime (make test sets it)")
	}
	art := filepath.Join(dir, "artifacts")
	for _, d := range append(slices.Clone(bins), runtimeDir) {
		es, err := os.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			src, _ := filepath.EvalSymlinks(filepath.Join(d, e.Name()))
			dst := filepath.Join(art, e.Name())
			if err := os.MkdirAll(art, 0o755); err != nil {
				t.Fatal(err)
			}
			if os.Link(src, dst) != nil { // another file system: a copy
				copyPinned(t, src, dst, 0o755)
			}
		}
	}
	var imgs []string
	for _, a := range imageArchives(t) {
		copyPinned(t, a, filepath.Join(dir, "images", filepath.Base(a)), 0o644)
		imgs = append(imgs, "images/"+filepath.Base(a))
	}
	s := regexp.MustCompile(`(?m)^  images: .*$`).ReplaceAllString(string(data), "  images: ["+strings.Join(imgs, ", ")+"]")
	specFile := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(specFile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	pins, missing, err := bake.Pins(loadExample(t, specFile))
	if err != nil || len(missing) > 0 {
		t.Fatalf("pins: %v, missing %v", err, missing)
	}
	var b strings.Builder
	b.WriteString("    sha256:\n")
	for _, name := range slices.Sorted(maps.Keys(pins)) {
		fmt.Fprintf(&b, "      %s: %q\n", name, pins[name])
	}
	s = strings.Replace(s, "    dir: artifacts\n", "    dir: artifacts\n"+b.String(), 1)
	if err := os.WriteFile(specFile, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
	return loadExample(t, specFile)
}
