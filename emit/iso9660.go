package emit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"
)

// This file writes the smallest ISO 9660 image cloud-init's NoCloud source
// reads: one root directory of regular files, described twice — by the
// primary volume descriptor with ISO 9660 level 1 names (USER_DAT.;1), and by
// a Joliet supplementary volume descriptor with the real names (user-data)
// in UCS-2, which Linux, libisofs and blkid prefer when present. Section
// numbers refer to ECMA-119 (2nd edition, 1987); Joliet is the 1995
// Microsoft specification.
//
// Layout, in 2048-byte logical sectors:
//
//	0-15   system area, zero (6.2.1)
//	16     primary volume descriptor (8.4)
//	17     Joliet supplementary volume descriptor (8.5)
//	18     volume descriptor set terminator (8.3)
//	19-22  path tables: primary L, primary M, Joliet L, Joliet M (9.4)
//	23-    primary root directory, Joliet root directory (9.1), file data
//
// Both directories point at the same file data. Every timestamp is the
// given time, so the same files give the same bytes.

// SeedISO returns a NoCloud seed ISO with volume id "cidata" holding files
// (name → content) at its root, every timestamp mtime.
func SeedISO(files map[string][]byte, mtime time.Time) ([]byte, error) {
	return isoImage("cidata", files, mtime)
}

const (
	isoSector     = 2048
	isoFirstTable = 19 // first path table sector
	isoFirstDir   = 23 // primary root directory
)

// isoFile is one file of the root directory.
type isoFile struct {
	name   string // Joliet name, the real one
	short  string // ECMA-119 level 1 file identifier
	data   []byte
	extent uint32
}

// isoImage builds the image of files with volume identifier vol.
func isoImage(vol string, files map[string][]byte, t time.Time) ([]byte, error) {
	fs, err := isoFiles(files)
	if err != nil {
		return nil, err
	}
	// Directory sizes depend on the names only: lay them out once with
	// zero extents to learn where the file data starts.
	priSize := len(isoDir(fs, 0, 0, t, false))
	jolSize := len(isoDir(fs, 0, 0, t, true))
	priDir := uint32(isoFirstDir)
	jolDir := priDir + uint32(priSize/isoSector)
	next := jolDir + uint32(jolSize/isoSector)
	for _, f := range fs {
		if len(f.data) > 0 {
			f.extent = next
			next += uint32(sectors(len(f.data)))
		}
	}
	img := make([]byte, int(next)*isoSector)
	put := func(sector uint32, b []byte) { copy(img[int(sector)*isoSector:], b) }

	pri := volDesc{typ: 1, vol: vol, size: next, table: isoFirstTable, dir: priDir, dirSize: uint32(priSize)}
	jol := volDesc{typ: 2, vol: vol, size: next, table: isoFirstTable + 2, dir: jolDir, dirSize: uint32(jolSize)}
	put(16, pri.encode(t))
	put(17, jol.encode(t))
	put(18, terminator())
	put(isoFirstTable, pathTable(priDir, binary.LittleEndian))
	put(isoFirstTable+1, pathTable(priDir, binary.BigEndian))
	put(isoFirstTable+2, pathTable(jolDir, binary.LittleEndian))
	put(isoFirstTable+3, pathTable(jolDir, binary.BigEndian))
	put(priDir, isoDir(fs, priDir, uint32(priSize), t, false))
	put(jolDir, isoDir(fs, jolDir, uint32(jolSize), t, true))
	for _, f := range fs {
		if len(f.data) > 0 {
			put(f.extent, f.data)
		}
	}
	return img, nil
}

// isoFiles checks the names and returns the files sorted by name.
func isoFiles(files map[string][]byte) ([]*isoFile, error) {
	var fs []*isoFile
	seen := map[string]string{}
	for name, data := range files {
		if err := checkJolietName(name); err != nil {
			return nil, err
		}
		if int64(len(data)) >= 1<<32-isoSector {
			return nil, fmt.Errorf("iso9660: %s: %d bytes is too large for one extent", name, len(data))
		}
		short := level1Name(name)
		if other, ok := seen[short]; ok {
			return nil, fmt.Errorf("iso9660: %q and %q have the same ISO 9660 name %s", name, other, short)
		}
		seen[short] = name
		fs = append(fs, &isoFile{name: name, short: short, data: data})
	}
	// The file data goes in name order; each directory sorts its own records.
	sort.Slice(fs, func(i, j int) bool { return fs[i].name < fs[j].name })
	return fs, nil
}

