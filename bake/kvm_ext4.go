package bake

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/hardway-dev/hardway/ext4"
	"github.com/hardway-dev/hardway/rootfs"
)

// errWriterStopped ends the merge when the file system writer stopped first.
var errWriterStopped = errors.New("the file system writer stopped")

// makeRootFS streams the merged tree into the ext4 root file system, which
// package ext4 writes in place in the raw disk at the root partition's
// offset: no tree is extracted, no root or fakeroot is needed, and owners,
// device nodes (/dev is kept: the kernel mounts devtmpfs over it), xattrs
// and POSIX ACLs go in as the stream has them. Every inode's access,
// change and creation time is the epoch; the UUID and directory hash seed
// are derived from the node, so the same inputs give the same image on
// every machine.
func makeRootFS(ctx context.Context, cfg Config, plan *rootfs.Plan, disk *kvmDisk, raw *os.File, c *rootfs.Counters) (*rootfs.Stats, *ext4.FS, error) {
	o := ext4.Options{Size: disk.rootBytes, Label: "root", Time: cfg.Epoch.Unix}
	for _, id := range []struct {
		dst *[16]byte
		s   string
	}{{&o.UUID, disk.fsUUID}, {&o.HashSeed, disk.seed}} {
		b, err := hex.DecodeString(strings.ReplaceAll(id.s, "-", ""))
		if err != nil || len(b) != 16 {
			return nil, nil, fmt.Errorf("bad UUID %q", id.s)
		}
		copy(id.dst[:], b)
	}
	f, _, err := openBase(cfg.Base)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	var stats *rootfs.Stats
	merged := make(chan error, 1)
	go func() {
		st, err := rootfs.Merge(ctx, pw, f, plan, rootfs.Options{
			Epoch: cfg.Epoch.Time(), Clamp: cfg.Epoch.Set, Counters: c, Log: cfg.Log,
		})
		stats = st
		pw.CloseWithError(err)
		merged <- err
	}()
	fs, werr := ext4.Write(ctx, raw, disk.rootOffset, pr, o)
	pr.CloseWithError(errWriterStopped)
	merr := <-merged
	switch {
	case ctx.Err() != nil:
		return nil, nil, ctx.Err()
	case merr != nil && !errors.Is(merr, errWriterStopped):
		return nil, nil, merr // the input's problem, which the writer only saw end
	case werr != nil:
		return nil, nil, fmt.Errorf("root file system: %w", werr)
	}
	return stats, fs, nil
}
