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
	paths := slices.AppendSeq(slices.Collect(maps.Keys(a)), maps.Keys(b))
	slices.Sort(paths)
	for _, p := range slices.Compact(paths) {
		was, had := a[p]
		now, has := b[p]
		switch {
		case !has:
			out = append(out, p+" removed")
		case !had:
			out = append(out, p+" added")
		case now != was:
			out = append(out, p+" changed")
		}
	}
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
