package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"path"
	"sort"
	"strings"
	"sync/atomic"
	"time"
)

// Options tune a merge.
type Options struct {
	// Epoch is the mtime of every layer entry (SOURCE_DATE_EPOCH as the
	// caller read it, else the Unix epoch).
	Epoch time.Time
	// Clamp clamps every base mtime to Epoch, as reproducible builds do
	// with SOURCE_DATE_EPOCH. Without it base mtimes are kept as they are
	// (whole seconds), which is just as reproducible for a given base.
	Clamp bool
	// Exclude drops base and layer entries at the paths it returns true for
	// (pct: everything below /dev). Nil keeps all.
	Exclude func(p string) bool
	// Xattr keeps the extended attribute name (pct: user.* and
	// security.capability). Nil keeps all.
	Xattr func(name string) bool
	// Counters, when set, is updated while the merge runs (for progress).
	Counters *Counters
	Log      *slog.Logger
	// NoSkip decodes every frame of an indexed base (index.go), as a merge
	// of any other base does.
	NoSkip bool
}

// Counters are a running merge's totals, safe to read from another goroutine.
type Counters struct {
	Members atomic.Int64 // written so far
	Bytes   atomic.Int64 // file content written so far
}

// Stats describe a finished merge.
type Stats struct {
	Members    int            // written
	Bytes      int64          // file content written
	FromBase   int            // members kept from the base
	FromLayers int            // members written from the layers
	Replaced   int            // base members a layer entry took the place of
	Merged     int            // base directories kept where a layer needed a directory
	Dropped    map[string]int // base (or layer) members left out, by reason
	// DroppedXattrs counts extended attributes left out by Options.Xattr, by name.
	DroppedXattrs map[string]int
	HasSbin       bool // the stream has an /sbin directory or symlink
	Dev           int  // members written below /dev
	// Skipped are the runs of an indexed base's frames passed over
	// undecoded, their members all removed (counted in Dropped as such).
	Skipped []Skipped
	// Secrets are the paths of the layer entries written that are secrets
	// (Entry.Secret: private keys, kubeconfigs with a client key), sorted.
	Secrets  []string
	Warnings []string // things the caller should tell the user
}

// Reasons a member is dropped, the keys of Stats.Dropped.
const (
	DropExcluded    = "excluded"    // Options.Exclude
	DropRemoved     = "removed"     // a layer's Remove pattern (sysprep)
	DropShadowed    = "shadowed"    // below a layer entry that is not a directory
	DropDuplicate   = "duplicate"   // a repeated base member at a path a layer wrote
	DropHardlink    = "hardlink"    // a hard link to a member that was dropped
	DropDevice      = "device"      // a device node outside /dev, or a hard link to one
	DropUnsupported = "unsupported" // a tar member type a root file system has no use for
)

// maxWarnings bounds Stats.Warnings; the rest are counted.
const maxWarnings = 20

// Merge streams the base tarball (compressed or not) through the plan into w
// as one tar stream:
//   - base members the layers replace are dropped, with everything below a
//     base directory a layer replaced by a file or a link; a layer entry
//     that replaces a base member takes its place in the stream;
//   - directories are merged: a layer's directory keeps the base's content
//     and brings its own mode and owner (an implicit one keeps the base's);
//   - hard links, symlinks, device nodes, fifos and xattrs of the base are
//     kept (xattrs as PAX SCHILY.xattr.* records, filtered by Options.Xattr),
//     but for device nodes outside /dev and hard links to members the merge
//     did not write (see DropDevice; Scan refuses what cannot be dropped);
//   - layer entries not in the base follow the base, sorted by path;
//   - names are "./"-prefixed (directories end in "/"), owners are numeric
//     only, layer mtimes are Options.Epoch, base mtimes whole seconds
//     (clamped to the epoch with Options.Clamp), and no atime or ctime is
//     written, so the same inputs give the same bytes.
//
// It holds no file's content: memory does not grow with the base.
func Merge(ctx context.Context, w io.Writer, base io.Reader, p *Plan, o Options) (*Stats, error) {
	st, _, err := mergeBase(ctx, w, base, p, nil, o, nil)
	return st, err
}

