package emit

import (
	"archive/tar"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/hardway-dev/hardway/tree"
)

// Tar writes t as a reproducible tar stream: every entry of t.Entries() in
// path order, names relative to / (directories end in "/"), numeric owners
// only (no user or group names), every mtime the given one, no atime or ctime.
// archive/tar writes USTAR when an entry fits it and PAX otherwise (long
// names), a choice made from the entry alone: the same tree gives the same
// bytes. Secrets keep the tree's owner and mode, which tree.Check guarantees
// is 0600 or stricter.
func Tar(w io.Writer, t *tree.Tree, mtime time.Time) error {
	es, err := entries(t)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(w)
	for _, e := range es {
		if err := tw.WriteHeader(tarHeader(e, mtime)); err != nil {
			return fmt.Errorf("tar %s: %s: %w", t.Node, e.Path, err)
		}
		if e.IsFile() {
			if _, err := tw.Write(e.Data); err != nil {
				return fmt.Errorf("tar %s: %s: %w", t.Node, e.Path, err)
			}
		}
	}
	return tw.Close()
}

// tarHeader is e's header. Uname and Gname stay empty so that readers use the
// numeric ids, as pct extracts templates (--numeric-owner).
func tarHeader(e *tree.Entry, mtime time.Time) *tar.Header {
	h := &tar.Header{
		Name:    strings.TrimPrefix(e.Path, "/"),
		Mode:    int64(e.Mode.Perm()),
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: mtime,
	}
	switch {
	case e.IsDir():
		h.Typeflag = tar.TypeDir
		h.Name += "/"
	case e.IsSymlink():
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.Target
	default:
		h.Typeflag = tar.TypeReg
		h.Size = int64(len(e.Data))
	}
	return h
}