// checkJolietName accepts a non-empty name of at most 64 UCS-2 characters
// (Joliet's limit), in the BMP, without control characters or the characters
// Joliet forbids (* / : ; ? \).
func checkJolietName(name string) error {
	n := 0
	for _, r := range name {
		if r < 0x20 || r > 0xFFFF || r == utf8.RuneError || strings.ContainsRune(`*/:;?\`, r) {
			return fmt.Errorf("iso9660: file name %q: character %q is not allowed", name, r)
		}
		n++
	}
	if n == 0 || n > 64 {
		return fmt.Errorf("iso9660: file name %q must have 1 to 64 characters", name)
	}
	return nil
}

// level1Name maps name to an ECMA-119 level 1 file identifier (7.5, 10.1):
// at most 8 d-characters, '.', at most 3 d-characters, ";1".
func level1Name(name string) string {
	base, ext := name, ""
	if i := strings.LastIndexByte(name, '.'); i > 0 {
		base, ext = name[:i], name[i+1:]
	}
	return dchars(base, 8) + "." + dchars(ext, 3) + ";1"
}

// dchars upper-cases s, replaces what is not a d-character (7.4.1: A-Z, 0-9,
// _) by '_' and keeps at most n characters.
func dchars(s string, n int) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if b.Len() == n {
			break
		}
		if (r >= 'A' && r <= 'Z') || (r >= '0' && r <= '9') {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	return b.String()
}

// sectors is the number of logical sectors n bytes take.
func sectors(n int) int { return (n + isoSector - 1) / isoSector }

// isoDir encodes the root directory at extent (size bytes): "." and ".."
// (both the root itself, 6.8.2.2) then one record per file. A record never
// crosses a sector boundary (6.8.1.1); the directory fills whole sectors.
func isoDir(fs []*isoFile, extent, size uint32, t time.Time, joliet bool) []byte {
	ids := make([][]byte, len(fs))
	order := make([]int, len(fs))
	for i, f := range fs {
		ids[i], order[i] = []byte(f.short), i
		if joliet {
			ids[i] = ucs2(f.name)
		}
	}
	// 9.3: records are ordered by file identifier. For level 1 identifiers
	// (d-characters, '.', ';') and for UCS-2 names the standard's order is
	// byte order.
	sort.Slice(order, func(i, j int) bool { return bytes.Compare(ids[order[i]], ids[order[j]]) < 0 })
	recs := [][]byte{
		dirRecord([]byte{0}, extent, size, 2, t),
		dirRecord([]byte{1}, extent, size, 2, t),
	}
	for _, i := range order {
		recs = append(recs, dirRecord(ids[i], fs[i].extent, uint32(len(fs[i].data)), 0, t))
	}
	var b []byte
	for _, r := range recs {
		if room := isoSector - len(b)%isoSector; len(r) > room {
			b = append(b, make([]byte, room)...)
		}
		b = append(b, r...)
	}
	return append(b, make([]byte, sectors(len(b))*isoSector-len(b))...)
}

// dirRecord encodes a directory record (9.1). flags: 2 for a directory.
func dirRecord(id []byte, extent, size uint32, flags byte, t time.Time) []byte {
	n := 33 + len(id)
	if n%2 == 1 {
		n++ // 9.1.12: padding field after an even-length identifier
	}
	r := make([]byte, n)
	r[0] = byte(n)         // 9.1.1 length of directory record
	both32(r[2:], extent)  // 9.1.3 location of extent
	both32(r[10:], size)   // 9.1.4 data length
	copy(r[18:], date7(t)) // 9.1.5 recording date and time
	r[25] = flags          // 9.1.6 file flags
	both16(r[28:], 1)      // 9.1.9 volume sequence number
	r[32] = byte(len(id))  // 9.1.10 length of file identifier
	copy(r[33:], id)       // 9.1.11 file identifier
	return r
}

// pathTable encodes a path table holding the root directory only (9.4), in
// little-endian (type L) or big-endian (type M) byte order.
func pathTable(root uint32, order binary.ByteOrder) []byte {
	r := make([]byte, 10)
	r[0] = 1                     // 9.4.1 length of directory identifier
	order.PutUint32(r[2:], root) // 9.4.3 location of extent
	order.PutUint16(r[6:], 1)    // 9.4.4 parent directory number: itself
	return r                     // 9.4.5 identifier 0x00, 9.4.6 padding
}

// volDesc is a primary (type 1, 8.4) or Joliet supplementary (type 2, 8.5)
// volume descriptor.
type volDesc struct {
	typ     byte
	vol     string
	size    uint32 // volume space size in sectors
	table   uint32 // sector of the type L path table; type M follows it
	dir     uint32 // root directory extent
	dirSize uint32
}

// encode returns the descriptor's sector.
func (v volDesc) encode(t time.Time) []byte {
	b := make([]byte, isoSector)
	b[0] = v.typ            // 8.4.1 volume descriptor type
	copy(b[1:], "CD001")    // 8.4.2 standard identifier
	b[6] = 1                // 8.4.3 volume descriptor version
	v.text(b[8:40], "")     // 8.4.5 system identifier
	v.text(b[40:72], v.vol) // 8.4.6 volume identifier
	both32(b[80:], v.size)  // 8.4.8 volume space size
	if v.typ == 2 {
		copy(b[88:], "%/E") // 8.5.6 escape sequences: Joliet UCS-2 level 3
	}
	both16(b[120:], 1)                                          // 8.4.10 volume set size
	both16(b[124:], 1)                                          // 8.4.11 volume sequence number
	both16(b[128:], isoSector)                                  // 8.4.12 logical block size
	both32(b[132:], 10)                                         // 8.4.13 path table size
	binary.LittleEndian.PutUint32(b[140:], v.table)             // 8.4.14 type L path table
	binary.BigEndian.PutUint32(b[148:], v.table+1)              // 8.4.16 type M path table
	copy(b[156:], dirRecord([]byte{0}, v.dir, v.dirSize, 2, t)) // 8.4.18 root directory record
	v.text(b[190:318], "")                                      // 8.4.19 volume set identifier
	v.text(b[318:446], "")                                      // 8.4.20 publisher identifier
	v.text(b[446:574], "")                                      // 8.4.21 data preparer identifier
	v.text(b[574:702], "HARDWAY")                               // 8.4.22 application identifier
	v.text(b[702:739], "")                                      // 8.4.23 copyright file identifier
	v.text(b[739:776], "")                                      // 8.4.24 abstract file identifier
	v.text(b[776:813], "")                                      // 8.4.25 bibliographic file identifier
	copy(b[813:], date17(t))                                    // 8.4.26 creation
	copy(b[830:], date17(t))                                    // 8.4.27 modification
	copy(b[847:], date17(time.Time{}))                          // 8.4.28 expiration: not specified
	copy(b[864:], date17(time.Time{}))                          // 8.4.29 effective: not specified
	b[881] = 1                                                  // 8.4.31 file structure version
	return b
}

// text fills an identifier field with s padded by spaces: bytes in the
// primary descriptor, UCS-2 big-endian in the Joliet one (an odd trailing
// byte stays a space).
func (v volDesc) text(field []byte, s string) {
	for i := range field {
		field[i] = ' '
	}
	if v.typ == 2 {
		for i := 0; i+1 < len(field); i += 2 {
			field[i] = 0
		}
		copy(field, ucs2(s))
		return
	}
	copy(field, s)
}

// terminator is the volume descriptor set terminator (8.3).
func terminator() []byte {
	b := make([]byte, isoSector)
	b[0] = 255
	copy(b[1:], "CD001")
	b[6] = 1
	return b
}

// ucs2 encodes s in UCS-2 big-endian (Joliet); checkJolietName keeps s in the BMP.
func ucs2(s string) []byte {
	u := utf16.Encode([]rune(s))
	b := make([]byte, 2*len(u))
	for i, c := range u {
		binary.BigEndian.PutUint16(b[2*i:], c)
	}
	return b
}

// both16 and both32 write both-byte-order numbers (7.2.3, 7.3.3).
func both16(b []byte, v uint16) {
	binary.LittleEndian.PutUint16(b, v)
	binary.BigEndian.PutUint16(b[2:], v)
}

func both32(b []byte, v uint32) {
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
}

// date7 is a directory record date (9.1.5): years since 1900, month, day,
// hour, minute, second, offset from GMT in 15-minute units (0: t is UTC).
// Years outside 1900-2155 are clamped to what the byte can hold.
func date7(t time.Time) []byte {
	t = t.UTC()
	y := min(max(t.Year()-1900, 0), 255)
	return []byte{byte(y), byte(t.Month()), byte(t.Day()), byte(t.Hour()), byte(t.Minute()), byte(t.Second()), 0}
}

// date17 is a volume descriptor date (8.4.26.1): "YYYYMMDDHHMMSScc" in
// digits and a GMT offset byte; the zero time gives "not specified" (all
// zero digits).
func date17(t time.Time) []byte {
	if t.IsZero() {
		return append([]byte(strings.Repeat("0", 16)), 0)
	}
	t = t.UTC()
	s := fmt.Sprintf("%04d%02d%02d%02d%02d%02d%02d", min(max(t.Year(), 1), 9999), t.Month(), t.Day(),
		t.Hour(), t.Minute(), t.Second(), t.Nanosecond()/1e7)
	return append([]byte(s), 0)
}
