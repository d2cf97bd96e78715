// Package bake turns a base root file system, the roles' pinned binaries and
// a node's file tree into an artifact that boots into its role: a Proxmox LXC
// template (.tar.zst) or a KVM disk image. It reads the base once, checking
// it while it writes the artifacts; it needs no root, no VM, no loop mount
// and no network.
package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/pvename"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// FormatLXC is the Proxmox container template format.
const FormatLXC = "lxc"

// Config is one bake run.
type Config struct {
	Doc      *spec.Document // the validated spec: binaries, images, Kubernetes version
	Base     string         // base root file system: a tarball, plain or gzip, xz, zstd or bzip2
	Out      string         // output directory
	Parallel int            // artifacts baked at once; at least 1 (the CLI's --jobs)
	Log      *slog.Logger
	Progress *Progress  // live progress, may be nil
	Epoch    emit.Epoch // the layers' mtimes, and the base's clamped to it when set (the caller reads SOURCE_DATE_EPOCH)
}

// Job is one artifact to bake.
type Job struct {
	Subject string     // node or role name, part of the file name
	Node    string     // the node whose tree this is ("" for a role artifact)
	Roles   []string   // roles whose binaries go in
	Tree    *tree.Tree // the node overlay; nil for a role artifact
}

// Result is one baked artifact.
type Result struct {
	Job      Job
	Path     string // the artifact file
	SHA256   string
	Stats    *rootfs.Stats
	Duration time.Duration
}

// errMixed is returned for a selection of both a node and a role.
var errMixed = errors.New("select artifacts with --node or --role, not both")

// Jobs selects the artifacts of format to bake from the spec: for lxc, one
// template per node of target lxc (the node's tree is baked in), all of them,
// only node, or those with role; for kvm, see KVMJobs; for sysext, SysextJobs.
func Jobs(x *nodegen.Context, format, node, role string) ([]Job, error) {
	switch format {
	case FormatLXC:
		return nodeJobs(x, format, node, role, nil)
	case FormatKVM:
		return KVMJobs(x, node, role)
	case FormatSysext:
		return SysextJobs(x, node, role)
	}
	return nil, unknownFormat(format)
}

// unknownFormat is the error for a format bake does not make.
func unknownFormat(format string) error {
	return fmt.Errorf("unknown format %q (have: %s, %s, %s)", format, FormatLXC, FormatKVM, FormatSysext)
}

