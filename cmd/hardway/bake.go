package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/hardway-dev/hardway/bake"
	"github.com/hardway-dev/hardway/clusterdir"
	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/nodefiles"
	"github.com/hardway-dev/hardway/spec"
)

func newBake() *cobra.Command {
	var file, base, node, role, format, artifactDir, dir, diskSize, imageFormat string
	var jobs int
	var out *outputFlag
	cmd := &cobra.Command{
		Use: "bake",
		// Stopping removes temporary artifacts and processes: give it time.
		Annotations: map[string]string{"grace": "cleanup"},
		Short:       "Bake Proxmox LXC templates and KVM disk images from a base rootfs, the pinned binaries and the node trees",
		Long: `bake turns a base root file system (a tarball: plain, gzip, xz, zstd or
bzip2), the pinned binaries of the node's roles (binaries.mode upstream) and
the node's file tree into a Proxmox container template that boots straight
into its role:

  <artifact dir>/<os>-<version>-hardway-<node>_<kubernetes version>_amd64.tar.zst
  <artifact dir>/<same>.tar.zst.sha256     (sha256sum -c)
  <artifact dir>/bake-manifest.json        every artifact: path, node, kind, sha256,
                                           size, secret (and the secret paths inside)

The artifact dir is --artifact-dir, by default <dir>/<cluster>/bake. On
standard output it prints "sha256  path" of each artifact, as sha256sum does
(with -o json: a list of artifacts, see docs/cli.md).

An artifact that holds a private key or a kubeconfig (every node's but an
lb's, and a controller's holds the CA key) is written 0600 and marked
"secret": keep it on storage only root can read. The .sha256 files are 0644.

It first runs generate (so the baked trees are the ones in <dir>/<cluster>/),
checks every binary against its pin, then streams the base into the
templates, reading it once for all those baked together (--jobs) and
checking it as it goes (systemd, /sbin, os-release; a member below a
symlink, a hard link to nothing earlier, a path twice or a group/world-
writable setuid program is refused, naming each; device nodes outside /dev
are dropped and counted): a template is published only once the whole base
passed. No root, no VM, no network. The
same inputs give the same bytes: entries are sorted, owners numeric, added
files dated SOURCE_DATE_EPOCH (else 1970) and, with SOURCE_DATE_EPOCH set,
base mtimes clamped to it. A template follows pct's rules: an sbin entry, at
least 10 members, nothing below /dev, only user.* and security.capability
xattrs. Every bake also empties /etc/machine-id and
removes the base's SSH host keys (a unit recreates them at first boot).

Without --node or --role it bakes every node of target lxc; with --role,
every node of target lxc that has the role.

With --format sysext it bakes, for each kvm node booted by Ignition with
role etcd, controller or worker (Flatcar, which carries none of their
binaries), a systemd-sysext image of its roles' pinned binaries (and, on a
worker, the spec's image archives) under /usr/lib/hardway, and its Ignition
config, which fetches that image from spec.ignition.url at first boot,
checked by its SHA-256 (--base is not read; mksquashfs makes the image):

  <artifact dir>/hardway-<node>_<kubernetes version>_x86-64.raw
  <artifact dir>/hardway-<node>_<kubernetes version>.ign   (0600: the node's keys)

Serve the directory at spec.ignition.url; create-nodes.sh gives the node
the .ign as its user-data and imports spec.ignition.images.flatcar as its disk.

With --format kvm it bakes, for each node of target kvm, a node image that
boots into its role with no seed (UEFI, q35 or i440fx, any disk bus):

  <artifact dir>/<os>-<version>-hardway-<node>_<kubernetes version>_amd64.qcow2 (and/or .raw)

With --format kvm --role ROLE it bakes one role image instead:

  <artifact dir>/<os>-<version>-hardway-<role>_<kubernetes version>_amd64.qcow2 (and/or .raw)

A role image holds the binaries of every role of the kvm nodes with ROLE and
no node's configuration: at first boot, cloud-init (which the base must have) takes
the identity, files and network of the node it boots as from that node's
NoCloud seed: on Proxmox, the cloud-init drive its generated qm settings
give it (cicustom snippets); elsewhere <dir>/<cluster>/nodes/<node>/seed.iso
attached as a disk or CD-ROM. One image serves every node of the role; its
disk is the largest diskGiB among them.

A KVM image is a GPT disk of --disk-size (default the node's diskGiB) with an EFI system
partition (systemd-boot, the base's /vmlinuz and /initrd.img) and an ext4
root partition written by hardway's ext4 writer from the same merged stream (the base's
device nodes under /dev and all xattrs kept): no extracted tree, no root, no loop mount, no VM. The
root grows to the disk at boot (systemd-repart, x-systemd.growfs), and
hardway-ready.service prints "hardway: <node> <roles> ready" on the serial
console once the role's units are active. The base needs linux-image-amd64,
initramfs-tools and systemd-boot (hack/base.sh --kvm); the build machine
dosfstools, mtools and, for qcow2, qemu-utils.`,
		Example: `  hack/base.sh            # a Debian bookworm base, cached in ~/.cache/hardway/base
  hardway bake -f cluster.yaml --base ~/.cache/hardway/base/debian-12-base.tar.zst --node etcd1
  hardway bake -f cluster.yaml --base base.tar.zst --jobs 2 --artifact-dir /var/lib/vz/template/cache
  hack/base.sh --kvm      # a small base with a kernel, initrd and systemd-boot
  hardway bake -f cluster.yaml --base ~/.cache/hardway/base/debian-12-kvm.tar.zst --node kub-master \
    --format kvm --disk-size 4G --image-format raw,qcow2
  hardway bake -f cluster.yaml --base ~/.cache/hardway/base/debian-12-kvm.tar.zst --role worker --format kvm`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := out.resolve(); err != nil {
				return err
			}
			if err := oneOf("format", format, bake.FormatLXC, bake.FormatKVM, bake.FormatSysext); err != nil {
				return err
			}
			if base == "" && format != bake.FormatSysext {
				return usageErrorf("--base is required: a base root file system tarball (hack/base.sh builds one)")
			}
			doc, err := loadSpec(cmd.ErrOrStderr(), file, spec.Options{})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res, err := clusterdir.Run(ctx, doc, generateOptions(dir))
			if err != nil {
				return err
			}
			var kvm bake.KVMOptions
			if format == bake.FormatKVM {
				if kvm, err = kvmOptions(diskSize, imageFormat); err != nil {
					return usageError{err}
				}
			} else if cmd.Flags().Changed("disk-size") || cmd.Flags().Changed("image-format") {
				return usageErrorf("--disk-size and --image-format apply to --format kvm")
			}
			jobList, err := bake.Jobs(nodegen.New(doc.Cluster, res.Bundle), format, node, role)
			if err != nil {
				return err
			}
			if artifactDir == "" {
				artifactDir = filepath.Join(res.Dir, nodefiles.BakeDir)
			}
			progress := &bake.Progress{}
			log, stop := progressLog(cmd.ErrOrStderr(), progress)
			defer stop()
			cfg := bake.Config{Doc: doc, Base: base, Out: artifactDir, Parallel: jobs, Log: log, Progress: progress, Epoch: sourceDate()}
			var results []bake.Result
			switch format {
			case bake.FormatKVM:
				results, err = bake.RunKVM(ctx, cfg, kvm, jobList)
			case bake.FormatSysext:
				results, err = bake.RunSysext(ctx, cfg, jobList)
			default:
				results, err = bake.Run(ctx, cfg, jobList)
			}
			stop()
			if out.json() {
				if jerr := writeJSON(cmd.OutOrStdout(), bakeResults(format, results)); err == nil {
					err = jerr
				}
				return err
			}
			for _, r := range results {
				fmt.Fprintf(cmd.OutOrStdout(), "%s  %s\n", r.SHA256, r.Path)
			}
			return err
		},
	}
	specFlag(cmd, &file)
	cmd.Flags().StringVar(&base, "base", "", "base root file system tarball (tar, gzip, xz, zstd or bzip2)")
	_ = cmd.MarkFlagFilename("base", "tar", "gz", "tgz", "xz", "zst", "bz2")
	cmd.Flags().StringVar(&node, "node", "", "bake only this node")
	_ = cmd.RegisterFlagCompletionFunc("node", completeFromSpec(&file, nodeNames))
	cmd.Flags().StringVar(&role, "role", "", "bake only the nodes with this role (kvm: one role image for them)")
	_ = cmd.RegisterFlagCompletionFunc("role", completeFromSpec(&file, roleNames))
	cmd.Flags().StringVar(&format, "format", bake.FormatLXC, "artifact format: lxc (Proxmox container template), kvm (disk image) or sysext (systemd-sysext image and Ignition config of a node booted by Ignition)")
	_ = cmd.RegisterFlagCompletionFunc("format", cobra.FixedCompletions([]string{bake.FormatLXC, bake.FormatKVM, bake.FormatSysext}, cobra.ShellCompDirectiveNoFileComp))
	cmd.Flags().StringVar(&diskSize, "disk-size", "", "kvm: disk size with a unit, e.g. 4G or 4096M; at least 1G; a bare number is refused (default the node's diskGiB)")
	cmd.Flags().StringVar(&imageFormat, "image-format", bake.ImageQCOW2, "kvm: image files to write: raw, qcow2 or raw,qcow2")
	_ = cmd.RegisterFlagCompletionFunc("image-format", cobra.FixedCompletions([]string{bake.ImageQCOW2, bake.ImageRaw, bake.ImageRaw + "," + bake.ImageQCOW2}, cobra.ShellCompDirectiveNoFileComp))
	dirFlag(cmd, &dir, defaultDir, "output root: bake runs generate into <dir>/<cluster>/ first")
	cmd.Flags().StringVar(&artifactDir, "artifact-dir", "", "directory of the artifacts (default <dir>/<cluster>/bake)")
	_ = cmd.MarkFlagDirname("artifact-dir")
	out = addOutput(cmd).legacyOutput(&artifactDir, "--artifact-dir")
	cmd.Flags().IntVar(&jobs, "jobs", 0, "artifacts baked in parallel; LXC templates baked together share one read of the base (0: up to 8 templates, one KVM image at a time)")
	return cmd
}