// A Planner makes an artifact's plan from what is known of its base. The
// entries it places at a path must not change content with what it knows
// (MergeScan compares entries by path, layer, type, owner, mode and size).
type Planner func(*BaseInfo) (*Plan, error)

// ErrReplan is MergeScan's answer when the plans it made from the part of
// the base read so far placed the layers otherwise than the plan of the
// whole base: the output is not what Merge would write, and the caller
// merges again (Merge with the plan of the BaseInfo MergeScan returned).
var ErrReplan = errors.New("the plan changed once the whole base was read")

// MergeScan is Scan and Merge in one pass over the base: it learns and
// checks the base as Scan does (watch as Scan's) while it merges, with the
// plan made by plan from what it has learned so far, made again whenever a
// member the plan may depend on goes by (a symbolic link on the way to a
// layer entry, a watched name). Once the base is read it makes the plan of
// the whole base and checks that every base member met the same fate under
// it; the trailing layer entries come from that plan. On success the output
// is byte for byte what Scan and then Merge with plan(info) would write.
// A base Scan refuses is refused at its end (write to a temporary file);
// with ErrReplan the BaseInfo is complete and checked.
func MergeScan(ctx context.Context, w io.Writer, base io.Reader, plan Planner, o Options, watch ...string) (*Stats, *BaseInfo, error) {
	return mergeBase(ctx, w, base, nil, plan, o, watch)
}

// mergeBase is Merge with plan p, or MergeScan with planner.
func mergeBase(ctx context.Context, w io.Writer, base io.Reader, p *Plan, planner Planner, o Options, watch []string) (*Stats, *BaseInfo, error) {
	b, err := openBase(base)
	if err != nil {
		return nil, nil, err
	}
	defer b.close()
	m := &merger{
		ctx: ctx, o: o, tw: tar.NewWriter(w), buf: make([]byte, 1<<20),
		emitted: map[string]bool{}, written: map[string]byte{},
		st: &Stats{Dropped: map[string]int{}, DroppedXattrs: map[string]int{}},
	}
	if m.o.Counters == nil {
		m.o.Counters = &Counters{}
	}
	if m.o.Log == nil {
		m.o.Log = slog.New(slog.DiscardHandler)
	}
	if planner != nil {
		m.scan, m.planner = newScanner(b.comp, watch), planner
		if p, err = planner(m.scan.info); err != nil {
			return nil, nil, err
		}
	}
	m.setPlan(p)
	if !o.NoSkip {
		if skipped, ok := PassOver(b.dec, m.passable); ok { // the base's own decoder: its plan decides
			b.skipped = skipped
		}
	}
	for {
		h, q, err := b.next(ctx)
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, nil, err
		}
		if err := m.base(b, h, q); err != nil {
			return nil, nil, err
		}
	}
	var info *BaseInfo
	if b.skipped != nil {
		m.st.Skipped = b.skipped()
	}
	for _, s := range m.st.Skipped {
		m.st.Dropped[DropRemoved] += s.Members
	}
	if m.scan != nil {
		m.scan.skipped(m.st.Skipped)
		if info, err = m.scan.finish(); err != nil {
			return nil, nil, err
		}
		final, err := planner(info)
		if err != nil {
			return nil, info, err
		}
		if info.unsure || !m.same(final) {
			return nil, info, ErrReplan
		}
	}
	for _, e := range m.plan.order {
		if m.emitted[e.Path] {
			continue
		}
		if m.excluded(e.Path) {
			m.drop(DropExcluded)
			m.warn("layer %s: %s left out (excluded from this artifact)", e.layer, e.Path)
			continue
		}
		if err := m.layer(e); err != nil {
			return nil, nil, err
		}
	}
	if err := m.tw.Close(); err != nil {
		return nil, nil, err
	}
	sort.Strings(m.st.Secrets)
	return m.st, info, nil
}

// merger is one running Merge.
type merger struct {
	ctx      context.Context
	o        Options
	plan     *Plan
	tw       *tar.Writer
	buf      []byte
	emitted  map[string]bool // layer paths already written
	written  map[string]byte // hard link targets written, with the type their links share
	st       *Stats
	warnings int
	src      io.Reader // the current base member's content

	// MergeScan's
	scan     *scanner        // learns the base as it goes
	planner  Planner         // makes m.plan again from what scan learned
	relevant map[string]bool // paths at or above a layer entry (final or raw)
	taken    []decision      // every base member's fate, in stream order
}