// Select returns the nodes that the artifacts of format selected by node or
// role (or neither: all) are made for, in spec order: what `hardway bake`
// and the Packer bake builders bake. For a kvm role image (role without
// node), they are the nodes it serves (RoleNodes). It reads only the spec,
// so that a caller can check a selection before generating anything.
func Select(c *spec.Cluster, format, node, role string) ([]spec.Node, error) {
	var set nodeSet
	switch format {
	case FormatLXC:
		set = ofTarget(spec.TargetLXC, "an LXC template")
	case FormatKVM:
		set = ofTarget(spec.TargetKVM, "a KVM image")
		if role != "" && node == "" {
			if nodes := RoleNodes(c, role); len(nodes) > 0 {
				return nodes, nil
			}
			served := func(n spec.Node) bool { return set.of(n) && debianBased(n) == nil }
			return nil, fmt.Errorf("no node of target kvm booted by cloud-init has role %q (their roles: %s)", role, rolesOf(c, served))
		}
	case FormatSysext:
		set = sysextSet
	default:
		return nil, unknownFormat(format)
	}
	if node != "" && role != "" {
		return nil, errMixed
	}
	var out []spec.Node
	for _, n := range c.Spec.Nodes {
		switch {
		case node != "" && n.Name != node:
			continue
		case node != "" && !set.of(n):
			return nil, set.not(n)
		case !set.of(n), role != "" && !n.Has(role):
			continue
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		switch {
		case node != "":
			var names []string
			for _, n := range c.Spec.Nodes {
				names = append(names, n.Name)
			}
			return nil, fmt.Errorf("no node %q in the spec (nodes: %s)", node, strings.Join(names, ", "))
		case role != "":
			return nil, fmt.Errorf("no node %s has role %q (their roles: %s)", set.name, role, rolesOf(c, set.of))
		}
		return nil, fmt.Errorf("the spec has no node %s", set.name)
	}
	return out, nil
}

// rolesOf lists, sorted, the roles held by the nodes of c that of selects.
func rolesOf(c *spec.Cluster, of func(spec.Node) bool) string {
	var out []string
	for _, n := range c.Spec.Nodes {
		if !of(n) {
			continue
		}
		for _, r := range n.Roles {
			if !slices.Contains(out, r) {
				out = append(out, r)
			}
		}
	}
	if len(out) == 0 {
		return "none"
	}
	slices.Sort(out)
	return strings.Join(out, ", ")
}

// nodeSet is the nodes an artifact kind is made for.
type nodeSet struct {
	of   func(spec.Node) bool  // a node the artifact is made for
	not  func(spec.Node) error // why a node selected by name is not one
	name string                // the set in messages: "of target lxc", ...
}

// ofTarget is the nodes of target, whose artifact what names.
func ofTarget(target, what string) nodeSet {
	return nodeSet{
		of: func(n spec.Node) bool { return n.Target == target },
		not: func(n spec.Node) error {
			return fmt.Errorf("node %s has target %s; %s is for target %s nodes", n.Name, n.Target, what, target)
		},
		name: "of target " + target,
	}
}

// nodeJobs returns a job, with the node's tree, for every node Select
// returns. treeOf, when set, gives the node's tree in place of
// generators.Node, or refuses the node.
func nodeJobs(x *nodegen.Context, format, node, role string, treeOf func(*nodegen.Context, spec.Node) (*tree.Tree, error)) ([]Job, error) {
	if treeOf == nil {
		treeOf = generators.Node
	}
	nodes, err := Select(x.C, format, node, role)
	if err != nil {
		return nil, err
	}
	var jobs []Job
	for _, n := range nodes {
		t, err := treeOf(x, n)
		if err != nil {
			return nil, err
		}
		jobs = append(jobs, Job{Subject: n.Name, Node: n.Name, Roles: n.Roles, Tree: t})
	}
	return jobs, nil
}

// Run bakes jobs and records every artifact it published in the output
// directory's bake-manifest.json. Every pinned binary is checked before
// anything is written; the base is read once for up to cfg.Parallel
// templates at a time (fanOut; up to maxFanOut with 0), learned and checked
// while they are merged: an artifact is written to a temporary file and
// renamed into place once complete and checked, so a bad base leaves
// nothing. On any error, or when ctx is cancelled, the temporary files are
// removed and the other jobs stop.
func Run(ctx context.Context, cfg Config, jobs []Job) ([]Result, error) {
	layers, err := prepare(&cfg, jobs)
	if err != nil {
		return nil, err
	}
	watch := append(watchNames(jobs, cfg.Doc.Cluster.Spec.Binaries.Mode), path.Base(debianVersion))
	check := &baseCheck{check: func(info *rootfs.BaseInfo) error {
		return checkBaseFor(&cfg, jobs, layers, info, func(info *rootfs.BaseInfo) error { return checkTemplateBase(cfg.Base, info) })
	}}
	width := cfg.Parallel
	if width <= 0 {
		width = min(len(jobs), maxFanOut)
	}
	pool, err := newFramePool(0, frameSize, width) // every template's frames, on every processor
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	var results []Result
	for first := 0; first < len(jobs); first += width {
		pass := jobs[first:min(first+width, len(jobs))]
		steps := make([]*Status, len(pass))
		var read []*atomic.Int64
		for i, j := range pass {
			steps[i] = cfg.Progress.start(provisional(j.Subject, pvename.ExtTemplate), baseSize(cfg.Base))
			read = append(read, &steps[i].Read)
		}
		fo, err := newFanOut(ctx, cfg.Base, len(pass), read, passOver(pass, layers[first:]))
		if err != nil {
			return results, err
		}
		passCfg := cfg
		passCfg.Parallel = len(pass)
		r, err := bakeAll(ctx, passCfg, KindLXC, pass, func(ctx context.Context, i int) ([]Result, error) {
			defer fo.readers[i].Close()
			defer steps[i].Done.Store(true)
			k := first + i
			r, err := bakeLXC(ctx, cfg, jobs[k], layers[k], fo.readers[i].stream, steps[i], watch, check, pool)
			return []Result{r}, err
		})
		for _, fr := range fo.readers {
			fr.Close()
		}
		<-fo.done
		results = append(results, r...)
		if err != nil {
			return results, err
		}
	}
	return results, nil
}

// provisional names an artifact of subject, with extension ext, until the
// base has told its OS: its temporary file and its progress step.
func provisional(subject, ext string) string { return "hardway-" + subject + "." + ext }

// maxFanOut is how many templates one read of the base feeds when
// cfg.Parallel is 0: each holds the chunk it is filling (frameSize) and
// its share of the decoded stream; the encoders are shared (framePool).
const maxFanOut = 8

// baseSize is the size of the base file, for progress (0 if unknown).
func baseSize(name string) int64 {
	if st, err := os.Stat(name); err == nil {
		return st.Size()
	}
	return 0
}

// prepare readies a bake of jobs before anything is written: it checks
// every pinned binary, building each job's binaries layer and node
// overlay. It sets cfg.Log when nil.
func prepare(cfg *Config, jobs []Job) ([][]rootfs.Layer, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return roleLayers(cfg.Doc, jobs)
}

// checkBaseFor checks what the base is, once read: with check (the
// artifact kind's own needs), and that it has what each node's tree needs
// (checkNeeds); then it says what the base is.
func checkBaseFor(cfg *Config, jobs []Job, layers [][]rootfs.Layer, info *rootfs.BaseInfo, check func(*rootfs.BaseInfo) error) error {
	if err := check(info); err != nil {
		return err
	}
	if err := checkNeeds(cfg.Log, cfg.Base, cfg.Doc.Cluster.Spec.Binaries.Mode, jobs, layers, info); err != nil {
		return err
	}
	cfg.Log.Info("base", "file", cfg.Base, "os", info.OS.PrettyName, "compression", info.Compression,
		"members", info.Members, "bytes", info.Size)
	return nil
}

// record adds the published artifacts, of kind, to the output directory's
// manifest.
func record(dir, kind string, results []Result) error {
	if len(results) == 0 {
		return nil
	}
	arts := make([]artifact, 0, len(results))
	for _, r := range results {
		var size int64
		if st, err := os.Stat(r.Path); err == nil {
			size = st.Size()
		}
		a := artifact{Artifact: output.Artifact{Path: filepath.Base(r.Path), Node: r.Job.Node, Kind: kind, SHA256: r.SHA256, Size: size}}
		if r.Stats != nil && len(r.Stats.Secrets) > 0 {
			a.Secret, a.Secrets = true, r.Stats.Secrets
		}
		arts = append(arts, a)
	}
	return recordArtifacts(dir, arts)
}

// roleLayers builds each job's binaries layer and node overlay, checking
// every pinned binary before anything else is done.
func roleLayers(doc *spec.Document, jobs []Job) ([][]rootfs.Layer, error) {
	out := make([][]rootfs.Layer, len(jobs))
	var errs []error
	pins := pinCache{}
	for i, j := range jobs {
		bin, err := binariesLayer(doc, j.Subject, j.Roles, pins)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", j.Subject, err))
			continue
		}
		out[i] = []rootfs.Layer{bin}
		if j.Tree != nil {
			node, err := rootfs.FromTree("node "+j.Node, j.Tree)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			out[i] = append(out[i], node)
		}
	}
	return out, errors.Join(errs...)
}