// kvmOptions parses the flags of a KVM bake.
func kvmOptions(diskSize, imageFormat string) (bake.KVMOptions, error) {
	var o bake.KVMOptions
	if diskSize != "" {
		n, err := bake.ParseDiskSize(diskSize)
		if err != nil {
			return o, fmt.Errorf("--disk-size: %w", err)
		}
		o.DiskSize = n
	}
	for _, f := range strings.Split(imageFormat, ",") {
		switch f = strings.TrimSpace(f); f {
		case bake.ImageRaw, bake.ImageQCOW2:
			o.Formats = append(o.Formats, f)
		default:
			return o, fmt.Errorf("--image-format: unknown format %q (have: raw, qcow2)", f)
		}
	}
	return o, nil
}

// progressLog returns the logger of a bake and a function that stops its
// progress display. On a terminal, one line at the bottom shows each running
// step (percent done, members and content bytes written) and log lines are
// printed above it; otherwise progress goes to the log every 10 seconds.
func progressLog(w io.Writer, p *bake.Progress) (*slog.Logger, func()) {
	tty := isTerminal(w)
	lw := &liveWriter{w: w, p: p, tty: tty}
	log := slog.New(slog.NewTextHandler(lw, &slog.HandlerOptions{Level: logLevel(), ReplaceAttr: dropTime}))
	every := 10 * time.Second
	if tty {
		every = 200 * time.Millisecond
	}
	stop := p.Every(every, func(running []*bake.Status) {
		if tty {
			lw.redraw()
			return
		}
		for _, s := range running {
			log.Info("progress", "step", s.Name, "done", pct(s), "members", s.Members.Load(), "content", s.Bytes.Load())
		}
	})
	var once sync.Once
	return log, func() {
		stop()
		once.Do(lw.clear)
	}
}