// decision is the fate a base member met.
type decision struct {
	path    string
	dir     bool
	outcome string   // a Drop reason, or one of the outcomes below
	entry   *planned // the layer entry that replaced it
}

// Outcomes of a base member that is not dropped.
const (
	outKept     = "kept"
	outMerged   = "merged"   // a directory a layer needs, kept with its base metadata
	outReplaced = "replaced" // by a layer entry
)

// setPlan makes p the merge's plan, and notes the paths at or above its
// entries: where a symlink would move them, and where a base member is
// no removed subtree.
func (m *merger) setPlan(p *Plan) {
	m.plan, m.relevant = p, relevant(p)
}

// relevant are the paths at or above p's entries, where they are and
// where their layers placed them.
func relevant(p *Plan) map[string]bool {
	r := map[string]bool{}
	for _, e := range p.entries {
		for _, q := range []string{e.Path, e.raw} {
			for ; q != "/" && q != "" && !r[q]; q = path.Dir(q) {
				r[q] = true
			}
		}
	}
	return r
}

// passable reports whether everything at or below roots is removed under
// the merge's plan, with no layer entry there: an indexed base's frames
// holding only such members go by undecoded.
func (m *merger) passable(roots []string) bool { return removedTrees(m.plan, m.relevant, roots) }

// removedTrees reports whether p removes every path at or below roots
// and places no entry there (relevant is p's, relevant(p)).
func removedTrees(p *Plan, relevant map[string]bool, roots []string) bool {
	for _, r := range roots {
		if !p.removed(r) || relevant[r] {
			return false
		}
	}
	return true
}

// learn has the scanner learn the member h at q, keeping os-release's
// content, and makes the plan again when the member may change it.
func (m *merger) learn(b *baseStream, h *tar.Header, q string) error {
	l := m.scan.member(h, q)
	if l.content {
		data, err := io.ReadAll(io.LimitReader(b.tr, maxOSRelease))
		if err != nil {
			return b.read(err)
		}
		m.scan.info.osFiles[q] = data
		m.src = io.MultiReader(bytes.NewReader(data), b.tr)
	}
	if l.kind || l.link && m.relevant[q] {
		// A plan that fails on part of the base is not used; the plan of
		// the whole base decides.
		if p, err := m.planner(m.scan.info); err == nil {
			m.setPlan(p)
		}
	}
	return nil
}

// same reports whether every base member meets the fate under p that it
// met: then the output is what a merge with p writes, and p becomes the
// merge's plan, with the layer entries it wrote.
func (m *merger) same(p *Plan) bool {
	rel := relevant(p)
	for _, s := range m.st.Skipped {
		if !removedTrees(p, rel, s.Roots) {
			m.o.Log.Debug("the plan keeps what the base's index let go by", "roots", s.Roots)
			return false
		}
	}
	emitted := map[string]bool{}
	merged := 0
	for _, d := range m.taken {
		out, e := m.outcome(p, emitted, d.path, d.dir)
		switch {
		case out == outMerged && d.outcome == outKept, out == outKept && d.outcome == outMerged:
			// the same bytes: the base's directory
		case out != d.outcome || !sameEntry(e, d.entry):
			m.o.Log.Debug("the plan changed", "path", d.path, "was", d.outcome, "now", out)
			return false
		}
		if out == outMerged {
			merged++
		}
	}
	m.plan, m.emitted, m.st.Merged = p, emitted, merged
	return true
}

// sameEntry reports whether two plans' entries are the same.
func sameEntry(a, b *planned) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Path == b.Path && a.layer == b.layer && a.Mode == b.Mode && a.UID == b.UID && a.GID == b.GID &&
		a.Target == b.Target && a.Size == b.Size && a.Implicit == b.Implicit && a.Secret == b.Secret
}

