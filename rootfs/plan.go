package rootfs

import (
	"fmt"
	"path"
	"sort"
	"strings"
)

// Plan is the layers combined and placed on one base: every layer entry at
// the path it takes in the merged tree, and the base paths to remove. It is
// built before the base is streamed, so that base members can be dropped or
// replaced as they go by.
type Plan struct {
	info    *BaseInfo           // the base it is placed on
	entries map[string]*planned // by final path
	order   []*planned          // by path: what follows the base in the stream
	remove  []removal
}

// planned is a layer entry with the layer it comes from.
type planned struct {
	Entry
	layer string
	raw   string // the path in its layer, before the base's symlinks placed it
}

// removal is one Remove pattern of a layer.
type removal struct {
	pattern string
	depth   int // number of path components the pattern matches
	// literal is the pattern up to its first special character (all of
	// it when it has none): a path that does not start with it cannot
	// match, which rules out nearly every base member at the cost of a
	// comparison (removed runs for each of them).
	literal string
}

// NewPlan combines layers, in order (a later layer's entry replaces an
// earlier one's at the same path), and places them on the base described by
// info: an implicit directory where the base has a symlink gives way to the
// link, and the layer's paths below it follow the link, as they would if the
// layer were copied onto the base.
func NewPlan(info *BaseInfo, layers ...Layer) (*Plan, error) {
	raw, err := combine(layers)
	if err != nil {
		return nil, err
	}
	p := &Plan{info: info, entries: map[string]*planned{}}
	keep := func(d string) bool {
		e, ok := raw[d]
		return ok && !e.Implicit
	}
	for _, e := range sortedEntries(raw) {
		final, err := info.resolve(e.Path, false, keep)
		if err != nil {
			return nil, fmt.Errorf("layer %s: %w", e.layer, err)
		}
		if _, isLink := info.Link(final); isLink && e.IsDir() && e.Implicit {
			continue // the base's link stays, the layer's paths below follow it
		}
		if err := p.add(final, e); err != nil {
			return nil, err
		}
	}
	for _, e := range p.entries {
		p.order = append(p.order, e)
	}
	sort.Slice(p.order, func(i, j int) bool { return p.order[i].Path < p.order[j].Path })
	for _, l := range layers {
		for _, r := range l.Remove {
			if _, err := path.Match(r, "/"); err != nil || !strings.HasPrefix(r, "/") {
				return nil, fmt.Errorf("layer %s: bad remove pattern %q", l.Name, r)
			}
			lit := r
			if i := strings.IndexAny(r, `*?[\`); i >= 0 {
				lit = r[:i]
			}
			p.remove = append(p.remove, removal{pattern: r, depth: strings.Count(path.Clean(r), "/"), literal: lit})
		}
	}
	return p, nil
}

// add places e at final; two entries meeting there must be directories, one
// of them implicit (they were distinct paths of the layers).
func (p *Plan) add(final string, e *planned) error {
	moved := *e
	moved.Path, moved.raw = final, e.Path
	old, ok := p.entries[final]
	switch {
	case !ok:
		p.entries[final] = &moved
	case old.IsDir() && moved.IsDir() && moved.Implicit:
	case old.IsDir() && old.Implicit && moved.IsDir():
		p.entries[final] = &moved
	default:
		return fmt.Errorf("layer %s: %s lands on %s in the base, which layer %s also writes", e.layer, e.Path, final, old.layer)
	}
	return nil
}

// combine stacks the layers by path: an explicit entry replaces whatever an
// earlier layer had there, an implicit directory replaces only a non-directory
// (a later layer needs a directory there). Entries below a non-directory of a
// later layer are dropped.
func combine(layers []Layer) (map[string]*planned, error) {
	raw := map[string]*planned{}
	for _, l := range layers {
		for _, e := range withParents(l.Entries) {
			if err := checkPath(l.Name, e.Path); err != nil {
				return nil, err
			}
			if err := checkEntry(l.Name, &e); err != nil {
				return nil, err
			}
			old, ok := raw[e.Path]
			if ok && e.Implicit && old.IsDir() {
				continue
			}
			raw[e.Path] = &planned{Entry: e, layer: l.Name}
		}
	}
	for p := range raw {
		for d := path.Dir(p); d != "/"; d = path.Dir(d) {
			if a, ok := raw[d]; ok && !a.IsDir() {
				delete(raw, p)
				break
			}
		}
	}
	return raw, nil
}

// checkEntry refuses entries that cannot be written.
func checkEntry(layer string, e *Entry) error {
	switch {
	case e.IsSymlink() && e.Target == "":
		return fmt.Errorf("layer %s: symlink %s has no target", layer, e.Path)
	case e.IsFile() && e.Size < 0:
		return fmt.Errorf("layer %s: %s has a negative size", layer, e.Path)
	case e.IsFile() && e.Size > 0 && e.Open == nil:
		return fmt.Errorf("layer %s: %s has %d bytes and no content", layer, e.Path, e.Size)
	case !e.IsDir() && !e.IsSymlink() && !e.IsFile():
		return fmt.Errorf("layer %s: %s has unsupported type %v", layer, e.Path, e.Mode.Type())
	case e.IsFile() && writableSetuid(modeBits(e.Mode)):
		return fmt.Errorf("layer %s: %s is a setuid or setgid program others may write (mode %04o)", layer, e.Path, modeBits(e.Mode))
	}
	return nil
}

// sortedEntries returns the entries of raw by path.
func sortedEntries(raw map[string]*planned) []*planned {
	out := make([]*planned, 0, len(raw))
	for _, e := range raw {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// at returns the layer entry at p.
func (p *Plan) at(path string) (*planned, bool) {
	e, ok := p.entries[path]
	return e, ok
}

// shadowed reports whether a base member at q lies below a layer entry
// that is not a directory: the layer replaced a base directory (or what
// held it) by a file or a link, so its base content goes. q is clean
// (stream's clean): its directories are its prefixes before each slash.
func (p *Plan) shadowed(q string) bool {
	for d := q; ; {
		i := strings.LastIndexByte(d, '/')
		if i <= 0 {
			return false
		}
		d = d[:i]
		if e, ok := p.entries[d]; ok && !e.IsDir() {
			return true
		}
	}
}

// removed reports whether a base member at q (clean) is removed by a
// layer: it, or a directory above it, matches a Remove pattern.
func (p *Plan) removed(q string) bool {
	if len(p.remove) == 0 || q == "/" {
		return false
	}
	depth := strings.Count(q, "/")
	for _, r := range p.remove {
		if depth < r.depth || !strings.HasPrefix(q, r.literal) {
			continue
		}
		if ok, _ := path.Match(r.pattern, ancestor(q, r.depth)); ok {
			return true
		}
	}
	return false
}

// ancestor is clean path q cut to its first depth components ("/a/b/c",
// 2: "/a/b"), q itself when it has no more.
func ancestor(q string, depth int) string {
	for i := 1; i < len(q); i++ {
		if q[i] == '/' {
			if depth--; depth == 0 {
				return q[:i]
			}
		}
	}
	return q
}
