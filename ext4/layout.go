package ext4

import (
	"errors"
	"fmt"
)

// Geometry of the file systems Write makes (mke2fs's ext4 defaults).
const (
	blockSize     = 4096
	inodeSize     = 256
	inodeRatio    = 16384 // bytes of file system per inode
	descSize      = 32    // group descriptor without the 64bit feature
	firstIno      = 11    // the first inode that is not reserved: lost+found
	rootIno       = 2
	journalIno    = 8
	inodesPerBlk  = blockSize / inodeSize
	maxGroupBlks  = 8 * blockSize // a block bitmap is one block
	minLastGroup  = 512           // a smaller last group is dropped, as mke2fs does
	reservedRatio = 20            // 1/20 = 5% of blocks reserved for root
)

// layout is the file system's geometry: block groups in the classic layout,
// each starting with its superblock backup and group descriptors (groups
// with a backup), then its block bitmap, inode bitmap and inode table, then
// data.
type layout struct {
	blocks    uint64 // total
	bpg       uint64 // blocks per group
	groups    uint64
	ipg       uint64 // inodes per group
	itable    uint64 // inode table blocks per group
	gdtBlocks uint64
}

// ErrNoSpace is a file system too small for its content.
var ErrNoSpace = errors.New("no space left in the file system")

func newLayout(size int64, bpg uint64) (*layout, error) {
	l := &layout{blocks: uint64(size) / blockSize, bpg: bpg}
	l.groups = (l.blocks + bpg - 1) / bpg
	if last := l.blocks - (l.groups-1)*bpg; l.groups > 1 && last < minLastGroup {
		l.blocks -= last
		l.groups--
	}
	inodes := l.blocks * blockSize / inodeRatio
	l.ipg = (inodes + l.groups - 1) / l.groups
	l.ipg = (l.ipg + inodesPerBlk - 1) / inodesPerBlk * inodesPerBlk
	l.ipg = min(max(l.ipg, inodesPerBlk), maxGroupBlks)
	l.itable = l.ipg * inodeSize / blockSize
	l.gdtBlocks = (l.groups*descSize + blockSize - 1) / blockSize
	if l.blocks < 1024 || l.prefix(l.groups-1)+16 > l.groupBlocks(l.groups-1) {
		return nil, fmt.Errorf("a file system of %d bytes is too small", size)
	}
	return l, nil
}

// hasSuper reports whether group g holds a superblock backup (sparse_super:
// groups 0, 1 and the powers of 3, 5 and 7).
func hasSuper(g uint64) bool {
	if g <= 1 {
		return true
	}
	for _, b := range []uint64{3, 5, 7} {
		p := b
		for p < g {
			p *= b
		}
		if p == g {
			return true
		}
	}
	return false
}

func (l *layout) groupStart(g uint64) uint64 { return g * l.bpg }

func (l *layout) groupBlocks(g uint64) uint64 { return min(l.bpg, l.blocks-g*l.bpg) }

// superBlocks is the superblock and descriptor blocks at the start of g.
func (l *layout) superBlocks(g uint64) uint64 {
	if hasSuper(g) {
		return 1 + l.gdtBlocks
	}
	return 0
}

func (l *layout) blockBitmap(g uint64) uint64 { return l.groupStart(g) + l.superBlocks(g) }
func (l *layout) inodeBitmap(g uint64) uint64 { return l.blockBitmap(g) + 1 }
func (l *layout) inodeTable(g uint64) uint64  { return l.blockBitmap(g) + 2 }

// prefix is the number of metadata blocks at the start of g.
func (l *layout) prefix(g uint64) uint64 { return l.superBlocks(g) + 2 + l.itable }

// run is a span of contiguous blocks.
type run struct{ start, n uint64 }

// allocator hands out data blocks in order, group after group, skipping
// each group's metadata: what it has given out is, in every group, one
// span right after the metadata.
type allocator struct {
	l    *layout
	g    uint64 // current group
	next uint64 // next free block
}

func newAllocator(l *layout) *allocator {
	return &allocator{l: l, next: l.prefix(0)}
}

// alloc returns n blocks as runs.
func (a *allocator) alloc(n uint64) ([]run, error) {
	var out []run
	for n > 0 {
		end := a.l.groupStart(a.g) + a.l.groupBlocks(a.g)
		if a.next == end {
			if a.g+1 == a.l.groups {
				return nil, ErrNoSpace
			}
			a.g++
			a.next = a.l.groupStart(a.g) + a.l.prefix(a.g)
			continue
		}
		k := min(n, end-a.next)
		if len(out) > 0 && out[len(out)-1].start+out[len(out)-1].n == a.next {
			out[len(out)-1].n += k
		} else {
			out = append(out, run{a.next, k})
		}
		a.next += k
		n -= k
	}
	return out, nil
}

// used is the number of blocks in use in group g: its metadata and the
// data given out so far.
func (a *allocator) used(g uint64) uint64 {
	switch {
	case g < a.g:
		return a.l.groupBlocks(g)
	case g == a.g:
		return a.next - a.l.groupStart(g)
	}
	return a.l.prefix(g)
}
