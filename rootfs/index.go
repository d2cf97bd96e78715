package rootfs

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"
)

// An indexed base is a zstd-compressed tarball written as independent
// frames, each the compression of a stretch of the tar stream, preceded by
// an index of what each frame holds, in a skippable frame (RFC 8878,
// section 3.1.2). It is a valid .tar.zst for every tool: zstd, GNU tar and
// any decoder pass over the index and read the frames as one stream. A
// merge reading it (Merge, MergeScan) passes over the frames whose every
// member its plan removes without decoding them: an LXC template leaves
// out the kernel and its modules, some 40% of a base made for KVM images
// too (hack/base.sh's full base), and decoding them was a fifth of a
// bake's CPU (BENCHMARKS.md, issue #14). IndexBase writes one.
//
// What an index says of a frame is trusted (it decides what a template
// holds), so it vouches for exact bytes: each frame's CRC-32C, compressed
// size and decoded size are checked, and a base changed after it was
// indexed is refused. The index does not make a base more trusted than
// its content: whoever writes the base writes the nodes' programs.

// indexMagic is the index's skippable frame magic (0x184D2A50 to
// 0x184D2A5F are skippable; zstd itself uses none of them).
const indexMagic = 0x184D2A5D

// indexTag starts the index frame's content, then its JSON.
const indexTag = "hardway-base-index/1\n"

// maxIndex bounds an index frame's size when it is read, maxFrame a
// frame's compressed and decoded sizes (a frame is read whole).
const (
	maxIndex = 16 << 20
	maxFrame = 256 << 20
)

// Index is what an indexed base's frames hold, in stream order.
type Index struct {
	Frames []IndexFrame `json:"frames"`
}

// IndexFrame is one frame of an indexed base.
type IndexFrame struct {
	Size    int64 `json:"size"`    // compressed bytes of the frame
	Content int64 `json:"content"` // tar stream bytes it decodes to
	// Members is how many members' first header is in this frame, Bytes
	// their content size (tar's), for BaseInfo's totals.
	Members int   `json:"members"`
	Bytes   int64 `json:"bytes"`
	// Continues says the frame starts inside a member of the frame before
	// it: it is read, or passed over, with that frame.
	Continues bool `json:"continues,omitempty"`
	// Roots are clean paths every member that has bytes in this frame is
	// at or below: the frame is passed over only where every root is
	// removed. None, or "/", and it is always read.
	Roots []string `json:"roots,omitempty"`
	CRC   uint32   `json:"crc32c"` // of the compressed frame
}

// Named reports whether the frame names roots a merge may remove: some,
// every one absolute and none the root itself.
func (f IndexFrame) Named() bool {
	for _, r := range f.Roots {
		if r == "/" || !strings.HasPrefix(r, "/") {
			return false
		}
	}
	return len(f.Roots) > 0
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// The frames IndexBase writes: a frame ends at a member boundary once it
// holds an eighth of IndexOptions.FrameSize (1 MiB) and the member that follows is in another
// directory (its path cut to groupDepth components differs: the kernel's
// modules, /usr/lib/modules/VERSION, stay one group), or before a member
// of that size or more (the initrd, the kernel: so that they are
// their own frames). No frame holds more than IndexOptions.FrameSize bytes
// of the stream: one is cut inside a member if need be, and the next then
// continues it.
const (
	groupDepth = 4
	maxRoots   = 16 // a frame names at most this many roots, else their common directory
)

// IndexOptions tune IndexBase.
type IndexOptions struct {
	Procs     int // encoders at once; 0: every processor
	FrameSize int // most tar stream bytes a frame holds; 0: 8 MiB
}

// IndexBase reads the base tarball (compressed or not; Decompress) and
// writes its tar stream, byte for byte, to frames as independent zstd
// frames (zstd's default level, 3, with checksums), and returns their
// index. The indexed base is the index (Index.WriteTo) followed by the
// frames.
func IndexBase(ctx context.Context, frames io.Writer, base io.Reader, o IndexOptions) (*Index, error) {
	if o.Procs <= 0 {
		o.Procs = runtime.GOMAXPROCS(0)
	}
	if o.FrameSize <= 0 {
		o.FrameSize = 8 << 20
	}
	if o.FrameSize > maxFrame/2 {
		return nil, fmt.Errorf("frames of %d bytes: at most %d", o.FrameSize, maxFrame/2)
	}
	dec, _, err := Decompress(base)
	if err != nil {
		return nil, &InputError{err}
	}
	defer dec.Close()
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderConcurrency(o.Procs), zstd.WithEncoderLevel(zstd.SpeedDefault),
		zstd.WithEncoderCRC(true), zstd.WithZeroFrames(true))
	if err != nil {
		return nil, err
	}
	defer enc.Close()
	ix := &indexer{ctx: ctx, max: int64(o.FrameSize), min: int64(o.FrameSize) / 8, enc: enc, out: frames, queue: make(chan *pendingFrame, o.Procs)}
	ix.tee = &appender{r: dec, ix: ix}
	writeDone := make(chan error, 1)
	go func() { writeDone <- ix.write() }()
	err = ix.read()
	close(ix.queue)
	if werr := <-writeDone; err == nil {
		err = werr
	}
	if err != nil {
		return nil, err
	}
	return &Index{Frames: ix.frames}, nil
}