// outcome is the fate under p of a base member at q (a directory or
// not) that is not a hard link or device dropped on its own, given the
// layer paths written before it (emitted, updated).
func (m *merger) outcome(p *Plan, emitted map[string]bool, q string, dir bool) (string, *planned) {
	if reason := m.fate(p, q); reason != "" {
		return reason, nil
	}
	e, ok := p.at(q)
	switch {
	case !ok:
		return outKept, nil
	case emitted[q]:
		return DropDuplicate, nil
	}
	emitted[q] = true
	if e.Implicit && dir {
		return outMerged, nil
	}
	return outReplaced, e
}

// base handles one base member at clean path q.
func (m *merger) base(b *baseStream, h *tar.Header, q string) error {
	m.src = b.tr
	if m.scan != nil {
		if err := m.learn(b, h, q); err != nil {
			return err
		}
	} else if err := m.recheck(h, q); err != nil {
		return err
	}
	out, e := m.outcome(m.plan, m.emitted, q, h.Typeflag == tar.TypeDir)
	if m.scan != nil {
		m.taken = append(m.taken, decision{path: q, dir: h.Typeflag == tar.TypeDir, outcome: out, entry: e})
	}
	switch out {
	case outMerged:
		m.st.Merged++
		return m.copyBase(b, h, q)
	case outReplaced:
		m.st.Replaced++
		return m.layer(e)
	case outKept:
	default:
		m.drop(out)
		return nil
	}
	switch {
	case h.Typeflag == tar.TypeLink:
		if reason, why := m.linkFate(h, q); reason != "" {
			m.drop(reason)
			m.warn("base hard link %s dropped: %s", q, why)
			return nil
		}
	case isDevice(h.Typeflag) && !under(q, "/dev"):
		m.drop(DropDevice)
		m.warn("base %s %s (%d:%d) dropped: a device node outside /dev", typeName(h.Typeflag), q, h.Devmajor, h.Devminor)
		return nil
	}
	return m.copyBase(b, h, q)
}

// recheck refuses what Scan refuses member by member, in case the base
// changed since it was scanned: a member below a symlink of the scanned
// base, and a setuid program others may write.
func (m *merger) recheck(h *tar.Header, q string) error {
	for a := path.Dir(q); a != "/"; a = path.Dir(a) {
		if _, ok := m.plan.info.Link(a); ok {
			return fmt.Errorf("base member %s is below the symbolic link %s (has the base changed since it was scanned?)", q, a)
		}
	}
	if isRegular(h.Typeflag) && writableSetuid(h.Mode) {
		return fmt.Errorf("base member %s is a setuid or setgid program others may write, mode %04o (has the base changed since it was scanned?)", q, h.Mode&0o7777)
	}
	return nil
}

// fate is why a base member at q is dropped under p before it meets the
// layers, or "".
func (m *merger) fate(p *Plan, q string) string {
	switch {
	case q == "/":
		return ""
	case m.excluded(q):
		return DropExcluded
	case p.removed(q):
		return DropRemoved
	case p.shadowed(q):
		return DropShadowed
	}
	return ""
}

// linkFate is the reason a base hard link at q cannot be kept, and why, or
// "": its target is not in the stream before it (it was dropped, or a
// layer made it a directory), or it would be a device node outside /dev. A
// target replaced by a layer file stays valid; the link then shares the
// layer's content, which is said.
func (m *merger) linkFate(h *tar.Header, q string) (reason, why string) {
	t := clean(h.Linkname)
	typ, ok := m.written[t]
	switch {
	case !ok:
		why := "was left out"
		if r := m.fate(m.plan, t); r != "" {
			why = "was " + r
		} else if e, ok := m.plan.at(t); ok && e.IsDir() {
			why = "is a directory of layer " + e.layer
		}
		return DropHardlink, fmt.Sprintf("its target %s %s", t, why)
	case isDevice(typ) && !under(q, "/dev"):
		return DropDevice, fmt.Sprintf("its target %s is a device node, and it is outside /dev", t)
	}
	if e, ok := m.plan.at(t); ok {
		m.warn("base hard link %s now shares the content of %s from layer %s", q, t, e.layer)
	}
	return "", ""
}

// wrote records that a non-directory of type typ is at q in the stream,
// where q is a hard link's target.
func (m *merger) wrote(q string, typ byte) {
	if m.scan != nil || m.plan.info.hardTargets[q] { // MergeScan knows them only later
		m.written[q] = typ
	}
}

