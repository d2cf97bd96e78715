package verify

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/hardway-dev/hardway/rootfs"
)

// perNodeDirs are the top-level directories that belong to a node rather than
// to the build machine: a path under them is per-node state (a data dir, a
// marker file) even when the generated tree does not hold it.
var perNodeDirs = []string{"/etc", "/var", "/run"}

// Root is one node's root directory on the build machine: a copy of the
// node's generated tree (its overlay.tar extracted, see nodeTree) that its
// processes use in place of "/".
//
// The rule for paths: an absolute path refers to the node when the tree holds
// it (a file, or a directory of one) or when it lies under /etc, /var or /run;
// such a path gets the root directory as prefix, nothing else changes. /usr,
// /opt, /dev, /proc, /sys and the rest stay the build machine's.
type Root struct {
	Dir  string
	tree map[string]bool // absolute paths of the tree's files and their directories
	done map[string]bool // configuration files already rewritten
}

// NewRoot copies the tree at src (a node's extracted tree) to dir.
func NewRoot(src, dir string) (*Root, error) {
	r := &Root{Dir: dir, tree: map[string]bool{}}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		abs := path.Join("/", filepath.ToSlash(rel))
		r.tree[abs] = true
		return copyEntry(p, filepath.Join(dir, rel), d)
	})
	if err != nil {
		return nil, fmt.Errorf("copy %s: %w", src, err)
	}
	return r, nil
}

// copyEntry copies one directory, file or symlink, keeping its mode.
func copyEntry(src, dst string, d fs.DirEntry) error {
	info, err := d.Info()
	if err != nil {
		return err
	}
	switch {
	case d.IsDir():
		return os.MkdirAll(dst, info.Mode().Perm()|0o700)
	case d.Type()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return os.Symlink(target, dst)
	case d.Type().IsRegular():
		return rootfs.CopyFile(src, dst)
	}
	return fmt.Errorf("%s: unsupported file type %s", src, d.Type())
}

// PerNode reports whether the absolute path p belongs to the node (see Root).
func (r *Root) PerNode(p string) bool {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") {
		return false
	}
	p = path.Clean(p)
	if r.tree[p] && p != "/" {
		return true
	}
	for _, d := range perNodeDirs {
		if p == d || strings.HasPrefix(p, d+"/") {
			return true
		}
	}
	return false
}

// Path returns where the node's absolute path p lives on the build machine.
func (r *Root) Path(p string) string { return filepath.Join(r.Dir, filepath.FromSlash(p)) }

// Arg rewrites one argument: a bare absolute path, or the value of
// --flag=value, whose comma-separated elements are checked one by one. It
// returns the node paths it found.
func (r *Root) Arg(a string) (string, []string) {
	if r.PerNode(a) {
		return r.Path(a), []string{a}
	}
	if !strings.HasPrefix(a, "-") {
		return a, nil
	}
	flag, value, ok := strings.Cut(a, "=")
	if !ok {
		return a, nil
	}
	parts := strings.Split(value, ",")
	var found []string
	for i, p := range parts {
		if r.PerNode(p) {
			found = append(found, p)
			parts[i] = r.Path(p)
		}
	}
	return flag + "=" + strings.Join(parts, ","), found
}

// Argv rewrites every argument (not argv[0], the executable, which comes from
// the bin dir) and returns the new argv and the node paths it names.
func (r *Root) Argv(argv []string) ([]string, []string) {
	out := make([]string, len(argv))
	var paths []string
	for i, a := range argv {
		if i == 0 {
			out[0] = a
			continue
		}
		var found []string
		out[i], found = r.Arg(a)
		paths = append(paths, found...)
	}
	return out, paths
}

// pathInText finds absolute-path candidates in configuration text: a "/" at
// the start of a line or after whitespace, a quote, "=", ",", ":", "[" or "(".
var pathInText = regexp.MustCompile(`(?m)(?:^|[\s"'=,:\[(])(/[^\s"',;\])}]*)`)

// RewriteText prefixes the node's absolute paths in configuration text and
// returns the node paths it found.
func (r *Root) RewriteText(text string) (string, []string) {
	var b strings.Builder
	var found []string
	last := 0
	for _, m := range pathInText.FindAllStringSubmatchIndex(text, -1) {
		start, end := m[2], m[3]
		p := text[start:end]
		if !r.PerNode(p) {
			continue
		}
		b.WriteString(text[last:start])
		b.WriteString(r.Path(p))
		last = end
		found = append(found, p)
	}
	b.WriteString(text[last:])
	return b.String(), found
}

// RewriteFiles rewrites the node's paths inside the configuration files that
// paths name, and in the files those name in turn (kube-scheduler.yaml names
// its kubeconfig): files of the tree that are text without a PEM block. Other
// files, such as manifests applied to the cluster, are never changed. It
// returns the files rewritten by this call.
func (r *Root) RewriteFiles(paths []string) ([]string, error) {
	if r.done == nil {
		r.done = map[string]bool{}
	}
	var changed []string
	for len(paths) > 0 {
		p := path.Clean(paths[0])
		paths = paths[1:]
		if r.done[p] || !r.tree[p] {
			continue
		}
		r.done[p] = true
		found, err := r.rewriteFile(p)
		if err != nil {
			return nil, err
		}
		if found != nil {
			changed = append(changed, p)
			paths = append(paths, found...)
		}
	}
	slices.Sort(changed)
	return changed, nil
}

// rewriteFile rewrites one configuration file in place; it returns the
// node paths found, nil when the file is not configuration text or names none.
func (r *Root) rewriteFile(p string) ([]string, error) {
	host := r.Path(p)
	info, err := os.Lstat(host)
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() || info.Size() > 1<<20 {
		return nil, nil
	}
	data, err := os.ReadFile(host)
	if err != nil {
		return nil, err
	}
	if !utf8.Valid(data) || bytes.IndexByte(data, 0) >= 0 || bytes.Contains(data, []byte("-----BEGIN ")) {
		return nil, nil
	}
	text, found := r.RewriteText(string(data))
	if len(found) == 0 {
		return nil, nil
	}
	return found, os.WriteFile(host, []byte(text), info.Mode().Perm())
}