// indexer cuts a tar stream into frames as it reads it.
type indexer struct {
	ctx     context.Context
	max     int64 // bytes of a frame
	min     int64 // bytes of a frame before it ends where the directory changes
	enc     *zstd.Encoder
	out     io.Writer
	tee     *appender
	start   int64    // stream offset of the current frame's first byte
	pending []byte   // the current frame's bytes (from start)
	paths   []string // members with bytes in the current frame
	members int
	bytes   int64
	cont    bool
	queue   chan *pendingFrame // frames on their way to out, in order
	frames  []IndexFrame       // written (by write)
}

// pendingFrame is a frame being compressed.
type pendingFrame struct {
	f     IndexFrame
	out   []byte
	ready chan struct{}
}

// appender is the decoded stream, whose bytes it appends to the indexer's
// current frame as the tar reader reads them.
type appender struct {
	r   io.Reader
	ix  *indexer
	off int64 // stream bytes read
}

func (a *appender) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	a.ix.pending = append(a.ix.pending, p[:n]...)
	a.off += int64(n)
	return n, err
}

// read reads the tar stream member by member and cuts it into frames.
func (ix *indexer) read() error {
	tr := tar.NewReader(ix.tee)
	buf := make([]byte, 256<<10)
	var dataEnd int64 // where the last member's content ended
	group := ""
	for {
		if err := ix.ctx.Err(); err != nil {
			return err
		}
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return &InputError{fmt.Errorf("reading the base: %w", err)}
		}
		first := (dataEnd + 511) &^ 511 // the member's first header block
		if headers := ix.tee.off - first; headers < 512 || headers%512 != 0 {
			return &InputError{fmt.Errorf("member %q: its headers do not end on a tar block (%d bytes)", h.Name, headers)}
		}
		q := clean(h.Name)
		if n := first - ix.start; n > 0 && (n >= ix.min && ancestor(q, groupDepth) != group || h.Size >= ix.min) {
			if err := ix.cut(first, false); err != nil {
				return err
			}
		}
		ix.paths = append(ix.paths, q)
		ix.members++
		ix.bytes += h.Size
		group = ancestor(q, groupDepth)
		for {
			if err := ix.fill(q, first, h.Size); err != nil {
				return err
			}
			n, err := tr.Read(buf)
			if n == 0 && err == io.EOF {
				break
			}
			if err != nil && err != io.EOF {
				return &InputError{fmt.Errorf("reading the base: member %q: %w", h.Name, err)}
			}
		}
		dataEnd = ix.tee.off
	}
	// The end-of-archive marker and what pads the archive after it.
	if _, err := io.Copy(io.Discard, ix.tee); err != nil {
		return &InputError{fmt.Errorf("reading the base: %w", err)}
	}
	if err := ix.fill("", 0, 0); err != nil {
		return err
	}
	return ix.cut(ix.tee.off, false)
}

// fill cuts full frames off the current one while inside member q, which
// starts at stream offset first, of size bytes: at q's start when the
// frame holds enough before it (q then starts the next one), else inside q.
func (ix *indexer) fill(q string, first, size int64) error {
	for ix.tee.off-ix.start >= ix.max {
		if q != "" && first-ix.start >= ix.min {
			ix.paths, ix.members, ix.bytes = ix.paths[:len(ix.paths)-1], ix.members-1, ix.bytes-size
			if err := ix.cut(first, false); err != nil {
				return err
			}
			ix.paths, ix.members, ix.bytes = []string{q}, 1, size
			continue
		}
		if err := ix.cut(ix.start+ix.max, true); err != nil {
			return err
		}
		if q != "" {
			ix.paths = append(ix.paths, q)
		}
	}
	return nil
}