func (m *merger) excluded(q string) bool { return m.o.Exclude != nil && m.o.Exclude(q) }

func (m *merger) drop(reason string) { m.st.Dropped[reason]++ }

func (m *merger) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	m.o.Log.Warn(msg)
	if m.warnings++; m.warnings <= maxWarnings {
		m.st.Warnings = append(m.st.Warnings, msg)
	} else if m.warnings == maxWarnings+1 {
		m.st.Warnings = append(m.st.Warnings, "more warnings follow in the log")
	}
}

// copyBase writes a kept base member, with its content.
func (m *merger) copyBase(b *baseStream, h *tar.Header, q string) error {
	out, ok := m.baseHeader(h, q)
	if !ok {
		m.drop(DropUnsupported)
		m.warn("base member %s of tar type %q dropped: not a file, directory, link, device or fifo", q, h.Typeflag)
		return nil
	}
	if err := m.write(out, q); err != nil {
		return err
	}
	m.st.FromBase++
	switch out.Typeflag {
	case tar.TypeDir:
	case tar.TypeLink:
		m.wrote(q, m.written[clean(h.Linkname)])
	default:
		m.wrote(q, out.Typeflag)
	}
	if out.Typeflag != tar.TypeReg {
		return nil
	}
	n, err := m.copy(m.src, out.Size)
	if err != nil && !isWriteErr(err) {
		return fmt.Errorf("base %s: %w", q, b.read(err))
	}
	if err != nil {
		return err
	}
	if n != out.Size {
		return b.read(io.ErrUnexpectedEOF)
	}
	return nil
}

// layer writes a layer entry, with its content.
func (m *merger) layer(e *planned) error {
	m.emitted[e.Path] = true
	h := m.layerHeader(e)
	if err := m.write(h, e.Path); err != nil {
		return err
	}
	m.st.FromLayers++
	if !e.IsDir() {
		m.wrote(e.Path, h.Typeflag)
	}
	if e.Secret {
		m.st.Secrets = append(m.st.Secrets, e.Path)
	}
	if !e.IsFile() || e.Size == 0 {
		return nil
	}
	rc, err := e.Open()
	if err != nil {
		return fmt.Errorf("layer %s: %s: %w", e.layer, e.Path, err)
	}
	defer rc.Close()
	n, err := m.copy(rc, e.Size)
	if err == nil && n < e.Size {
		err = fmt.Errorf("content is %d bytes, %d expected (did the file change?)", n, e.Size)
	}
	if err == nil {
		// Read to EOF: a verifying reader checks its hash there, and a file
		// that grew is caught.
		var one [1]byte
		if k, rerr := io.ReadFull(rc, one[:]); k > 0 {
			err = fmt.Errorf("content is longer than the %d bytes expected (did the file change?)", e.Size)
		} else if rerr != io.EOF {
			err = rerr
		}
	}
	if err != nil && !isWriteErr(err) {
		return fmt.Errorf("layer %s: %s: %w", e.layer, e.Path, err)
	}
	return err
}

// write writes a header and counts the member.
func (m *merger) write(h *tar.Header, q string) error {
	if err := m.tw.WriteHeader(h); err != nil {
		return &writeError{fmt.Errorf("write %s: %w", h.Name, err)}
	}
	m.st.Members++
	m.o.Counters.Members.Add(1)
	switch {
	case q == "/sbin" && (h.Typeflag == tar.TypeDir || h.Typeflag == tar.TypeSymlink):
		m.st.HasSbin = true
	case under(q, "/dev"):
		m.st.Dev++
	}
	return nil
}

// copy copies n bytes of src into the current member, checking ctx.
func (m *merger) copy(src io.Reader, n int64) (int64, error) {
	var total int64
	for total < n {
		if err := m.ctx.Err(); err != nil {
			return total, err
		}
		chunk := min(int64(len(m.buf)), n-total)
		k, rerr := io.ReadFull(src, m.buf[:chunk])
		if k > 0 {
			if _, err := m.tw.Write(m.buf[:k]); err != nil {
				return total, &writeError{err}
			}
			total += int64(k)
			m.st.Bytes += int64(k)
			m.o.Counters.Bytes.Add(int64(k))
		}
		switch {
		case rerr == io.EOF || rerr == io.ErrUnexpectedEOF:
			return total, nil
		case rerr != nil:
			return total, rerr
		}
	}
	return total, nil
}

