package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/generators/proxmox"
	"github.com/hardway-dev/hardway/generators/worker"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/output"
	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// FormatSysext bakes, for a node booted by Ignition that runs pinned
// binaries (spec.Node.Sysext), the systemd-sysext image that carries them
// and the node's Ignition config, which fetches that image.
const FormatSysext = "sysext"

// The bake-manifest.json kinds of a sysext bake.
const (
	KindSysext   = "sysext-image"
	KindIgnition = "ignition-config"
)

// sysextPlaces maps where the binaries layer puts a file (binariesLayer, as
// on a node baked from a base) to where the sysext image carries it:
// systemd-sysext merges the image's /usr only, and the units of a node
// booted by Ignition run the binaries there (nodegen.Context.Bin).
var sysextPlaces = []struct{ from, to string }{
	{nodegen.PinnedBinDir, nodegen.SysextDir + "/bin"},
	{worker.UpstreamCNIBinDir, worker.SysextCNIBinDir},
	{worker.ImagesDir, worker.SysextImagesDir},
}

// extensionRelease is the image's extension-release file. ID=_any: the
// pinned binaries are static builds and the archives data, so the image
// fits any OS release (no SYSEXT_LEVEL or VERSION_ID to match), on x86-64
// (the nodes' arch, amd64).
const extensionRelease = "ID=_any\nARCHITECTURE=x86-64\n"

// mksquashfsArgs make the image reproducible: owners root, no xattrs, every
// time 0 (mksquashfs orders entries and blocks the same way on every run).
var mksquashfsArgs = []string{"-noappend", "-all-root", "-no-xattrs", "-mkfs-time", "0", "-all-time", "0", "-quiet", "-no-progress"}

// SysextJobs selects the nodes booted by Ignition that run pinned binaries:
// all of them, only node, or those with role.
func SysextJobs(x *nodegen.Context, node, role string) ([]Job, error) {
	return nodeJobs(x, FormatSysext, node, role, nil)
}

// sysextSet is the nodes that have a systemd-sysext image.
var sysextSet = nodeSet{
	of: spec.Node.Sysext,
	not: func(n spec.Node) error {
		return fmt.Errorf("node %s has no systemd-sysext image: only a kvm node booted by Ignition with role etcd, controller or worker has one", n.Name)
	},
	name: "booted by Ignition with role etcd, controller or worker",
}

// RunSysext bakes, for each job, the node's systemd-sysext image (a
// squashfs made by mksquashfs: its roles' pinned binaries and, on a worker,
// the spec's image archives, at sysextPlaces, and its extension-release) and
// then its Ignition config, which fetches the image from spec.ignition.url
// and checks it against the SHA-256 of the bytes just written. Every pinned
// binary is checked before anything is written; cfg.Base is not read.
func RunSysext(ctx context.Context, cfg Config, jobs []Job) ([]Result, error) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if _, err := exec.LookPath("mksquashfs"); err != nil {
		return nil, errors.New("a sysext bake needs mksquashfs (apt-get install squashfs-tools)")
	}
	layers, err := roleLayers(cfg.Doc, jobs)
	if err != nil {
		return nil, err
	}
	release, swept, err := output.Working(cfg.Out)
	if err != nil {
		return nil, err
	}
	defer release()
	if len(swept) > 0 {
		cfg.Log.Info("removed the temporary files of an interrupted bake", "files", len(swept))
	}
	x := nodegen.New(cfg.Doc.Cluster, nil) // emit.Ignition reads the spec, not the PKI
	results, err := runJobs(ctx, cfg, jobs, func(ctx context.Context, i int) ([]Result, error) {
		return bakeSysext(ctx, cfg, x, jobs[i], layers[i][0])
	})
	var images, configs []Result
	for _, r := range results {
		if strings.HasSuffix(r.Path, ".raw") {
			images = append(images, r)
		} else {
			configs = append(configs, r)
		}
	}
	return results, errors.Join(err, record(cfg.Out, KindSysext, images), record(cfg.Out, KindIgnition, configs))
}

