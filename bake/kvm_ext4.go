package bake

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/rootfs"
)

// mkRootScript extracts the merged stream (its standard input) into
// $EXTRACT_DIR and makes the ext4 root file system of it with mke2fs -d:
// $FS_KIB KiB in $DISK_FILE at byte $FS_OFFSET, with the UUID $FS_UUID and
// the directory hash seed $FS_HASH_SEED. Both run in one shell so that one
// fakeroot session holds the owners tar gives and mke2fs reads.
const mkRootScript = `set -eu
tar -x -p --numeric-owner --same-owner --delay-directory-restore --no-xattrs --no-acls -f - -C "$EXTRACT_DIR"
mke2fs -q -F -t ext4 -L root -b 4096 -U "$FS_UUID" -E "offset=$FS_OFFSET,hash_seed=$FS_HASH_SEED,lazy_itable_init=1,lazy_journal_init=1,nodiscard" -d "$EXTRACT_DIR" "$DISK_FILE" "$FS_KIB"k
`

// makeRootFS streams the merged tree into work/root and builds the root
// file system from it with mke2fs -d (mkRootScript), in place in diskFile
// at the root partition's offset, both as root or, for another user, in
// one fakeroot session (the same bytes either way: TestKVMImage bakes as
// both), so that owners and device nodes (/dev is kept: the kernel mounts
// devtmpfs over it) land in the file system as the stream has them; xattrs
// and ACLs are set by setXattrs. Debian 12's mke2fs (1.47.0) takes only a
// directory for -d (a tarball needs 1.47.1 built with libarchive), hence
// the extraction. tar restores directory times at the very end
// (--delay-directory-restore: the layers' files follow the base's
// directories in the stream), mke2fs gets a UUID and hash seed derived from
// the node and E2FSPROGS_FAKE_TIME, and fixTimes levels the times the
// extraction leaves, so that the same inputs give the same image on one
// build machine (mke2fs -d walks directories in readdir order, which may
// differ between file systems).
func makeRootFS(ctx context.Context, cfg Config, plan *rootfs.Plan, disk *kvmDisk, work, diskFile string, c *rootfs.Counters) (*rootfs.Stats, error) {
	root := filepath.Join(work, "root")
	// libext2fs's unix I/O manager takes the partition's offset after a "?".
	img := diskFile + "?offset=" + strconv.FormatInt(disk.rootOffset, 10)
	if err := os.Mkdir(root, 0o755); err != nil {
		return nil, err
	}
	f, _, err := openBase(cfg.Base)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	// mke2fs's and debugfs's clock (e2fsClock): 0 would leave it unset.
	epoch := max(cfg.Epoch.Unix, 1)
	pr, pw := io.Pipe()
	var stats *rootfs.Stats
	merged := make(chan error, 1)
	// fakeroot (1.31) fakes xattrs in a way mke2fs -d (1.47.0) fails on
	// ("File not found by ext2_lookup"): tar extracts without them, and
	// debugfs sets them afterwards from the stream's records, as root or not.
	xr, xw := io.Pipe()
	xattrs := make(chan []fileXattr, 1)
	go func() { xattrs <- collectXattrs(xr) }()
	go func() {
		st, err := rootfs.Merge(ctx, pw, f, plan, rootfs.Options{
			Epoch: cfg.Epoch.Time(), Clamp: cfg.Epoch.Set, Counters: c, Log: cfg.Log,
		})
		stats = st
		pw.CloseWithError(err)
		merged <- err
	}()
	env := []string{
		e2fsClock(epoch), "LC_ALL=C",
		"EXTRACT_DIR=" + root,
		"DISK_FILE=" + diskFile,
		"FS_KIB=" + strconv.FormatInt(disk.rootBytes/1024, 10),
		"FS_OFFSET=" + strconv.FormatInt(disk.rootOffset, 10),
		"FS_UUID=" + disk.fsUUID,
		"FS_HASH_SEED=" + disk.seed,
	}
	argv := []string{"sh", "-c", mkRootScript}
	if os.Geteuid() != 0 {
		argv = append([]string{"fakeroot", "--"}, argv...)
	}
	err = runTool(ctx, io.TeeReader(pr, xw), env, argv[0], argv[1:]...)
	pr.CloseWithError(errors.New("extraction ended"))
	merr := <-merged
	xw.Close()
	found := <-xattrs
	if ctx.Err() != nil {
		return nil, ctx.Err() // not the merge's "extraction ended" it caused
	}
	if merr != nil {
		return nil, merr
	}
	if err != nil {
		return nil, err
	}
	if err := setXattrs(ctx, img, work, found, epoch); err != nil {
		return nil, err
	}
	if err := fixTimes(ctx, img, epoch); err != nil {
		return nil, err
	}
	return stats, nil
}

