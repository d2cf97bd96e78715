// Package ext4 writes an ext4 file system from a tar stream in one pass,
// straight into a disk image: no mount, no root, no extracted tree, no
// external tool, and the same bytes for the same stream on every machine.
package ext4

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// Options describe the file system to write.
type Options struct {
	Size     int64    // bytes; a last block group too small to be useful is left out
	UUID     [16]byte // the file system's UUID
	HashSeed [16]byte // the directory hash seed
	Label    string   // at most 16 bytes
	// Time is, in seconds since 1970, every inode's access, change and
	// creation time and the file system's own times (mtimes are the
	// stream's).
	Time int64
}

// File is where the file system goes: a fresh (sparse) file, read as zeros
// where nothing was written, such as a raw disk image.
type File interface {
	io.WriterAt
	io.ReaderAt
}

// FS is a written file system.
type FS struct{ w *writer }

// Write writes the tar stream r (names relative to the root; directories
// before what they hold; hard links after their target) as an ext4 file
// system of o.Size bytes into f at byte off. Owners, modes, mtimes, device
// numbers and extended attributes (PAX SCHILY.xattr.* records; POSIX ACLs
// in the kernel's xattr format) are the stream's. Blocks are given out in
// stream order, file content first, then directories and metadata.
func Write(ctx context.Context, f File, off int64, r io.Reader, o Options) (*FS, error) {
	return write(ctx, f, off, r, o, maxGroupBlks)
}

