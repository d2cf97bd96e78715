package bake

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"

	"github.com/hardway-dev/hardway/ext4"
	"github.com/hardway-dev/hardway/rootfs"
)

// makeRootFS merges the base into the ext4 root file system in one read
// (mergeInto), which package ext4 writes in place in the raw disk at the
// root partition's offset: no tree is extracted, no root or fakeroot is
// needed, and owners, device nodes (/dev is kept: the kernel mounts
// devtmpfs over it), xattrs and POSIX ACLs go in as the stream has them.
// Every inode's access, change and creation time is the epoch; the UUID
// and directory hash seed are derived from the node, so the same inputs
// give the same image on every machine.
func makeRootFS(ctx context.Context, cfg Config, plan rootfs.Planner, watch []string, disk *kvmDisk, raw *pending, read *atomic.Int64, c *rootfs.Counters) (*rootfs.Stats, *rootfs.BaseInfo, *ext4.FS, error) {
	k := &ext4Sink{ctx: ctx, raw: raw, disk: disk, o: ext4.Options{Size: disk.rootBytes, Label: "root", Time: cfg.Epoch.Unix}}
	for _, id := range []struct {
		dst *[16]byte
		s   string
	}{{&k.o.UUID, disk.fsUUID}, {&k.o.HashSeed, disk.seed}} {
		b, err := hex.DecodeString(strings.ReplaceAll(id.s, "-", ""))
		if err != nil || len(b) != 16 {
			return nil, nil, nil, fmt.Errorf("bad UUID %q", id.s)
		}
		copy(id.dst[:], b)
	}
	f, _, err := openBase(cfg.Base)
	if err != nil {
		return nil, nil, nil, err
	}
	defer f.Close()
	st, info, err := mergeInto(ctx, cfg, countReader{f, []*atomic.Int64{read}}, plan, rootfs.Options{
		Epoch: cfg.Epoch.Time(), Clamp: cfg.Epoch.Set, Counters: c, Log: cfg.Log,
	}, watch, k)
	if err != nil {
		return st, info, nil, err // info, when the base was read whole, sizes a disk too small
	}
	return st, info, k.fs, nil
}

// ext4Sink writes a merged stream as the root file system of a raw disk.
type ext4Sink struct {
	ctx  context.Context
	raw  *pending
	disk *kvmDisk
	o    ext4.Options
	pw   *io.PipeWriter
	done chan error
	fs   *ext4.FS
}

// start makes the disk afresh (its partition tables, the rest a hole) and
// starts the writer.
func (k *ext4Sink) start() (io.Writer, error) {
	if err := k.raw.f.Truncate(0); err != nil {
		return nil, err
	}
	if err := partitionTables(k.raw.f, k.disk); err != nil {
		return nil, err
	}
	pr, pw := io.Pipe()
	k.pw, k.done = pw, make(chan error, 1)
	go func() {
		fs, err := ext4.Write(k.ctx, k.raw.f, k.disk.rootOffset, pr, k.o)
		k.fs = fs
		k.done <- err
		// A writer that stopped early (a full disk, or a member a base
		// that is refused at its end put below a link) leaves the merge
		// to read the rest, so that the base is checked whole.
		io.Copy(io.Discard, pr)
	}()
	return pw, nil
}

// end waits for the writer: the merge's error comes first.
func (k *ext4Sink) end(merr error) error {
	k.pw.CloseWithError(merr)
	werr := <-k.done
	switch {
	case k.ctx.Err() != nil:
		return k.ctx.Err()
	case merr != nil:
		return merr
	case errors.Is(werr, ext4.ErrNoSpace):
		return fmt.Errorf("a root file system of %d MiB is too small for the base and the layers: give a larger --disk-size: %w", k.disk.rootBytes/mib, werr)
	case werr != nil:
		return fmt.Errorf("root file system: %w", werr)
	}
	return nil
}
