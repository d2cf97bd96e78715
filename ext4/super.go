package ext4

import "encoding/binary"

// Features of the file systems Write makes: those of mke2fs's ext4 but
// resize_inode (an online grow converts to meta_bg), flex_bg (each group
// keeps its own metadata), 64bit (up to 16 TiB), metadata_csum and
// uninit_bg (every table is written whole), and orphan_file.
const (
	compatHasJournal = 0x4
	compatExtAttr    = 0x8
	compatDirIndex   = 0x20

	incompatFiletype = 0x2
	incompatExtents  = 0x40

	roCompatSparseSuper = 0x1
	roCompatLargeFile   = 0x2
	roCompatDirNlink    = 0x20
	roCompatExtraIsize  = 0x40
)

// writeGroups writes the bitmaps, the group descriptors and every
// superblock.
func (w *writer) writeGroups() error {
	l := w.l
	gdt := make([]byte, l.gdtBlocks*blockSize)
	var freeBlocks, freeInodes uint64
	for g := uint64(0); g < l.groups; g++ {
		bb := make([]byte, blockSize)
		used, n := w.a.used(g), l.groupBlocks(g)
		setBits(bb, 0, used)
		setBits(bb, n, maxGroupBlks) // past the end of the last group
		ib := make([]byte, blockSize)
		first := g * l.ipg
		usedInodes := min(max(uint64(len(w.inodes)), first)-first, l.ipg)
		setBits(ib, 0, usedInodes)
		setBits(ib, l.ipg, maxGroupBlks)
		var dirs uint64
		for i := first; i < first+usedInodes; i++ {
			if n := w.inodes[i]; n != nil && n.isDir() {
				dirs++
			}
		}
		if err := w.out.writeAt(l.blockBitmap(g), bb); err != nil {
			return err
		}
		if err := w.out.writeAt(l.inodeBitmap(g), ib); err != nil {
			return err
		}
		d := gdt[g*descSize:]
		lee.PutUint32(d[0:], uint32(l.blockBitmap(g)))
		lee.PutUint32(d[4:], uint32(l.inodeBitmap(g)))
		lee.PutUint32(d[8:], uint32(l.inodeTable(g)))
		lee.PutUint16(d[12:], uint16(n-used))
		lee.PutUint16(d[14:], uint16(l.ipg-usedInodes))
		lee.PutUint16(d[16:], uint16(dirs))
		freeBlocks += n - used
		freeInodes += l.ipg - usedInodes
	}
	for g := uint64(0); g < l.groups; g++ {
		if !hasSuper(g) {
			continue
		}
		sb := make([]byte, blockSize)
		at := sb[0:1024]
		if g == 0 {
			at = sb[1024:2048] // after the boot sector's 1 KiB
		}
		w.superblock(at, g, freeBlocks, freeInodes)
		if err := w.out.writeAt(l.groupStart(g), append(sb, gdt...)); err != nil {
			return err
		}
	}
	return nil
}

// setBits sets bits [from, to) of a bitmap block.
func setBits(b []byte, from, to uint64) {
	for i := from; i < to; i++ {
		b[i/8] |= 1 << (i % 8)
	}
}

// superblock fills b, the copy in group g.
func (w *writer) superblock(b []byte, g, freeBlocks, freeInodes uint64) {
	l, t := w.l, uint32(w.o.Time)
	inodes := l.ipg * l.groups
	lee.PutUint32(b[0:], uint32(inodes))
	lee.PutUint32(b[4:], uint32(l.blocks))
	lee.PutUint32(b[8:], uint32(l.blocks/reservedRatio))
	lee.PutUint32(b[12:], uint32(freeBlocks))
	lee.PutUint32(b[16:], uint32(freeInodes))
	lee.PutUint32(b[20:], 0) // first data block
	lee.PutUint32(b[24:], 2) // log2(block size) - 10
	lee.PutUint32(b[28:], 2)
	lee.PutUint32(b[32:], uint32(l.bpg))
	lee.PutUint32(b[36:], uint32(l.bpg))
	lee.PutUint32(b[40:], uint32(l.ipg))
	lee.PutUint32(b[48:], t)      // write time
	lee.PutUint16(b[54:], 0xFFFF) // max mount count: no check by count
	lee.PutUint16(b[56:], 0xEF53)
	lee.PutUint16(b[58:], 1) // clean
	lee.PutUint16(b[60:], 1) // on errors: continue
	lee.PutUint32(b[64:], t) // last check
	lee.PutUint32(b[76:], 1) // dynamic revision
	lee.PutUint32(b[84:], firstIno)
	lee.PutUint16(b[88:], inodeSize)
	lee.PutUint16(b[90:], uint16(g))
	lee.PutUint32(b[92:], compatHasJournal|compatExtAttr|compatDirIndex)
	lee.PutUint32(b[96:], incompatFiletype|incompatExtents)
	lee.PutUint32(b[100:], roCompatSparseSuper|roCompatLargeFile|roCompatDirNlink|roCompatExtraIsize)
	copy(b[104:120], w.o.UUID[:])
	copy(b[120:136], w.o.Label)
	lee.PutUint32(b[224:], journalIno)
	copy(b[236:252], w.o.HashSeed[:])
	b[252] = 1                   // half_md4
	b[253] = 1                   // s_jnl_blocks holds a copy of the journal's i_block
	lee.PutUint32(b[256:], 0x0C) // default mount options: user_xattr, acl
	lee.PutUint32(b[264:], t)    // mkfs time
	j := make([]byte, inodeSize)
	w.inodes[journalIno-1].encode(j, w.o.Time)
	copy(b[268:328], j[40:100])
	lee.PutUint32(b[328:], lee.Uint32(j[108:]))
	lee.PutUint32(b[332:], lee.Uint32(j[4:]))
	lee.PutUint16(b[348:], extraIsize)
	lee.PutUint16(b[350:], extraIsize)
	lee.PutUint32(b[352:], 1) // signed directory hash, as on x86
	lee.PutUint32(b[0x268:], firstIno)
}

// journalSuper is the superblock of an empty, clean journal of n blocks
// (JBD2, big-endian).
func journalSuper(uuid [16]byte, n uint64) []byte {
	b := make([]byte, blockSize)
	be := binary.BigEndian
	be.PutUint32(b[0:], 0xC03B3998) // magic
	be.PutUint32(b[4:], 4)          // superblock v2
	be.PutUint32(b[12:], blockSize)
	be.PutUint32(b[16:], uint32(n))
	be.PutUint32(b[20:], 1) // first log block
	be.PutUint32(b[24:], 1) // sequence
	copy(b[48:64], uuid[:])
	be.PutUint32(b[64:], 1) // users
	return b
}
