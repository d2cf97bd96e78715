package ext4

import (
	"encoding/binary"
	"fmt"
)

// File types of an inode's mode.
const (
	sIFIFO  = 0x1000
	sIFCHR  = 0x2000
	sIFDIR  = 0x4000
	sIFBLK  = 0x6000
	sIFREG  = 0x8000
	sIFLNK  = 0xA000
	sIFSOCK = 0xC000
	sIFMT   = 0xF000
)

const (
	extentsFlag   = 0x80000 // EXT4_EXTENTS_FL
	extentMagic   = 0xF30A
	inodeExtents  = 4                     // extents in i_block
	leafExtents   = (blockSize - 12) / 12 // extents in a leaf block
	fastSymlink   = 60                    // a shorter target lives in i_block
	extraIsize    = 32                    // i_extra_isize: up to i_projid
	maxLinks      = 65000                 // EXT4_LINK_MAX
	sectorsPerBlk = blockSize / 512       // i_blocks counts 512-byte sectors
)

var lee = binary.LittleEndian

// inode is one file of the file system being written.
type inode struct {
	mode         uint16
	uid, gid     uint32
	mtime        int64
	size         uint64
	links        uint32
	data         []run    // content blocks
	meta         []uint64 // blocks of metadata: an extent leaf, an xattr block
	target       string   // a fast symlink's target
	major, minor uint32
	xattrs       []xattr
	xattrBlock   uint64
	leafBlock    uint64

	// directories
	entries []dirent
	subdirs uint32
}

// dirent is one name in a directory.
type dirent struct {
	name  string
	ino   uint32
	ftype uint8
}

func (n *inode) isDir() bool { return n.mode&sIFMT == sIFDIR }

// fileType is the directory entry type of n.
func (n *inode) fileType() uint8 {
	switch n.mode & sIFMT {
	case sIFREG:
		return 1
	case sIFDIR:
		return 2
	case sIFCHR:
		return 3
	case sIFBLK:
		return 4
	case sIFIFO:
		return 5
	case sIFSOCK:
		return 6
	case sIFLNK:
		return 7
	}
	return 0
}

// usesExtents reports whether n's i_block is an extent tree (regular files,
// directories and symlinks too long for i_block).
func (n *inode) usesExtents() bool {
	switch n.mode & sIFMT {
	case sIFREG, sIFDIR:
		return true
	case sIFLNK:
		return n.target == ""
	}
	return false
}

// needsLeaf reports whether n's extents do not fit in i_block.
func (n *inode) needsLeaf() bool { return len(n.data) > inodeExtents }

// encode writes n into b (inodeSize bytes) with the file system's time t
// as its access, change and creation times.
func (n *inode) encode(b []byte, t int64) error {
	lee.PutUint16(b[0:], n.mode)
	lee.PutUint16(b[2:], uint16(n.uid))
	lee.PutUint32(b[4:], uint32(n.size))
	lee.PutUint32(b[108:], uint32(n.size>>32))
	tlo, textra := timeFields(t)
	mlo, mextra := timeFields(n.mtime)
	lee.PutUint32(b[8:], tlo)   // atime
	lee.PutUint32(b[12:], tlo)  // ctime
	lee.PutUint32(b[16:], mlo)  // mtime
	lee.PutUint32(b[144:], tlo) // crtime
	lee.PutUint32(b[132:], textra)
	lee.PutUint32(b[136:], mextra)
	lee.PutUint32(b[140:], textra)
	lee.PutUint32(b[148:], textra)
	lee.PutUint16(b[24:], uint16(n.gid))
	lee.PutUint16(b[120:], uint16(n.uid>>16))
	lee.PutUint16(b[122:], uint16(n.gid>>16))
	links := n.links
	if n.isDir() && links > maxLinks {
		links = 1 // dir_nlink: too many subdirectories to count
	}
	lee.PutUint16(b[26:], uint16(links))
	var blocks uint64
	for _, r := range n.data {
		blocks += r.n
	}
	blocks += uint64(len(n.meta))
	lee.PutUint32(b[28:], uint32(blocks*sectorsPerBlk))
	lee.PutUint16(b[116:], uint16(blocks*sectorsPerBlk>>32))
	lee.PutUint32(b[104:], uint32(n.xattrBlock))
	lee.PutUint16(b[128:], extraIsize)
	iblock := b[40:100]
	switch {
	case n.usesExtents():
		lee.PutUint32(b[32:], extentsFlag)
		if n.needsLeaf() {
			if len(n.data) > leafExtents {
				return fmt.Errorf("%d extents, at most %d", len(n.data), leafExtents)
			}
			extentHeader(iblock, 1, inodeExtents, 1)
			lee.PutUint32(iblock[12:], 0)                   // ei_block
			lee.PutUint32(iblock[16:], uint32(n.leafBlock)) // ei_leaf_lo
		} else {
			extentTree(iblock, n.data, inodeExtents)
		}
	case n.mode&sIFMT == sIFLNK:
		copy(iblock, n.target)
	case n.mode&sIFMT == sIFCHR || n.mode&sIFMT == sIFBLK:
		if n.major < 256 && n.minor < 256 {
			lee.PutUint32(iblock[0:], n.major<<8|n.minor)
		} else {
			lee.PutUint32(iblock[4:], n.minor&0xff|n.major<<8|(n.minor&^0xff)<<12)
		}
	}
	return nil
}

// timeFields splits a time in seconds into its 32-bit field and the epoch
// bits of its _extra field (no nanoseconds).
func timeFields(t int64) (uint32, uint32) {
	lo := uint32(t)
	return lo, uint32((t-int64(int32(lo)))>>32) & 3
}

// extentHeader writes an extent tree node's header.
func extentHeader(b []byte, entries, maxEntries, depth int) {
	lee.PutUint16(b[0:], extentMagic)
	lee.PutUint16(b[2:], uint16(entries))
	lee.PutUint16(b[4:], uint16(maxEntries))
	lee.PutUint16(b[6:], uint16(depth))
	lee.PutUint32(b[8:], 0)
}

// extentTree writes a leaf node holding runs (each shorter than 32768
// blocks: a run never leaves its block group) into b.
func extentTree(b []byte, runs []run, maxEntries int) {
	extentHeader(b, len(runs), maxEntries, 0)
	var logical uint64
	for i, r := range runs {
		e := b[12+12*i:]
		lee.PutUint32(e[0:], uint32(logical))
		lee.PutUint16(e[4:], uint16(r.n))
		lee.PutUint16(e[6:], uint16(r.start>>32))
		lee.PutUint32(e[8:], uint32(r.start))
		logical += r.n
	}
}
