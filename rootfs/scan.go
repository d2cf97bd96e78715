package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"path"
	"strings"
)

// BaseInfo is what a first pass over a base tarball learned about it: enough
// to place the layers (its symlinks), name the artifact (its os-release) and
// check that it can boot, without keeping any file's content.
type BaseInfo struct {
	Compression Compression
	Members     int
	Size        int64 // uncompressed content bytes
	OS          OSRelease

	links       map[string]string // every symlink of the base: path → target
	kinds       map[string]byte   // tar type of the watched paths
	osFiles     map[string][]byte // /etc/os-release and /usr/lib/os-release when regular files
	hardTargets map[string]bool   // the targets of the base's hard links

	// skipped are the roots of an indexed base's frames a merge passed
	// over: what lies at or below them is not known (Kind says nothing is
	// there), and unsure is set once Kind, Link or Resolve was asked.
	skipped map[string]bool
	unsure  bool
}

// OSRelease holds the fields of os-release(5) that name an artifact.
type OSRelease struct {
	ID         string // e.g. debian
	VersionID  string // e.g. 12
	PrettyName string
}

// watched are the base names whose entries Scan records, whatever their
// directory: the files bake checks for, and os-release.
var watched = map[string]bool{
	"os-release": true, "systemd": true, "sbin": true, "init": true,
	"sshd": true, "ssh-keygen": true, "machine-id": true, "cloud-init": true,
	"ssh.service": true, "sshd-keygen.service": true, "sshd-keygen@.service": true,
}

// maxOSRelease bounds the os-release content Scan keeps.
const maxOSRelease = 64 << 10

// Scan reads the base tarball r once, verifying it end to end (compression
// checksums, tar headers, the end-of-archive marker) and refusing, with an
// UnsafeBaseError, a base GNU tar cannot extract as the bake sees it or
// one that would make a node unsafe (see RefuseBelow), and returns what it
// learned. Besides the built-in watch list it records entries whose base
// name is in watch (unit names, binaries). Memory grows with the number of
// members in the base (their names), not with their content.
func Scan(ctx context.Context, r io.Reader, watch ...string) (*BaseInfo, error) {
	b, err := openBase(r)
	if err != nil {
		return nil, err
	}
	defer b.close()
	sc := newScanner(b.comp, watch)
	for {
		h, p, err := b.next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if learned := sc.member(h, p); learned.content {
			data, err := io.ReadAll(io.LimitReader(b.tr, maxOSRelease))
			if err != nil {
				return nil, b.read(err)
			}
			sc.info.osFiles[p] = data
		}
	}
	return sc.finish()
}

// scanner learns a base member by member, for Scan and MergeScan.
type scanner struct {
	info  *BaseInfo
	check *baseCheck
	extra map[string]bool
}

func newScanner(comp Compression, watch []string) *scanner {
	extra := map[string]bool{}
	for _, w := range watch {
		extra[w] = true
	}
	info := &BaseInfo{Compression: comp, links: map[string]string{}, kinds: map[string]byte{}, osFiles: map[string][]byte{}}
	return &scanner{info: info, check: newBaseCheck(info.links), extra: extra}
}

// learned says what a member told the scanner.
type learned struct {
	kind    bool // its tar type was recorded (Kind knows it)
	link    bool // it is a symlink
	content bool // its content is wanted (os-release)
}

// member records the member h at clean path p.
func (s *scanner) member(h *tar.Header, p string) learned {
	var l learned
	info := s.info
	info.Members++
	info.Size += h.Size
	base := path.Base(p)
	if h.Typeflag == tar.TypeSymlink {
		info.links[p] = h.Linkname
		l.link = true
	}
	s.check.member(h, p)
	if watched[base] || s.extra[base] || path.Dir(p) == "/" {
		info.kinds[p] = h.Typeflag
		l.kind = true
	}
	l.content = base == "os-release" && (p == "/etc/os-release" || p == "/usr/lib/os-release") && isRegular(h.Typeflag)
	return l
}

// Partial reports whether a merge passed over frames of an indexed base:
// what lies below them is not known.
func (b *BaseInfo) Partial() bool { return len(b.skipped) > 0 }

// skipped counts the members of the frames the merge passed over, and
// notes their roots.
func (s *scanner) skipped(runs []Skipped) {
	if len(runs) > 0 {
		s.info.skipped = map[string]bool{}
	}
	for _, r := range runs {
		s.info.Members += r.Members
		s.info.Size += r.Bytes
		for _, root := range r.Roots {
			s.info.skipped[root] = true
		}
	}
}