// write is Write with bpg blocks per group (tests make small groups).
func write(ctx context.Context, f File, off int64, r io.Reader, o Options, bpg uint64) (*FS, error) {
	l, err := newLayout(o.Size, bpg)
	if err != nil {
		return nil, err
	}
	w := &writer{
		o: o, l: l, a: newAllocator(l), out: &blockWriter{f: f, off: off},
		inodes: make([]*inode, firstIno), paths: map[string]uint32{},
	}
	if err := w.start(); err != nil {
		return nil, err
	}
	tr := tar.NewReader(r)
	for {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read the stream: %w", err)
		}
		if err := w.member(h, tr); err != nil {
			return nil, fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	if err := w.finish(); err != nil {
		return nil, err
	}
	return &FS{w: w}, nil
}

// writer is one running Write.
type writer struct {
	o      Options
	l      *layout
	a      *allocator
	out    *blockWriter
	inodes []*inode          // by number - 1; the reserved ones are nil but the root and journal
	paths  map[string]uint32 // clean path → inode
}

// start makes the root, the journal and lost+found.
func (w *writer) start() error {
	w.inodes[rootIno-1] = &inode{mode: sIFDIR | 0o755, links: 2, mtime: w.o.Time,
		entries: []dirent{{".", rootIno, 2}, {"..", rootIno, 2}}}
	w.paths["/"] = rootIno
	jblocks := journalBlocks(w.l.blocks)
	runs, err := w.a.alloc(jblocks)
	if err != nil {
		return err
	}
	w.inodes[journalIno-1] = &inode{mode: sIFREG | 0o600, links: 1, mtime: w.o.Time, size: jblocks * blockSize, data: runs}
	if err := w.out.writeAt(runs[0].start, journalSuper(w.o.UUID, jblocks)); err != nil {
		return err
	}
	w.inodes[firstIno-1] = &inode{mode: sIFDIR | 0o700, mtime: w.o.Time}
	return w.link("/lost+found", firstIno)
}

// journalSizes are mke2fs's default journal sizes: below blocks file
// system blocks, a journal of journal blocks (4 MiB to 512 MiB).
var journalSizes = []struct{ below, journal uint64 }{
	{32768, 1024}, {256 << 10, 4096}, {512 << 10, 8192}, {4096 << 10, 16384},
	{8192 << 10, 32768}, {16384 << 10, 65536}, {32768 << 10, 131072},
}

// journalBlocks is mke2fs's default journal size for a file system of n blocks.
func journalBlocks(n uint64) uint64 {
	for _, s := range journalSizes {
		if n < s.below {
			return s.journal
		}
	}
	return 262144 // 1 GiB
}

// link names inode ino at the clean path p, in its parent directory
// (made, 0755 root's, when the stream has none).
func (w *writer) link(p string, ino uint32) error {
	name := path.Base(p)
	if len(name) > 255 {
		return errors.New("name longer than 255 bytes")
	}
	parent, err := w.dir(path.Dir(p))
	if err != nil {
		return err
	}
	n := w.inodes[ino-1]
	d := w.inodes[parent-1]
	d.entries = append(d.entries, dirent{name: name, ino: ino, ftype: n.fileType()})
	if n.isDir() {
		d.links++
		n.links = 2
		n.entries = append(n.entries, dirent{".", ino, 2}, dirent{"..", parent, 2})
	} else {
		n.links++
	}
	w.paths[p] = ino
	return nil
}

// dir returns the directory at p, making it (and its parents) if needed.
func (w *writer) dir(p string) (uint32, error) {
	if ino, ok := w.paths[p]; ok {
		if !w.inodes[ino-1].isDir() {
			return 0, fmt.Errorf("%s is not a directory", p)
		}
		return ino, nil
	}
	ino, err := w.newInode(&inode{mode: sIFDIR | 0o755, mtime: w.o.Time})
	if err != nil {
		return 0, err
	}
	return ino, w.link(p, ino)
}

// newInode gives n the next inode number.
func (w *writer) newInode(n *inode) (uint32, error) {
	if uint64(len(w.inodes)) >= w.l.ipg*w.l.groups {
		return 0, fmt.Errorf("no free inode: the file system has %d", w.l.ipg*w.l.groups)
	}
	w.inodes = append(w.inodes, n)
	return uint32(len(w.inodes)), nil
}

// member adds one tar member, with its content.
func (w *writer) member(h *tar.Header, content io.Reader) error {
	p := path.Clean("/" + h.Name)
	n := &inode{mode: uint16(h.Mode & 0o7777), uid: uint32(h.Uid), gid: uint32(h.Gid), mtime: h.ModTime.Unix()}
	for k, v := range h.PAXRecords {
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			x, err := newXattr(name, v)
			if err != nil {
				return err
			}
			n.xattrs = append(n.xattrs, x)
		}
	}
	switch h.Typeflag {
	case tar.TypeDir:
		n.mode |= sIFDIR
		if ino, ok := w.paths[p]; ok {
			// The root, lost+found, or a directory made for what it holds:
			// it takes the stream's metadata.
			old := w.inodes[ino-1]
			if !old.isDir() {
				return errors.New("a directory where the stream had a file")
			}
			old.mode, old.uid, old.gid, old.mtime, old.xattrs = n.mode, n.uid, n.gid, n.mtime, n.xattrs
			return nil
		}
	case tar.TypeLink:
		ino, ok := w.paths[path.Clean("/"+h.Linkname)]
		if !ok || w.inodes[ino-1].isDir() {
			return fmt.Errorf("hard link to %s, which is no earlier file", h.Linkname)
		}
		return w.fresh(p, func() error { return w.link(p, ino) })
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse: // a sparse file comes out expanded
		n.mode |= sIFREG
		n.size = uint64(h.Size)
	case tar.TypeSymlink:
		n.mode |= sIFLNK
		n.size = uint64(len(h.Linkname))
		if len(h.Linkname) < fastSymlink {
			n.target = h.Linkname
		}
	case tar.TypeChar, tar.TypeBlock:
		n.mode |= sIFCHR
		if h.Typeflag == tar.TypeBlock {
			n.mode = n.mode&^sIFMT | sIFBLK
		}
		n.major, n.minor = uint32(h.Devmajor), uint32(h.Devminor)
	case tar.TypeFifo:
		n.mode |= sIFIFO
	default:
		return fmt.Errorf("tar type %q is not a file, directory, link, device or fifo", h.Typeflag)
	}
	return w.fresh(p, func() error {
		ino, err := w.newInode(n)
		if err != nil {
			return err
		}
		if err := w.link(p, ino); err != nil {
			return err
		}
		switch {
		case n.mode&sIFMT == sIFREG:
			return w.content(n, content, int64(n.size))
		case n.mode&sIFMT == sIFLNK && n.target == "":
			return w.content(n, strings.NewReader(h.Linkname), int64(n.size))
		}
		return nil
	})
}

// fresh runs add for a path the stream has not given before.
func (w *writer) fresh(p string, add func() error) error {
	if _, ok := w.paths[p]; ok {
		return errors.New("the path is in the stream twice")
	}
	return add()
}

// content allocates n's blocks and writes size bytes of r into them.
func (w *writer) content(n *inode, r io.Reader, size int64) error {
	runs, err := w.a.alloc(uint64((size + blockSize - 1) / blockSize))
	if err != nil {
		return err
	}
	n.data = runs
	for _, ru := range runs {
		k := min(size, int64(ru.n*blockSize))
		if err := w.out.copyAt(ru.start, r, k); err != nil {
			return err
		}
		size -= k
	}
	return nil
}