// logLevel is the level of the default logger (-v sets debug).
func logLevel() slog.Level {
	if slog.Default().Enabled(context.Background(), slog.LevelDebug) {
		return slog.LevelDebug
	}
	return slog.LevelInfo
}

// liveWriter prints log lines above a progress line it keeps at the bottom
// of the terminal.
type liveWriter struct {
	mu    sync.Mutex
	w     io.Writer
	p     *bake.Progress
	tty   bool
	shown bool
}

func (l *liveWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	n, err := l.w.Write(b)
	l.draw()
	return n, err
}

func (l *liveWriter) redraw() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	l.draw()
}

func (l *liveWriter) clear() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	l.tty = false
}

func (l *liveWriter) erase() {
	if l.shown {
		fmt.Fprint(l.w, "\r\x1b[K")
		l.shown = false
	}
}

func (l *liveWriter) draw() {
	if !l.tty {
		return
	}
	var parts []string
	for _, s := range l.p.Steps() {
		if !s.Done.Load() {
			parts = append(parts, fmt.Sprintf("%s %s %d members %s", s.Name, pct(s), s.Members.Load(), mib(s.Bytes.Load())))
		}
	}
	if len(parts) == 0 {
		return
	}
	line := strings.Join(parts, " | ")
	if w, _, err := term.GetSize(int(l.w.(*os.File).Fd())); err == nil && w > 4 && len(line) > w-1 {
		line = line[:w-4] + "..."
	}
	fmt.Fprint(l.w, line)
	l.shown = true
}

// pct is how far a step is.
func pct(s *bake.Status) string { return fmt.Sprintf("%d%%", int(s.Fraction()*100)) }

func mib(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