// cut ends the current frame at stream offset at and sends it to be
// compressed; the next one continues a member when inside is set.
func (ix *indexer) cut(at int64, inside bool) error {
	n := at - ix.start
	data := make([]byte, n)
	copy(data, ix.pending[:n])
	ix.pending = append(ix.pending[:0], ix.pending[n:]...)
	f := &pendingFrame{f: IndexFrame{Content: n, Members: ix.members, Bytes: ix.bytes, Continues: ix.cont, Roots: roots(ix.paths)}, ready: make(chan struct{})}
	ix.start, ix.paths, ix.members, ix.bytes, ix.cont = at, nil, 0, 0, inside
	select {
	case ix.queue <- f:
	case <-ix.ctx.Done():
		return ix.ctx.Err()
	}
	go func() {
		f.out = ix.enc.EncodeAll(data, nil)
		close(f.ready)
	}()
	return nil
}

// write writes the compressed frames in order and indexes them; after an
// error it only drains the queue.
func (ix *indexer) write() error {
	var err error
	for f := range ix.queue {
		<-f.ready
		if err != nil {
			continue
		}
		f.f.Size, f.f.CRC = int64(len(f.out)), crc32.Checksum(f.out, castagnoli)
		if _, err = ix.out.Write(f.out); err == nil {
			ix.frames = append(ix.frames, f.f)
		}
	}
	return err
}

