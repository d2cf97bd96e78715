package ext4

import (
	"fmt"
	"sort"
	"strings"
)

// xattr is one extended attribute as ext4 stores it: a name index (the
// prefix), the rest of the name, and the value.
type xattr struct {
	index uint8
	name  string
	value []byte
}

// xattrPrefixes map attribute name prefixes to ext4's name indexes; the
// POSIX ACLs are whole names.
var xattrPrefixes = []struct {
	prefix string
	index  uint8
}{
	{"system.posix_acl_access", 2},
	{"system.posix_acl_default", 3},
	{"user.", 1},
	{"trusted.", 4},
	{"security.", 6},
	{"system.", 7},
}

// newXattr is the ext4 form of the attribute name with value (as getxattr
// returns it): POSIX ACLs are stored in ext4's own format.
func newXattr(name, value string) (xattr, error) {
	for _, p := range xattrPrefixes {
		rest, ok := strings.CutPrefix(name, p.prefix)
		if !ok || (p.index == 2 || p.index == 3) && rest != "" {
			continue
		}
		x := xattr{index: p.index, name: rest, value: []byte(value)}
		if p.index == 2 || p.index == 3 {
			v, err := aclToDisk([]byte(value))
			if err != nil {
				return xattr{}, fmt.Errorf("xattr %s: %w", name, err)
			}
			x.value = v
		}
		if len(x.name) > 255 {
			return xattr{}, fmt.Errorf("xattr %s: name too long", name)
		}
		return x, nil
	}
	return xattr{}, fmt.Errorf("xattr %s: unknown namespace", name)
}

// ACL tags whose entries carry no id in ext4's format.
const (
	aclUserObj  = 0x01
	aclGroupObj = 0x04
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclToDisk converts a POSIX ACL from the kernel's xattr format (version 2,
// 8-byte entries) to ext4's (version 1, 4-byte entries for the entries
// without an id).
func aclToDisk(v []byte) ([]byte, error) {
	if len(v) < 4 || lee.Uint32(v) != 2 || (len(v)-4)%8 != 0 {
		return nil, fmt.Errorf("not a POSIX ACL (version 2)")
	}
	out := lee.AppendUint32(nil, 1)
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag := lee.Uint16(e)
		out = lee.AppendUint16(out, tag)
		out = lee.AppendUint16(out, lee.Uint16(e[2:]))
		switch tag {
		case aclUserObj, aclGroupObj, aclMask, aclOther:
		default:
			out = lee.AppendUint32(out, lee.Uint32(e[4:]))
		}
	}
	return out, nil
}

// xattr block layout.
const (
	xattrMagic  = 0xEA020000
	xattrHeader = 32
	xattrEntry  = 16 // before the name
)

func pad4(n int) int { return (n + 3) &^ 3 }

// xattrBlock encodes xs as an extended attribute block (one inode's, refcount 1).
func xattrBlock(xs []xattr) ([]byte, error) {
	sort.Slice(xs, func(i, j int) bool {
		a, b := xs[i], xs[j]
		if a.index != b.index {
			return a.index < b.index
		}
		if len(a.name) != len(b.name) {
			return len(a.name) < len(b.name)
		}
		return a.name < b.name
	})
	b := make([]byte, blockSize)
	lee.PutUint32(b[0:], xattrMagic)
	lee.PutUint32(b[4:], 1) // refcount
	lee.PutUint32(b[8:], 1) // blocks
	off, end := xattrHeader, blockSize
	var blockHash uint32
	for _, x := range xs {
		vlen := pad4(len(x.value))
		if off+pad4(xattrEntry+len(x.name))+4 > end-vlen {
			return nil, fmt.Errorf("extended attributes do not fit in one block")
		}
		end -= vlen
		copy(b[end:], x.value)
		e := b[off:]
		e[0] = uint8(len(x.name))
		e[1] = x.index
		lee.PutUint16(e[2:], uint16(end))
		lee.PutUint32(e[8:], uint32(len(x.value)))
		h := entryHash(x.name, b[end:end+vlen])
		lee.PutUint32(e[12:], h)
		copy(e[xattrEntry:], x.name)
		off += pad4(xattrEntry + len(x.name))
		blockHash = blockHash<<16 ^ blockHash>>16 ^ h
	}
	lee.PutUint32(b[12:], blockHash)
	return b, nil
}

// entryHash is ext4's hash of an attribute's name and (padded) value.
func entryHash(name string, value []byte) uint32 {
	var h uint32
	for i := 0; i < len(name); i++ {
		h = h<<5 ^ h>>27 ^ uint32(int32(int8(name[i])))
	}
	for i := 0; i+4 <= len(value); i += 4 {
		h = h<<16 ^ h>>16 ^ lee.Uint32(value[i:])
	}
	return h
}
