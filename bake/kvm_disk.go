package bake

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"syscall"

	"github.com/hardway-dev/hardway/rootfs"
	"github.com/hardway-dev/hardway/spec"
)

// kvmDisk is the layout of one image's disk (a node image's or a role image's).
type kvmDisk struct {
	size         int64 // bytes, a multiple of 1 MiB
	diskGUID     string
	parts        []gptPart // ESP, root
	fsUUID, seed string    // the root file system's UUID and directory hash seed
	espID        string    // FAT volume ID, 8 hex digits
	rootPartUUID string    // lower case, for root=PARTUUID= and fstab
	rootBytes    int64
	rootOffset   int64
	espOffset    int64
}

// newDisk lays out the disk of j's image: size bytes (rounded up to MiB),
// or the node's diskGiB (for a role image, the largest of its nodes').
func newDisk(doc *spec.Document, j Job, size int64) (*kvmDisk, error) {
	id := doc.Cluster.Metadata.Name + "/" + j.Node
	nodes := RoleNodes(doc.Cluster, j.Subject)
	if j.Node != "" {
		n, _ := doc.Cluster.Node(j.Node)
		nodes = []spec.Node{n}
	} else {
		id = doc.Cluster.Metadata.Name + "/role/" + j.Subject
	}
	if size == 0 {
		for _, n := range nodes {
			size = max(size, int64(n.DiskGiB)<<30)
		}
	}
	if size <= 0 {
		return nil, fmt.Errorf("no disk size for %s: set --disk-size or spec.nodes[].diskGiB", j.Subject)
	}
	size = (size + mib - 1) / mib * mib
	parts, err := gptLayout(id, size, espBytes)
	if err != nil {
		return nil, err
	}
	fsUUID := strings.ToLower(guidFor(id + "/rootfs"))
	h := sha256.Sum256([]byte("hardway esp\x00" + id))
	d := &kvmDisk{
		size: size, diskGUID: guidFor(id + "/disk"), parts: parts,
		fsUUID: fsUUID, seed: strings.ToLower(guidFor(id + "/hash-seed")),
		espID:        fmt.Sprintf("%02X%02X%02X%02X", h[0], h[1], h[2], h[3]),
		rootPartUUID: strings.ToLower(parts[1].GUID),
		rootBytes:    (parts[1].Last - parts[1].First + 1) * sectorSize,
		rootOffset:   parts[1].First * sectorSize,
		espOffset:    parts[0].First * sectorSize,
	}
	return d, nil
}

// partitionTables sizes the fresh file f to the disk and writes the
// protective MBR and primary GPT at its start, the backup GPT at its end;
// the rest stays a hole until the partitions are written.
func partitionTables(f *os.File, d *kvmDisk) error {
	if err := f.Truncate(d.size); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	primary, backup, err := gptTables(d.diskGUID, d.size, d.parts)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(primary, 0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if _, err := f.WriteAt(backup, d.size-int64(len(backup))); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	return nil
}

// copySparse copies the file src (at most max bytes) into f at off: only
// its data extents (SEEK_DATA, SEEK_HOLE), 64 KiB at a time, skipping
// blocks of zeros (f is a fresh sparse file).
func copySparse(ctx context.Context, f *os.File, off int64, src string, max int64) error {
	in, st, err := rootfs.OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if st.Size() > max {
		return fmt.Errorf("%s is %d bytes, its partition %d", src, st.Size(), max)
	}
	buf := make([]byte, 64<<10)
	for pos := int64(0); pos < st.Size(); {
		start, end := pos, st.Size()
		if d, err := in.Seek(pos, seekData); err == nil {
			start = d
			if h, err := in.Seek(d, seekHole); err == nil {
				end = h
			}
		} else if errors.Is(err, syscall.ENXIO) {
			return nil // nothing but a hole from pos on
		}
		for p := start; p < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n, rerr := in.ReadAt(buf[:min(int64(len(buf)), end-p)], p)
			if n > 0 && !allZero(buf[:n]) {
				if _, err := f.WriteAt(buf[:n], off+p); err != nil {
					return fmt.Errorf("write %s: %w", f.Name(), err)
				}
			}
			p += int64(n)
			if rerr != nil && rerr != io.EOF {
				return rerr
			}
			if n == 0 {
				break
			}
		}
		pos = end
	}
	return nil
}

// lseek's whence values for data extents and holes (Linux, since 3.1).
const (
	seekData = 3
	seekHole = 4
)

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