// openBase opens the base file.
func openBase(name string) (*os.File, os.FileInfo, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, fmt.Errorf("base: %w", err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		return nil, nil, fmt.Errorf("base %s: not a regular file", name)
	}
	return f, st, nil
}

// bakeAll bakes the jobs (runJobs) and records what they published in the
// bake manifest (record), as one writer at work in cfg.Out: the first bake
// into a directory with no other at work first removes the temporary files
// and work directories an interrupted bake left there (output.Working).
func bakeAll(ctx context.Context, cfg Config, kind string, jobs []Job, bakeJob func(context.Context, int) ([]Result, error)) (results []Result, err error) {
	_, statErr := os.Stat(cfg.Out)
	release, swept, err := output.Working(cfg.Out)
	if err != nil {
		return nil, err
	}
	defer func() {
		release()
		if errors.Is(statErr, fs.ErrNotExist) && len(results) == 0 {
			output.Unmake(cfg.Out) // a run that made the directory and failed leaves none
		}
	}()
	if len(swept) > 0 {
		cfg.Log.Info("removed the temporary files of an interrupted bake", "files", len(swept))
		for _, p := range swept {
			cfg.Log.Debug("removed", "file", p)
		}
	}
	results, err = runJobs(ctx, cfg, jobs, bakeJob)
	return results, errors.Join(err, record(cfg.Out, kind, results))
}