// fixTimes makes the file system reproducible: mke2fs -d copies each
// file's access and change times from the extracted tree (dated at
// extraction), so debugfs sets them, and creation times, to epoch on every
// inode in use (mtimes are the stream's).
func fixTimes(ctx context.Context, img string, epoch int64) error {
	used, err := usedInodes(ctx, img)
	if err != nil {
		return err
	}
	t := time.Unix(epoch, 0).UTC().Format("20060102150405")
	var cmds bytes.Buffer
	for _, i := range used {
		for _, field := range []string{"atime", "ctime", "crtime"} {
			fmt.Fprintf(&cmds, "sif <%d> %s %s\n", i, field, t)
		}
	}
	_, err = debugfs(ctx, img, epoch, cmds.Bytes())
	return err
}

// fileXattr is one extended attribute of the merged stream.
type fileXattr struct {
	path, name, value string
}

// collectXattrs reads a tar stream to its end and returns its members'
// extended attributes (SCHILY.xattr.* records).
func collectXattrs(r io.Reader) []fileXattr {
	defer io.Copy(io.Discard, r)
	var out []fileXattr
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err != nil {
			return out
		}
		for k, v := range h.PAXRecords {
			if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
				out = append(out, fileXattr{path: path.Clean("/" + h.Name), name: name, value: v})
			}
		}
	}
}

// setXattrs sets the stream's extended attributes on the image's files
// with debugfs ea_set (POSIX ACLs included: libext2fs stores
// system.posix_acl_* in ext4's format).
func setXattrs(ctx context.Context, img, work string, xs []fileXattr, epoch int64) error {
	if len(xs) == 0 {
		return nil
	}
	slices.SortFunc(xs, func(a, b fileXattr) int { return strings.Compare(a.path+"\x00"+a.name, b.path+"\x00"+b.name) })
	var cmds bytes.Buffer
	for i, x := range xs {
		if strings.ContainsAny(x.path+x.name, "\"\n\\") {
			return fmt.Errorf("xattr %s of %s: the name cannot be passed to debugfs", x.name, x.path)
		}
		v := filepath.Join(work, fmt.Sprintf("xattr-%d", i))
		if err := os.WriteFile(v, []byte(x.value), 0o600); err != nil {
			return err
		}
		fmt.Fprintf(&cmds, "ea_set -f \"%s\" \"%s\" \"%s\"\n", v, x.path, x.name)
	}
	out, err := debugfs(ctx, img, epoch, cmds.Bytes())
	if err == nil && bytes.Contains(out, []byte("ea_set: ")) {
		// debugfs goes on after a failed request, which names itself.
		err = fmt.Errorf("debugfs ea_set %s: %s", img, lastLines(out, 5))
	}
	return err
}

// debugfs runs the requests cmds (one a line) on the ext4 image img,
// opened read-write, with the file system's clock at epoch, and returns
// its output.
func debugfs(ctx context.Context, img string, epoch int64, cmds []byte) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "debugfs", "-w", "-f", "-", img)
	cmd.Stdin = bytes.NewReader(cmds)
	cmd.Env = append(os.Environ(), e2fsClock(epoch))
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("debugfs -w %s: %w: %s", img, err, lastLines(out, 5))
	}
	return out, nil
}

// e2fsClock sets the clock of mke2fs and debugfs (the times they write in
// the file system) to epoch, in seconds since 1970; 0 means unset.
func e2fsClock(epoch int64) string {
	return "E2FSPROGS_FAKE_TIME=" + strconv.FormatInt(epoch, 10)
}

// usedInodes lists the inodes in use of an ext4 image, but the reserved
// ones other than the root directory's.
func usedInodes(ctx context.Context, img string) ([]int64, error) {
	out, err := exec.CommandContext(ctx, "dumpe2fs", img).Output()
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs %s: %w", img, err)
	}
	used, err := parseUsedInodes(out)
	if err != nil {
		return nil, fmt.Errorf("dumpe2fs %s: %w", img, err)
	}
	return used, nil
}

// parseUsedInodes reads dumpe2fs's output: the inodes from 11 (the first
// one not reserved) to its inode count, less the free inode ranges it
// prints per block group, after the root directory's (2).
func parseUsedInodes(out []byte) ([]int64, error) {
	var count int64
	free := map[int64]bool{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		l := sc.Text()
		if v, ok := strings.CutPrefix(l, "Inode count:"); ok {
			count, _ = strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			continue
		}
		v, ok := strings.CutPrefix(l, "  Free inodes: ")
		if !ok {
			continue
		}
		for _, r := range strings.Split(v, ",") {
			lo, hi, found := strings.Cut(strings.TrimSpace(r), "-")
			a, err := strconv.ParseInt(lo, 10, 64)
			if err != nil {
				continue
			}
			b := a
			if found {
				if b, err = strconv.ParseInt(hi, 10, 64); err != nil {
					continue
				}
			}
			for i := a; i <= b; i++ {
				free[i] = true
			}
		}
	}
	if count == 0 {
		return nil, errors.New("no inode count")
	}
	used := []int64{2}
	for i := int64(11); i <= count; i++ {
		if !free[i] {
			used = append(used, i)
		}
	}
	return used, nil
}
