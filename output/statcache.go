package output

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"maps"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/fileid"
)

// The stat cache lets a rerun trust a file without reading it, as git's
// index does. A finished run records, for every artifact it wrote or
// verified, the sha256 of the content it knows the file holds and the
// file's stat(2) taken when it knew that: device, inode, type and mode,
// size, mtime and ctime (statEntry). A later run trusts the artifact when
// the manifest lists that sha256 and the file still has that stat; any
// other it reads and hashes.
//
// Nothing changes a file without changing its stat: a write or truncate
// sets mtime and ctime, a chmod, chown, link or rename ctime, and a file
// replaced by a rename is another inode. ctime is the clock's, never the
// user's: touch -d sets mtime back but ctime to now. What a stat cannot
// show is a change within the same clock tick as the stat it is compared
// with (ext4 stamps with a tick of the kernel's coarse clock, unless the
// kernel has multigrain timestamps): that is git's "racy" case, handled as
// git handles it. The cache carries a time T read from the file system's
// own clock after every stat it holds was taken; an entry whose ctime or
// mtime is not before T may have been changed in its last tick after the
// stat, so it is not trusted (the file is hashed, and the next cache, with
// a later T, records it again).
//
// The cache lives in the lock file, after the "clean" mark of a finished
// run (see lock.go): that file is hardway's own run state, not an output.
// It is written in place and carries a sha256 of itself: a cache torn by a
// crash, cut short or edited does not check out and is ignored, and every
// file is then hashed. A crash at any other moment leaves the previous
// cache, whose entries stay true for every file they match: a file the
// crashed run wrote or chmodded has another inode or ctime.

// statEntry is what a run knew about one file: content and stat together.
type statEntry struct {
	sum [32]byte // sha256 of the content (of the target for a symlink)
	st  fileid.ID
}

// statCache is a decoded cache.
type statCache struct {
	entries map[string]statEntry // the trusted entries, by path
	// The manifest the cache was written with: when manifest.json still
	// has the stat of its entry, it holds this, and is not parsed again.
	manifest manifest
}

// The encoding, little-endian: the magic; T as an int64; the numbers of
// artifacts and of other entries (the manifest's) as uint32s; the length
// of the whole cache as a uint64; the number of the manifest's parts as a
// uint32 and each part's name and digest, sorted by name; one record per
// artifact, then one per other entry; and the sha256 of everything
// before it. A record is the path, the sum in hex (the manifest's
// spelling: decoding makes no string), a byte saying whether a stat
// follows, the stat's fields, and for an artifact its node, kind, mode
// and size. Strings are a uint16 length and the bytes. The magic starts
// with a NUL byte, which no journal line of the lock file can hold
// (CheckRel refuses it).
const (
	statMagic     = "\x00hardway stat cache 4\n"
	statHeaderLen = len(statMagic) + 8 + 4 + 4 + 8
)

// encodeStatCache encodes the cache of manifest m and entries (of m's
// artifacts and of manifest.json) with time t (see the comment above).
func encodeStatCache(t int64, m manifest, entries map[string]statEntry) []byte {
	var extra []string
	if _, ok := entries[ManifestFile]; ok {
		extra = append(extra, ManifestFile)
	}

	w := statWriter{b: make([]byte, 0, statHeaderLen+len(m.Parts)*100+len(entries)*160)}
	w.b = append(w.b, statMagic...)
	w.u64(uint64(t))
	w.u32(uint32(len(m.Artifacts)))
	w.u32(uint32(len(extra)))
	w.u64(0) // the length, set below
	w.u32(uint32(len(m.Parts)))
	for _, p := range slices.Sorted(maps.Keys(m.Parts)) {
		w.str(p)
		w.str(m.Parts[p])
	}
	record := func(p string, sum [32]byte) {
		w.str(p)
		w.b = hex.AppendEncode(w.b, sum[:])
		e, ok := entries[p]
		if !ok || e.sum != sum {
			w.b = append(w.b, 0)
			return
		}
		w.b = append(w.b, 1)
		w.u64(e.st.Dev)
		w.u64(e.st.Ino)
		w.u32(e.st.Mode)
		w.u64(uint64(e.st.Size))
		w.u64(uint64(e.st.Mtime))
		w.u64(uint64(e.st.Ctime))
	}
	for _, a := range m.Artifacts {
		sum, _ := sumOf(a)
		record(a.Path, sum)
		w.str(a.Node)
		w.str(a.Kind)
		w.str(a.Mode)
		w.u64(uint64(a.Size))
	}
	for _, p := range extra {
		record(p, entries[p].sum)
	}
	binary.LittleEndian.PutUint64(w.b[statHeaderLen-8:], uint64(len(w.b)+sha256.Size))
	sum := sha256.Sum256(w.b)
	return append(w.b, sum[:]...)
}

// statWriter appends the cache's fields.
type statWriter struct{ b []byte }

func (w *statWriter) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *statWriter) u64(v uint64) { w.b = binary.LittleEndian.AppendUint64(w.b, v) }
func (w *statWriter) str(s string) {
	w.b = binary.LittleEndian.AppendUint16(w.b, uint16(len(s)))
	w.b = append(w.b, s...)
}