// runJobs bakes the jobs on cfg.Parallel workers, job i by bakeJob(ctx, i); the
// first error stops the rest. The results are sorted by path.
func runJobs(ctx context.Context, cfg Config, jobs []Job, bakeJob func(context.Context, int) ([]Result, error)) ([]Result, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu      sync.Mutex
		results []Result
		errs    []error
		wg      sync.WaitGroup
		sem     = make(chan struct{}, max(cfg.Parallel, 1))
	)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			select {
			case sem <- struct{}{}:
				defer func() { <-sem }()
			case <-ctx.Done():
				return
			}
			if ctx.Err() != nil {
				return
			}
			r, err := bakeJob(ctx, i)
			mu.Lock()
			defer mu.Unlock()
			var shared *sharedError
			switch {
			case err == nil:
			case errors.As(err, &shared):
				if !slices.ContainsFunc(errs, func(e error) bool { return e == shared.error }) {
					errs = append(errs, shared.error)
				}
			case len(errs) > 0 && errors.Is(err, context.Canceled):
				// stopped by the first error
			default:
				errs = append(errs, fmt.Errorf("bake %s: %w", j.Subject, err))
			}
			if err != nil {
				cancel()
				return
			}
			results = append(results, r...)
		}()
	}
	wg.Wait()
	slices.SortFunc(results, func(a, b Result) int { return strings.Compare(a.Path, b.Path) })
	if len(errs) == 0 && ctx.Err() != nil {
		errs = append(errs, ctx.Err())
	}
	return results, errors.Join(errs...)
}

// lxcPlanner plans j's template on a base.
func lxcPlanner(j Job, layers []rootfs.Layer) rootfs.Planner {
	return func(info *rootfs.BaseInfo) (*rootfs.Plan, error) {
		return rootfs.NewPlan(info, append([]rootfs.Layer{rootfs.Sysprep(info), lxcLayer(info, j)}, layers...)...)
	}
}

// passOver says which runs of an indexed base's frames a pass of
// templates may go by undecoded: those every template's plan removes, as
// planned before the base is read (rootfs.Removes; each MergeScan checks
// it again under the plan of the whole base). layers are the pass's
// jobs' first. A template that cannot be planned yet has every frame
// decoded (nil): its merge says why it cannot be planned at all.
func passOver(pass []Job, layers [][]rootfs.Layer) func(roots []string) bool {
	var all []func([]string) bool
	for i, j := range pass {
		removes, err := rootfs.Removes(lxcPlanner(j, layers[i]))
		if err != nil {
			return nil
		}
		all = append(all, removes)
	}
	return func(roots []string) bool {
		for _, removes := range all {
			if !removes(roots) {
				return false
			}
		}
		return true
	}
}

