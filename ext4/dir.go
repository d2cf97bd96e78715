package ext4

// dirBlocks lays out a directory's entries in blocks: each entry takes
// 8 bytes and its name, rounded up to 4; the last entry of a block
// stretches to its end.
func dirBlocks(entries []dirent) [][]byte {
	var blocks [][]byte
	var b []byte
	off, last := 0, -1
	for _, e := range entries {
		n := pad4(8 + len(e.name))
		if b == nil || off+n > blockSize {
			if b != nil {
				lee.PutUint16(b[last+4:], uint16(blockSize-last))
			}
			b = make([]byte, blockSize)
			blocks = append(blocks, b)
			off = 0
		}
		lee.PutUint32(b[off:], e.ino)
		lee.PutUint16(b[off+4:], uint16(n))
		b[off+6] = uint8(len(e.name))
		b[off+7] = e.ftype
		copy(b[off+8:], e.name)
		last = off
		off += n
	}
	lee.PutUint16(b[last+4:], uint16(blockSize-last))
	return blocks
}

// emptyDirBlock is a directory block with no entry.
func emptyDirBlock() []byte {
	b := make([]byte, blockSize)
	lee.PutUint16(b[4:], blockSize)
	return b
}