// finish lays out what only the whole stream tells: directories, extent
// leaves and xattr blocks, then writes inode tables, bitmaps, group
// descriptors and superblocks.
func (w *writer) finish() error {
	lpf := w.inodes[firstIno-1]
	for i, n := range w.inodes {
		if n == nil {
			continue
		}
		if n.isDir() {
			blocks := dirBlocks(n.entries)
			if n == lpf {
				for len(blocks) < 4 { // room for e2fsck to reconnect files without allocating
					blocks = append(blocks, emptyDirBlock())
				}
			}
			runs, err := w.a.alloc(uint64(len(blocks)))
			if err != nil {
				return err
			}
			n.data, n.size = runs, uint64(len(blocks))*blockSize
			if err := w.writeRuns(runs, blocks); err != nil {
				return err
			}
		}
		if n.needsLeaf() {
			b, err := w.meta(n)
			if err != nil {
				return err
			}
			n.leafBlock = b
			leaf := make([]byte, blockSize)
			if len(n.data) > leafExtents {
				return fmt.Errorf("inode %d: %d extents, at most %d", i+1, len(n.data), leafExtents)
			}
			extentTree(leaf, n.data, leafExtents)
			if err := w.out.writeAt(b, leaf); err != nil {
				return err
			}
		}
		if len(n.xattrs) > 0 {
			data, err := xattrBlock(n.xattrs)
			if err != nil {
				return fmt.Errorf("inode %d: %w", i+1, err)
			}
			if n.xattrBlock, err = w.meta(n); err != nil {
				return err
			}
			if err := w.out.writeAt(n.xattrBlock, data); err != nil {
				return err
			}
		}
	}
	if err := w.writeInodes(); err != nil {
		return err
	}
	if err := w.writeGroups(); err != nil {
		return err
	}
	return w.out.flush()
}

// meta allocates one metadata block of n.
func (w *writer) meta(n *inode) (uint64, error) {
	runs, err := w.a.alloc(1)
	if err != nil {
		return 0, err
	}
	n.meta = append(n.meta, runs[0].start)
	return runs[0].start, nil
}

// writeRuns writes blocks (one block each) into runs.
func (w *writer) writeRuns(runs []run, blocks [][]byte) error {
	for _, r := range runs {
		for i := uint64(0); i < r.n; i++ {
			if err := w.out.writeAt(r.start+i, blocks[0]); err != nil {
				return err
			}
			blocks = blocks[1:]
		}
	}
	return nil
}

// writeInodes writes every group's inode table up to its last inode in use.
func (w *writer) writeInodes() error {
	for g := uint64(0); g < w.l.groups; g++ {
		first := g * w.l.ipg
		if first >= uint64(len(w.inodes)) {
			break
		}
		last := min(first+w.l.ipg, uint64(len(w.inodes)))
		table := make([]byte, (last-first+inodesPerBlk-1)/inodesPerBlk*blockSize)
		for i := first; i < last; i++ {
			if n := w.inodes[i]; n != nil {
				if err := n.encode(table[(i-first)*inodeSize:], w.o.Time); err != nil {
					return fmt.Errorf("inode %d: %w", i+1, err)
				}
			}
		}
		if err := w.out.writeAt(w.l.inodeTable(g), table); err != nil {
			return err
		}
	}
	return nil
}

// Open returns the content of the regular file at the clean path p (no
// symlink followed: see Readlink).
func (fs *FS) Open(p string) (io.Reader, error) {
	w := fs.w
	ino, ok := w.paths[p]
	if !ok {
		return nil, fmt.Errorf("%s is not in the file system", p)
	}
	n := w.inodes[ino-1]
	if n.mode&sIFMT != sIFREG {
		return nil, fmt.Errorf("%s is not a regular file", p)
	}
	return w.read(n), nil
}

// read returns n's content.
func (w *writer) read(n *inode) io.Reader {
	var rs []io.Reader
	left := int64(n.size)
	for _, r := range n.data {
		k := min(left, int64(r.n*blockSize))
		rs = append(rs, io.NewSectionReader(w.out.f, w.out.off+int64(r.start)*blockSize, k))
		left -= k
	}
	return io.MultiReader(rs...)
}

// Readlink returns the target of the symlink at the clean path p.
func (fs *FS) Readlink(p string) (string, bool) {
	ino, ok := fs.w.paths[p]
	if !ok {
		return "", false
	}
	n := fs.w.inodes[ino-1]
	if n.mode&sIFMT != sIFLNK {
		return "", false
	}
	if n.target != "" {
		return n.target, true
	}
	b, err := io.ReadAll(fs.w.read(n))
	return string(b), err == nil
}