// bakeLXC writes one container template, reading the base from src.
// pool compresses its frames, shared with the templates baked beside it.
func bakeLXC(ctx context.Context, cfg Config, j Job, layers []rootfs.Layer, src io.Reader, s *Status, watch []string, check *baseCheck, pool *framePool) (Result, error) {
	start := time.Now()
	planner := lxcPlanner(j, layers)
	cfg.Log.Info("baking", "node", j.Node, "roles", j.Roles)
	// The name says the base's OS, known once it is read.
	out, err := create(cfg.Out, provisional(j.Subject, pvename.ExtTemplate))
	if err != nil {
		return Result{}, err
	}
	defer out.abort()
	stats, info, err := mergeInto(ctx, cfg, src, planner, rootfs.Options{
		Epoch: cfg.Epoch.Time(), Clamp: cfg.Epoch.Set, Exclude: lxcExclude, Xattr: lxcXattr, Counters: &s.Counters, Log: cfg.Log,
	}, watch, &zstdSink{out: out, written: &s.Written, pool: pool})
	if err != nil {
		return Result{}, err
	}
	if err := check.of(info); err != nil {
		return Result{}, err
	}
	if err := checkPCT(stats); err != nil {
		return Result{}, err
	}
	out.name = FileName(info.OS, j.Subject, cfg.Doc.Cluster.Spec.KubernetesVersion)
	sum, err := out.publish(artifactMode(stats))
	if err != nil {
		return Result{}, err
	}
	logStats(cfg.Log, out.name, stats, out.n, time.Since(start))
	return Result{Job: j, Path: filepath.Join(cfg.Out, out.name), SHA256: sum, Stats: stats, Duration: time.Since(start)}, nil
}

// zstdSink compresses a template into its temporary file.
type zstdSink struct {
	out     *pending
	written *atomic.Int64
	pool    *framePool
	zw      *frameWriter
}

func (z *zstdSink) start() (io.Writer, error) {
	if err := z.out.reset(); err != nil {
		return nil, err
	}
	z.zw = z.pool.newFrameWriter(countWriter{z.out, z.written})
	return z.zw, nil
}

func (z *zstdSink) end(merr error) error {
	if err := z.zw.Close(); merr == nil && err != nil {
		return fmt.Errorf("write %s: %w", z.out.name, err)
	}
	return merr
}

// layerBytes is the file content of layers.
func layerBytes(layers []rootfs.Layer) int64 {
	var n int64
	for _, l := range layers {
		for _, e := range l.Entries {
			n += e.Size
		}
	}
	return n
}

// logStats says what an LXC bake made, and what it left out and why.
func logStats(log *slog.Logger, name string, st *rootfs.Stats, size int64, d time.Duration) {
	log.Info("baked", "artifact", name, "members", st.Members, "content", st.Bytes, "size", size,
		"from_base", st.FromBase, "from_layers", st.FromLayers, "replaced", st.Replaced, "took", d.Round(time.Millisecond))
	if len(st.Skipped) > 0 {
		var members int
		var content int64
		for _, s := range st.Skipped {
			members, content = members+s.Members, content+s.Content
		}
		log.Info("passed over the indexed base's frames of removed members, undecoded", "artifact", name, "members", members, "bytes", content)
	}
	if len(st.DroppedXattrs) > 0 {
		log.Info("dropped xattrs pct does not restore (it keeps user.* and security.capability)", "artifact", name, "xattrs", xattrSummary(st.DroppedXattrs))
	}
	logDropped(log, name, st)
}

// dropNotes say why a bake leaves base members out, by Stats.Dropped reason.
var dropNotes = []struct{ reason, note string }{
	{rootfs.DropExcluded, "dropped members below /dev: pct extracts templates with --exclude ./dev/*"},
	{rootfs.DropRemoved, "removed base members: SSH host keys, links enabling services the node does not run, in a container the kernel and its modules"},
	{rootfs.DropDevice, "dropped device nodes outside /dev (and hard links to them): a root file system needs them only in /dev, and elsewhere one goes around the node's permissions"},
	{rootfs.DropHardlink, "dropped base hard links whose target the bake left out (GNU tar cannot make them); each is in a warning"},
}

// logDropped says what a bake left out of the base and why, and which
// secrets of the node's tree the artifact holds (only their count and
// where: never their content).
func logDropped(log *slog.Logger, name string, st *rootfs.Stats) {
	for _, d := range dropNotes {
		if n := st.Dropped[d.reason]; n > 0 {
			log.Info(d.note, "artifact", name, "count", n)
		}
	}
	if n := len(st.Secrets); n > 0 {
		log.Info(fmt.Sprintf("holds %d secrets of its node (private keys, kubeconfigs): readable by its owner only (%04o); keep it on storage only administrators read", n, secretMode),
			"artifact", name, "secrets", strings.Join(st.Secrets, ","))
	}
}