// bakeSysext bakes job j's image from its binaries layer bin, then its
// Ignition config.
func bakeSysext(ctx context.Context, cfg Config, x *nodegen.Context, j Job, bin rootfs.Layer) ([]Result, error) {
	start := time.Now()
	c := cfg.Doc.Cluster
	n, _ := c.Node(j.Node)
	name := nodefiles.SysextFileName(c, j.Node)
	work, err := os.MkdirTemp(cfg.Out, "."+name+".work-*")
	if err != nil {
		return nil, err
	}
	defer removeTree(work)
	root := filepath.Join(work, "root")
	if err := stageSysext(root, bin); err != nil {
		return nil, err
	}
	img := filepath.Join(work, "image.raw")
	if err := runTool(ctx, nil, nil, "mksquashfs", append([]string{root, img}, mksquashfsArgs...)...); err != nil {
		return nil, err
	}
	raw, err := publishCopy(cfg.Out, name, img)
	if err != nil {
		return nil, err
	}
	url := strings.TrimSuffix(c.Spec.Ignition.URL, "/") + "/" + name
	ign, err := emit.Ignition(x, n, j.Tree, &emit.Sysext{URL: url, SHA256: raw.SHA256})
	if err != nil {
		return nil, err
	}
	// create-nodes.sh gives it to the VM as a cicustom snippet.
	if err := proxmox.CheckSnippets(j.Node, map[string][]byte{nodefiles.IgnitionFileName(c, j.Node): ign}); err != nil {
		return nil, err
	}
	p, err := create(cfg.Out, nodefiles.IgnitionFileName(c, j.Node))
	if err != nil {
		return nil, err
	}
	defer p.abort()
	if _, err := p.Write(ign); err != nil {
		return nil, err
	}
	// The config holds the node's keys and kubeconfigs, as its tree does.
	stats := &rootfs.Stats{Secrets: secrets(j.Tree)}
	sum, err := p.publish(artifactMode(stats))
	if err != nil {
		return nil, err
	}
	raw.Job, raw.Duration = j, time.Since(start)
	cfg.Log.Info("baked", "node", j.Node, "sysext", name, "ignition", p.name)
	return []Result{raw, {Job: j, Path: filepath.Join(cfg.Out, p.name), SHA256: sum, Stats: stats, Duration: time.Since(start)}}, nil
}

// stageSysext writes the image's tree below root: every entry of bin at its
// sysextPlaces path (a pinned binary is checked against its pin as it is
// copied) and the extension-release file.
func stageSysext(root string, bin rootfs.Layer) error {
	for _, e := range bin.Entries {
		dest, err := sysextPath(e.Path)
		if err != nil {
			return err
		}
		if err := stageFile(filepath.Join(root, dest), e); err != nil {
			return err
		}
	}
	rel := filepath.Join(root, "usr/lib/extension-release.d", "extension-release."+nodegen.SysextName)
	if err := os.MkdirAll(filepath.Dir(rel), 0o755); err != nil {
		return err
	}
	return os.WriteFile(rel, []byte(extensionRelease), 0o644)
}

// sysextPath is where the image carries a file the binaries layer puts at p.
func sysextPath(p string) (string, error) {
	for _, pl := range sysextPlaces {
		if path.Dir(p) == pl.from {
			return path.Join(pl.to, path.Base(p)), nil
		}
	}
	return "", fmt.Errorf("%s: no place for it in a systemd-sysext image", p)
}

// stageFile copies the regular file entry e to dest, with e's permissions.
func stageFile(dest string, e rootfs.Entry) error {
	if !e.IsFile() || e.Open == nil {
		return fmt.Errorf("%s: not a regular file", e.Path)
	}
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return err
	}
	r, err := e.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_EXCL|os.O_WRONLY, e.Mode.Perm())
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return fmt.Errorf("%s: %w", e.Path, err)
	}
	return f.Close()
}

// publishCopy publishes a copy of file src as dir/name (publicMode: the
// image holds no secret) with its .sha256 sidecar.
func publishCopy(dir, name, src string) (Result, error) {
	in, err := os.Open(src)
	if err != nil {
		return Result{}, err
	}
	defer in.Close()
	p, err := create(dir, name)
	if err != nil {
		return Result{}, err
	}
	defer p.abort()
	if _, err := io.Copy(p, in); err != nil {
		return Result{}, err
	}
	sum, err := p.publish(publicMode)
	if err != nil {
		return Result{}, err
	}
	return Result{Path: filepath.Join(dir, name), SHA256: sum}, nil
}

// secrets are the paths of the secrets of t.
func secrets(t *tree.Tree) []string {
	var out []string
	for _, e := range t.Entries() {
		if e.Secret {
			out = append(out, e.Path)
		}
	}
	return out
}