// known reports whether what lies at p is known: it is not at or below a
// skipped root; when it is, that is noted (unsure).
func (b *BaseInfo) known(p string) bool {
	if len(b.skipped) == 0 {
		return true
	}
	for q := p; ; q = path.Dir(q) {
		if b.skipped[q] {
			b.unsure = true
			return false
		}
		if q == "/" {
			return true
		}
	}
}

// finish is what the scanner learned of the whole base, or its refusal.
func (s *scanner) finish() (*BaseInfo, error) {
	if err := s.check.err(); err != nil {
		return nil, &InputError{err}
	}
	s.info.hardTargets = s.check.targets
	s.info.OS = s.info.osRelease()
	return s.info, nil
}

// isRegular reports whether a tar type is a regular file.
func isRegular(t byte) bool { return t == tar.TypeReg || t == tar.TypeGNUSparse || t == '\x00' }

// osRelease parses /etc/os-release, or /usr/lib/os-release when the former
// is missing (os-release(5)); /etc/os-release is usually a link to it.
func (b *BaseInfo) osRelease() OSRelease {
	var data []byte
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		if r, err := b.Resolve(p, true); err == nil {
			if d, ok := b.osFiles[r]; ok {
				data = d
				break
			}
		}
	}
	var o OSRelease
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			o.ID = v
		case "VERSION_ID":
			o.VersionID = v
		case "PRETTY_NAME":
			o.PrettyName = v
		}
	}
	return o
}

// maxLinks is the symlink hops a resolution follows, as Linux's MAXSYMLINKS.
const maxLinks = 40

// Resolve returns where p lands in the base once its symlinks are followed:
// those of its parent directories, and with final its own too. Targets are
// taken inside the base (an absolute target starts at the base's root).
func (b *BaseInfo) Resolve(p string, final bool) (string, error) {
	return b.resolve(p, final, nil)
}

// resolve is Resolve, except that keep(d) true stops it from following a
// link at d (a layer that replaces that link with a directory of its own).
func (b *BaseInfo) resolve(p string, final bool, keep func(string) bool) (string, error) {
	return ResolveLinks(p, final, func(d string) (string, bool) {
		if keep != nil && keep(d) {
			return "", false
		}
		b.known(d)
		t, ok := b.links[d]
		return t, ok
	})
}

// ResolveLinks returns where p lands in a tree whose symlinks link gives
// (the target of the link at a clean absolute path): those of its parent
// directories are followed, and with final its own too. Targets are taken
// inside the tree (an absolute target starts at its root).
func ResolveLinks(p string, final bool, link func(string) (string, bool)) (string, error) {
	done := "/"
	rest := strings.Split(strings.TrimPrefix(path.Clean(p), "/"), "/")
	hops := 0
	for len(rest) > 0 {
		c := rest[0]
		rest = rest[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			done = path.Dir(done)
			continue
		}
		next := path.Join(done, c)
		if len(rest) == 0 && !final {
			done = next
			continue
		}
		t, isLink := link(next)
		if !isLink {
			done = next
			continue
		}
		if hops++; hops > maxLinks {
			return "", fmt.Errorf("%s: too many levels of symbolic links", p)
		}
		if strings.HasPrefix(t, "/") {
			done = "/"
		}
		rest = append(strings.Split(t, "/"), rest...)
	}
	return done, nil
}

// Kind returns the tar type of the base entry at p, following every symlink
// (a dangling one or one whose target was not watched counts as the link
// itself). Only watched base names and top-level entries are known.
func (b *BaseInfo) Kind(p string) (byte, bool) {
	r, err := b.Resolve(p, true)
	if err == nil && b.known(r) {
		if k, ok := b.kinds[r]; ok {
			return k, true
		}
	}
	if r, err := b.Resolve(p, false); err == nil && b.known(r) {
		if k, ok := b.kinds[r]; ok {
			return k, true
		}
	}
	return 0, false
}

// Has reports whether the base has an entry at p (see Kind).
func (b *BaseInfo) Has(p string) bool {
	_, ok := b.Kind(p)
	return ok
}

// Link returns the target of the base's symlink at p, without following any link.
func (b *BaseInfo) Link(p string) (string, bool) {
	b.known(p)
	t, ok := b.links[p]
	return t, ok
}

// Systemd returns the path of systemd in the base (/usr/lib/systemd/systemd
// or /lib/systemd/systemd), or "".
func (b *BaseInfo) Systemd() string {
	for _, p := range []string{"/usr/lib/systemd/systemd", "/lib/systemd/systemd"} {
		if k, ok := b.Kind(p); ok && k != tar.TypeDir {
			return p
		}
	}
	return ""
}
