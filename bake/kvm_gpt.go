package bake

import (
	"crypto/sha256"
	binenc "encoding/binary"
	"fmt"
	"hash/crc32"
	"strings"
	"unicode/utf16"
)

// GPT geometry of a KVM image: 512-byte sectors, 128 partition entries of
// 128 bytes (32 sectors) after the primary header, partitions aligned to
// 1 MiB as sfdisk and parted align them.
const (
	sectorSize   = 512
	gptEntries   = 128
	gptEntrySize = 128
	gptEntryLBAs = gptEntries * gptEntrySize / sectorSize // 32
	mib          = 1 << 20
	alignLBAs    = mib / sectorSize
)

// Partition type GUIDs: the EFI system partition, and the x86-64 root
// partition of the Discoverable Partitions Specification (systemd-repart,
// systemd-gpt-auto-generator and the kernel command line's root=PARTUUID
// all find it).
const (
	typeESP    = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
	typeRootX8 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
)

// gptPart is one partition of the table.
type gptPart struct {
	Type, GUID string // textual GUIDs
	First      int64  // first LBA
	Last       int64  // last LBA, inclusive
	Name       string
}

// guidFor is a deterministic version-4-shaped GUID for what (a node and a
// purpose, "disk", "esp", "root", "rootfs"), so that two bakes of one node
// give the same identifiers and two nodes different ones.
func guidFor(what string) string {
	h := sha256.Sum256([]byte("hardway kvm guid\x00" + what))
	b := h[:16]
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	return strings.ToUpper(fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16]))
}

// guidBytes is the on-disk (mixed-endian) form of a textual GUID.
func guidBytes(s string) ([16]byte, error) {
	var out [16]byte
	hex := strings.ReplaceAll(s, "-", "")
	if len(hex) != 32 {
		return out, fmt.Errorf("bad GUID %q", s)
	}
	var raw [16]byte
	for i := range raw {
		if _, err := fmt.Sscanf(hex[2*i:2*i+2], "%02x", &raw[i]); err != nil {
			return out, fmt.Errorf("bad GUID %q", s)
		}
	}
	// The first three fields are little-endian on disk.
	out[0], out[1], out[2], out[3] = raw[3], raw[2], raw[1], raw[0]
	out[4], out[5] = raw[5], raw[4]
	out[6], out[7] = raw[7], raw[6]
	copy(out[8:], raw[8:])
	return out, nil
}

// gptLayout places an ESP of espBytes and a root partition filling the rest
// of a disk of diskBytes (a multiple of 1 MiB), both 1 MiB-aligned.
func gptLayout(node string, diskBytes, espBytes int64) ([]gptPart, error) {
	sectors := diskBytes / sectorSize
	lastUsable := sectors - 1 - gptEntryLBAs - 1
	espFirst := int64(alignLBAs)
	espLast := espFirst + espBytes/sectorSize - 1
	rootFirst := espLast + 1
	rootLast := (lastUsable+1)/alignLBAs*alignLBAs - 1
	if rootLast-rootFirst+1 < 8*alignLBAs {
		return nil, fmt.Errorf("disk of %d MiB is too small for a %d MiB ESP and a root file system", diskBytes/mib, espBytes/mib)
	}
	return []gptPart{
		{Type: typeESP, GUID: guidFor(node + "/esp"), First: espFirst, Last: espLast, Name: "esp"},
		{Type: typeRootX8, GUID: guidFor(node + "/root"), First: rootFirst, Last: rootLast, Name: "root-x86-64"},
	}, nil
}

// gptTables returns the protective MBR with the primary header and entries
// (to write at offset 0) and the backup entries with the backup header (to
// write at the end of the disk, offset diskBytes-len(backup)).
func gptTables(diskGUID string, diskBytes int64, parts []gptPart) (primary, backup []byte, err error) {
	sectors := diskBytes / sectorSize
	entries := make([]byte, gptEntries*gptEntrySize)
	for i, p := range parts {
		e := entries[i*gptEntrySize:]
		t, err := guidBytes(p.Type)
		if err != nil {
			return nil, nil, err
		}
		g, err := guidBytes(p.GUID)
		if err != nil {
			return nil, nil, err
		}
		copy(e[0:16], t[:])
		copy(e[16:32], g[:])
		binenc.LittleEndian.PutUint64(e[32:], uint64(p.First))
		binenc.LittleEndian.PutUint64(e[40:], uint64(p.Last))
		for j, c := range utf16.Encode([]rune(p.Name)) {
			if j >= 36 {
				break
			}
			binenc.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	entriesCRC := crc32.ChecksumIEEE(entries)
	dg, err := guidBytes(diskGUID)
	if err != nil {
		return nil, nil, err
	}
	header := func(current, other, entriesLBA int64) []byte {
		h := make([]byte, sectorSize)
		copy(h[0:8], "EFI PART")
		binenc.LittleEndian.PutUint32(h[8:], 0x00010000) // revision 1.0
		binenc.LittleEndian.PutUint32(h[12:], 92)        // header size
		binenc.LittleEndian.PutUint64(h[24:], uint64(current))
		binenc.LittleEndian.PutUint64(h[32:], uint64(other))
		binenc.LittleEndian.PutUint64(h[40:], uint64(2+gptEntryLBAs))         // first usable LBA
		binenc.LittleEndian.PutUint64(h[48:], uint64(sectors-2-gptEntryLBAs)) // last usable LBA
		copy(h[56:72], dg[:])
		binenc.LittleEndian.PutUint64(h[72:], uint64(entriesLBA))
		binenc.LittleEndian.PutUint32(h[80:], gptEntries)
		binenc.LittleEndian.PutUint32(h[84:], gptEntrySize)
		binenc.LittleEndian.PutUint32(h[88:], entriesCRC)
		binenc.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
		return h
	}
	// Protective MBR: one partition of type 0xEE over the whole disk.
	mbr := make([]byte, sectorSize)
	pe := mbr[446:]
	pe[1], pe[2], pe[3] = 0x00, 0x02, 0x00 // CHS of LBA 1
	pe[4] = 0xEE
	pe[5], pe[6], pe[7] = 0xFF, 0xFF, 0xFF
	binenc.LittleEndian.PutUint32(pe[8:], 1)
	size := sectors - 1
	if size > 0xFFFFFFFF {
		size = 0xFFFFFFFF
	}
	binenc.LittleEndian.PutUint32(pe[12:], uint32(size))
	mbr[510], mbr[511] = 0x55, 0xAA

	primary = append(append(mbr, header(1, sectors-1, 2)...), entries...)
	backup = append(append([]byte(nil), entries...), header(sectors-1, 1, sectors-1-gptEntryLBAs)...)
	return primary, backup, nil
}