// statCacheLen returns the length that the cache at the start of b says
// it has, or 0 if b does not start with one that fits in b.
func statCacheLen(b []byte) int {
	if len(b) < statHeaderLen+sha256.Size || !bytes.HasPrefix(b, []byte(statMagic)) {
		return 0
	}
	n := binary.LittleEndian.Uint64(b[statHeaderLen-8:])
	if n < uint64(statHeaderLen+sha256.Size) || n > uint64(len(b)) {
		return 0
	}
	return int(n)
}

// decodeStatCache decodes the cache b (exactly one, as statCacheLen
// measured it), leaving out the entries that are racy. A cache that does
// not check out decodes to nil.
func decodeStatCache(b []byte) *statCache {
	if n := statCacheLen(b); n == 0 || n != len(b) {
		return nil
	}
	body := b[:len(b)-sha256.Size]
	if sha256.Sum256(body) != [32]byte(b[len(body):]) {
		return nil
	}
	r := statReader{b: body, s: string(body), off: len(statMagic)} // one copy: the strings are slices of it
	t := int64(r.u64())
	n, extra := int(r.u32()), int(r.u32())
	r.u64()
	c := &statCache{entries: make(map[string]statEntry, n+extra)}
	parts := int(r.u32())
	c.manifest.Parts = make(map[string]string, min(parts, len(body)/4))
	for i := 0; i < parts && !r.bad; i++ {
		p := r.str()
		c.manifest.Parts[p] = r.str()
	}
	c.manifest.Artifacts = make([]Artifact, 0, min(n, len(body)/64))
	record := func() (string, string) {
		p := r.str()
		var e statEntry
		sum := r.take(hex.EncodedLen(len(e.sum)))
		if _, err := hex.Decode(e.sum[:], r.b[r.off-len(sum):r.off]); err != nil {
			r.bad = true
		}
		if r.byte() == 1 {
			e.st = fileid.ID{Dev: r.u64(), Ino: r.u64(), Mode: r.u32(), Size: int64(r.u64()), Mtime: int64(r.u64()), Ctime: int64(r.u64())}
			if e.st.Settled(time.Unix(0, t), 0) {
				c.entries[p] = e
			}
		}
		return p, sum
	}
	for range n {
		p, sum := record()
		a := Artifact{Path: p, SHA256: sum}
		a.Node, a.Kind, a.Mode, a.Size = r.str(), r.str(), r.str(), int64(r.u64())
		c.manifest.Artifacts = append(c.manifest.Artifacts, a)
	}
	for range extra {
		record()
	}
	if r.bad || r.off != len(body) {
		return nil
	}
	return c
}

// statReader reads the cache's fields from b, or s, the same bytes as a
// string; bad is set once it runs out.
type statReader struct {
	b   []byte
	s   string
	off int
	bad bool
}

func (r *statReader) take(n int) string {
	if r.bad || len(r.s)-r.off < n {
		r.bad = true
		return ""
	}
	r.off += n
	return r.s[r.off-n : r.off]
}

func (r *statReader) byte() byte {
	if b := r.take(1); b != "" {
		return b[0]
	}
	return 0
}

func (r *statReader) u32() uint32 {
	if b := r.take(4); b != "" {
		return binary.LittleEndian.Uint32([]byte(b))
	}
	return 0
}

func (r *statReader) u64() uint64 {
	if b := r.take(8); b != "" {
		return binary.LittleEndian.Uint64([]byte(b))
	}
	return 0
}

func (r *statReader) str() string {
	if b := r.take(2); b != "" {
		return r.take(int(binary.LittleEndian.Uint16([]byte(b))))
	}
	return ""
}

// entry returns the trusted entry of path p.
func (c *statCache) entry(p string) (statEntry, bool) {
	if c == nil {
		return statEntry{}, false
	}
	e, ok := c.entries[p]
	return e, ok
}

// trusted returns the cached stat of artifact a when the cache knows its
// content and mode to be the manifest's: the caller then only has to see
// that the file still has this stat.
func (c *statCache) trusted(a Artifact) (statEntry, bool) {
	e, ok := c.entry(a.Path)
	if sum, valid := sumOf(a); !ok || !valid || e.sum != sum || a.Mode == "" || e.st.Size != a.Size {
		return statEntry{}, false
	}
	if a.Mode == ModeSymlink {
		return e, e.st.Mode&unix.S_IFMT == unix.S_IFLNK
	}
	return e, e.st.Mode&unix.S_IFMT == unix.S_IFREG && rawMode(e.st.Mode) == a.Mode
}

// sumOf is a's sha256 as bytes; ok is false if it is not one.
func sumOf(a Artifact) (sum [32]byte, ok bool) {
	if len(a.SHA256) != hex.EncodedLen(len(sum)) {
		return sum, false
	}
	_, err := hex.Decode(sum[:], []byte(a.SHA256))
	return sum, err == nil
}