// writeError marks a failure to write the output (a full disk, a closed
// pipe), which must not be reported as a problem of the input.
type writeError struct{ err error }

func (e *writeError) Error() string { return e.err.Error() }
func (e *writeError) Unwrap() error { return e.err }

func isWriteErr(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}

// baseHeader is the header a kept base member gets, or false for a type a
// root file system has no use for.
func (m *merger) baseHeader(h *tar.Header, q string) (*tar.Header, bool) {
	typ := h.Typeflag
	switch typ {
	case tar.TypeReg, tar.TypeGNUSparse:
		typ = tar.TypeReg // sparse files come out expanded
	case tar.TypeDir, tar.TypeSymlink, tar.TypeLink, tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
	default:
		return nil, false
	}
	out := &tar.Header{
		Typeflag:   typ,
		Name:       memberName(q, typ == tar.TypeDir),
		Mode:       h.Mode & 0o7777,
		Uid:        h.Uid,
		Gid:        h.Gid,
		ModTime:    m.clamp(h.ModTime),
		PAXRecords: m.records(h, q),
	}
	switch typ {
	case tar.TypeReg:
		out.Size = h.Size
	case tar.TypeSymlink:
		out.Linkname = h.Linkname
	case tar.TypeLink:
		out.Linkname = memberName(clean(h.Linkname), false)
	case tar.TypeChar, tar.TypeBlock:
		out.Devmajor, out.Devminor = h.Devmajor, h.Devminor
	}
	return out, true
}

// records keeps the PAX records that describe the file itself: extended
// attributes (SCHILY.xattr.*, as GNU tar --xattrs writes and reads them)
// allowed by Options.Xattr, and POSIX ACLs (SCHILY.acl.*, GNU tar --acls).
// Times, names, sparse maps and comments are dropped or carried elsewhere.
func (m *merger) records(h *tar.Header, q string) map[string]string {
	var out map[string]string
	keys := make([]string, 0, len(h.PAXRecords))
	for k := range h.PAXRecords {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		keep := strings.HasPrefix(k, "SCHILY.acl.")
		if name, ok := strings.CutPrefix(k, "SCHILY.xattr."); ok {
			keep = m.o.Xattr == nil || m.o.Xattr(name)
			if !keep {
				m.st.DroppedXattrs[name]++
			}
		}
		if keep {
			if out == nil {
				out = map[string]string{}
			}
			out[k] = h.PAXRecords[k]
		}
	}
	return out
}

// clamp is SOURCE_DATE_EPOCH clamping: t, at most the epoch with
// Options.Clamp, in whole seconds.
func (m *merger) clamp(t time.Time) time.Time {
	if m.o.Clamp && t.After(m.o.Epoch) {
		t = m.o.Epoch
	}
	return time.Unix(t.Unix(), 0)
}

// layerHeader is the header of a layer entry.
func (m *merger) layerHeader(e *planned) *tar.Header {
	return header(&e.Entry, m.o.Epoch)
}

// header is the tar header of e, modified at mtime (whole seconds).
func header(e *Entry, mtime time.Time) *tar.Header {
	h := &tar.Header{
		Name:    memberName(e.Path, e.IsDir()),
		Mode:    modeBits(e.Mode),
		Uid:     e.UID,
		Gid:     e.GID,
		ModTime: time.Unix(mtime.Unix(), 0),
	}
	switch {
	case e.IsDir():
		h.Typeflag = tar.TypeDir
	case e.IsSymlink():
		h.Typeflag = tar.TypeSymlink
		h.Linkname = e.Target
	default:
		h.Typeflag = tar.TypeReg
		h.Size = e.Size
	}
	return h
}

// modeBits is the tar mode of a file mode: permissions and the setuid,
// setgid and sticky bits.
func modeBits(mode fs.FileMode) int64 {
	b := int64(mode.Perm())
	if mode&fs.ModeSetuid != 0 {
		b |= 0o4000
	}
	if mode&fs.ModeSetgid != 0 {
		b |= 0o2000
	}
	if mode&fs.ModeSticky != 0 {
		b |= 0o1000
	}
	return b
}