// roots are the paths every one of paths (clean) is at or below: their
// common directory's children on the way to them, or the common directory
// itself when it is one of them or they are too many.
func roots(paths []string) []string {
	if len(paths) == 0 {
		return nil
	}
	common := paths[0]
	for _, p := range paths[1:] {
		for p != common && !under(p, common) {
			common = path.Dir(common)
		}
	}
	depth := strings.Count(common, "/") + 1
	if common == "/" {
		depth = 1
	}
	var out []string
	seen := map[string]bool{}
	for _, p := range paths {
		if p == common {
			return []string{common}
		}
		if r := ancestor(p, depth); !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	if len(out) > maxRoots {
		return []string{common}
	}
	return out
}

// WriteTo writes the index as the skippable frame an indexed base starts with.
func (x *Index) WriteTo(w io.Writer) (int64, error) {
	body, err := json.Marshal(x)
	if err != nil {
		return 0, err
	}
	frame := make([]byte, 8, 8+len(indexTag)+len(body))
	binary.LittleEndian.PutUint32(frame, indexMagic)
	binary.LittleEndian.PutUint32(frame[4:], uint32(len(indexTag)+len(body)))
	frame = append(append(frame, indexTag...), body...)
	n, err := w.Write(frame)
	return int64(n), err
}

// skippable reports whether head starts with a zstd skippable frame.
func skippable(head []byte) bool {
	return len(head) >= 4 && binary.LittleEndian.Uint32(head)&^0xf == 0x184D2A50
}

// readIndex reads the index an indexed base starts with from br, or
// returns nil, leaving br as it was, when it does not start with one.
func readIndex(br *bufio.Reader) (*Index, error) {
	head, _ := br.Peek(8 + len(indexTag))
	if len(head) < 8+len(indexTag) || binary.LittleEndian.Uint32(head) != indexMagic || string(head[8:]) != indexTag {
		return nil, nil
	}
	size := int64(binary.LittleEndian.Uint32(head[4:]))
	if size > maxIndex {
		return nil, fmt.Errorf("base index of %d bytes (at most %d)", size, maxIndex)
	}
	if _, err := br.Discard(8); err != nil {
		return nil, err
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(br, body); err != nil {
		return nil, fmt.Errorf("truncated base index: %w", err)
	}
	var x Index
	if err := json.Unmarshal(body[len(indexTag):], &x); err != nil {
		return nil, fmt.Errorf("base index: %w", err)
	}
	if len(x.Frames) == 0 || x.Frames[0].Continues {
		return nil, errors.New("base index: no frames, or a first frame that continues another")
	}
	for i, f := range x.Frames {
		if f.Size <= 0 || f.Size > maxFrame || f.Content < 0 || f.Content > maxFrame || f.Members < 0 {
			return nil, fmt.Errorf("base index: frame %d: bad sizes", i)
		}
	}
	return &x, nil
}

// indexedDecoder decodes an indexed base frame by frame, and passes over
// the runs of frames (a frame and those that continue it) whose roots skip
// says are removed, except the last, which ends the archive.
type indexedDecoder struct {
	r       *bufio.Reader
	x       *Index
	next    int           // the next frame to read
	dec     *zstd.Decoder // the current frame's, when left > 0
	left    int64         // its bytes not yet read
	frame   int           // the current frame
	buf     []byte        // a frame's compressed bytes
	skip    func(roots []string) bool
	skipped []Skipped
	err     error
}

// Skipped is a run of an indexed base's frames a merge passed over: their
// members are all at or below Roots, and were all removed.
type Skipped struct {
	Roots   []string
	Members int
	Bytes   int64 // the members' content
	Content int64 // tar stream bytes not decoded
}

func newIndexedDecoder(br *bufio.Reader, x *Index) (*indexedDecoder, error) {
	d, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	return &indexedDecoder{r: br, x: x, dec: d}, nil
}

func (d *indexedDecoder) Read(p []byte) (int, error) {
	for d.left == 0 {
		if d.err != nil {
			return 0, d.err
		}
		if d.err = d.start(); d.err != nil {
			return 0, d.err
		}
	}
	n, err := d.dec.Read(p[:min(int64(len(p)), d.left)])
	d.left -= int64(n)
	switch {
	case err == io.EOF && d.left > 0:
		d.err = fmt.Errorf("frame %d ends %d bytes before its index says", d.frame, d.left)
	case err != nil && err != io.EOF:
		d.err = err
	case d.left == 0:
		if k, err := d.dec.Read(make([]byte, 1)); k != 0 || err != io.EOF {
			d.err = fmt.Errorf("frame %d holds more than its index says", d.frame)
		}
	}
	if d.err != nil {
		return n, d.err
	}
	return n, nil
}

// start begins the next frame to decode, passing over the runs skip
// says are removed; io.EOF after the last frame.
func (d *indexedDecoder) start() error {
	for {
		if d.next == len(d.x.Frames) {
			if _, err := d.r.Peek(1); err != io.EOF {
				return errors.New("data after the frames of the base's index")
			}
			return io.EOF
		}
		end := d.next + 1
		for end < len(d.x.Frames) && d.x.Frames[end].Continues {
			end++
		}
		if s, ok := d.passable(d.next, end); ok && d.skip(s.Roots) {
			for i := d.next; i < end; i++ {
				if _, err := d.read(i); err != nil {
					return err
				}
			}
			d.skipped = append(d.skipped, s)
			d.next = end
			continue
		}
		data, err := d.read(d.next)
		if err != nil {
			return err
		}
		if err := d.dec.Reset(bytes.NewReader(data)); err != nil {
			return err
		}
		d.frame, d.left = d.next, d.x.Frames[d.next].Content
		d.next++
		if d.left > 0 {
			return nil
		}
	}
}

// passable is the run of frames [i, end) as a Skipped, and whether skip
// may be asked about it: it starts at a member (a frame that continues a
// decoded one is decoded), does not end the archive, and every frame
// names its roots (IndexFrame.Named).
func (d *indexedDecoder) passable(i, end int) (Skipped, bool) {
	var s Skipped
	if d.skip == nil || d.x.Frames[i].Continues || end == len(d.x.Frames) {
		return s, false
	}
	seen := map[string]bool{}
	for _, f := range d.x.Frames[i:end] {
		if !f.Named() {
			return s, false
		}
		for _, r := range f.Roots {
			if !seen[r] {
				seen[r] = true
				s.Roots = append(s.Roots, r)
			}
		}
		s.Members += f.Members
		s.Bytes += f.Bytes
		s.Content += f.Content
	}
	return s, true
}

// read reads frame i's compressed bytes and checks them against the index.
func (d *indexedDecoder) read(i int) ([]byte, error) {
	f := d.x.Frames[i]
	if int64(cap(d.buf)) < f.Size {
		d.buf = make([]byte, f.Size)
	}
	b := d.buf[:f.Size]
	if _, err := io.ReadFull(d.r, b); err != nil {
		return nil, err
	}
	if crc32.Checksum(b, castagnoli) != f.CRC {
		return nil, fmt.Errorf("frame %d is not the one the base's index describes (was the base changed after it was indexed?)", i)
	}
	return b, nil
}

// PassOver has the indexed base that Decompress returned as rc pass over
// the runs of frames skip says are removed: a merge's own decoder asks its
// plan, a decoder shared by several merges (Decoded) what every one of
// them removes. skipped, once rc is read to its end, are the runs it
// passed over; ok is false, and nothing changes, when rc is not an
// indexed base.
func PassOver(rc io.ReadCloser, skip func(roots []string) bool) (skipped func() []Skipped, ok bool) {
	d, ok := rc.(*indexedDecoder)
	if !ok {
		return nil, false
	}
	d.skip = skip
	return func() []Skipped { return d.skipped }, true
}

// Removes reports whether the plan planner makes before anything of a
// base is known removes everything at or below roots, with no layer
// entry there: what a shared decoder may pass over for that merge
// (PassOver). MergeScan checks it again under the plan of the whole base.
func Removes(planner Planner) (func(roots []string) bool, error) {
	p, err := planner(newScanner(Zstd, nil).info)
	if err != nil {
		return nil, err
	}
	rel := relevant(p)
	return func(roots []string) bool { return removedTrees(p, rel, roots) }, nil
}

func (d *indexedDecoder) Close() error {
	d.dec.Close()
	return nil
}
