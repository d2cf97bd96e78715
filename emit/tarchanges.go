package emit

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
)

// TarChanges lists, in path order, the entries that differ between two
// archives Tar wrote: "/etc/hosts changed", "/etc/x added", "/etc/y
// removed". An entry changed when its type, permissions, owner, content or
// link target did; mtimes (the epoch) are not compared. hardway plan names
// with it what would change inside a node's overlay.tar.
func TarChanges(old, new []byte) ([]string, error) {
	a, err := tarSummary(old)
	if err != nil {
		return nil, err
	}
	b, err := tarSummary(new)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range slices.Sorted(maps.Keys(a)) {
		switch now, ok := b[p]; {
		case !ok:
			out = append(out, p+" removed")
		case now != a[p]:
			out = append(out, p+" changed")
		}
	}
	for _, p := range slices.Sorted(maps.Keys(b)) {
		if _, ok := a[p]; !ok {
			out = append(out, p+" added")
		}
	}
	slices.SortStableFunc(out, func(x, y string) int {
		return strings.Compare(x[:strings.LastIndexByte(x, ' ')], y[:strings.LastIndexByte(y, ' ')])
	})
	return out, nil
}

// tarSummary describes each entry of archive by its path ("/etc/hosts"):
// type, permissions, owner, and a file's sha256 or a link's target.
func tarSummary(archive []byte) (map[string]string, error) {
	out := map[string]string{}
	tr := tar.NewReader(bytes.NewReader(archive))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		s := fmt.Sprintf("%c %o %d:%d %s", h.Typeflag, h.Mode&0o7777, h.Uid, h.Gid, h.Linkname)
		if h.Typeflag == tar.TypeReg {
			sum := sha256.New()
			if _, err := io.Copy(sum, tr); err != nil {
				return nil, err
			}
			s += fmt.Sprintf(" %x", sum.Sum(nil))
		}
		out["/"+strings.Trim(h.Name, "/")] = s
	}
}
