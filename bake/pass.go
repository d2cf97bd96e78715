package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/hardway-dev/hardway/rootfs"
)

// sink is where one artifact's merged stream goes: start gives the writer
// of a fresh artifact (again after a second read of the base), end closes
// it after the merge, keeping the merge's error first.
type sink interface {
	start() (io.Writer, error)
	end(merr error) error
}

// mergeInto merges the base into k for one artifact in one read of src
// (the base, or a fan-out's copy of its decoded stream): rootfs.MergeScan
// learns and checks the base while it merges. When the base, read whole,
// places the layers otherwise than its start said (rootfs.ErrReplan), k
// starts afresh and the base file is read again with the plan of the
// whole base; when that plan was made without what the frames an indexed
// base let go by hold (rootfs.BaseInfo.Partial), the second read decodes
// every frame and learns the base again. It returns what the base is (to
// check before publishing).
func mergeInto(ctx context.Context, cfg Config, src io.Reader, plan rootfs.Planner, o rootfs.Options, watch []string, k sink) (*rootfs.Stats, *rootfs.BaseInfo, error) {
	w, err := k.start()
	if err != nil {
		return nil, nil, err
	}
	st, info, err := rootfs.MergeScan(ctx, w, src, plan, o, watch...)
	err = k.end(inBase(cfg, err))
	if errors.Is(err, rootfs.ErrReplan) && info.Partial() {
		cfg.Log.Info("the plan of the whole base reaches into what its index let go by: reading every frame again", "base", cfg.Base)
		o.NoSkip = true
		st, info, err = againFromFile(cfg, k, func(f io.Reader, w io.Writer) (*rootfs.Stats, *rootfs.BaseInfo, error) {
			return rootfs.MergeScan(ctx, w, f, plan, o, watch...)
		})
	}
	if !errors.Is(err, rootfs.ErrReplan) {
		return st, info, err
	}
	cfg.Log.Info("the end of the base moved layer entries its start had placed: reading it again", "base", cfg.Base)
	p, err := plan(info)
	if err != nil {
		return nil, nil, err
	}
	st, _, err = againFromFile(cfg, k, func(f io.Reader, w io.Writer) (*rootfs.Stats, *rootfs.BaseInfo, error) {
		st, err := rootfs.Merge(ctx, w, f, p, o)
		return st, info, err
	})
	return st, info, err
}

// againFromFile starts k afresh and merges the base file into it with merge.
func againFromFile(cfg Config, k sink, merge func(f io.Reader, w io.Writer) (*rootfs.Stats, *rootfs.BaseInfo, error)) (*rootfs.Stats, *rootfs.BaseInfo, error) {
	f, _, err := openBase(cfg.Base)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	w, err := k.start()
	if err != nil {
		return nil, nil, err
	}
	st, info, err := merge(f, w)
	return st, info, k.end(inBase(cfg, err))
}

// inBase names the base in an error of the base itself.
func inBase(cfg Config, err error) error {
	var ie *rootfs.InputError
	if errors.As(err, &ie) {
		return fmt.Errorf("base %s: %w", cfg.Base, err)
	}
	return err
}

// baseCheck checks the base once for all the artifacts that read it: the
// first to finish reading it runs check, the others get its answer.
type baseCheck struct {
	once  sync.Once
	check func(*rootfs.BaseInfo) error
	err   error
}

func (c *baseCheck) of(info *rootfs.BaseInfo) error {
	c.once.Do(func() { c.err = c.check(info) })
	if c.err != nil {
		return &sharedError{c.err}
	}
	return nil
}

// sharedError is an error every job of a run meets (the base's): runJobs
// reports it once.
type sharedError struct{ error }

func (e *sharedError) Unwrap() error { return e.error }

// fanOut reads the base file once, decompressed, and hands the same
// stream to n readers, each of which must be closed: the artifacts baked
// from one read of the base. A reader that is closed early is left out;
// the others go on.
type fanOut struct {
	readers []*fanReader
	done    chan struct{}
}

// fanChunk is how much of the decoded stream goes out at once.
const fanChunk = 1 << 20

// newFanOut starts reading base for n readers; the base file bytes read are
// added to each of read (for progress). An indexed base's runs of frames
// that skip says every reader removes are passed over (rootfs.PassOver);
// a nil skip decodes them all.
func newFanOut(ctx context.Context, base string, n int, read []*atomic.Int64, skip func(roots []string) bool) (*fanOut, error) {
	f, _, err := openBase(base)
	if err != nil {
		return nil, err
	}
	if n == 1 { // one reader reads the file itself: no copy of the stream
		r := &fanReader{closed: make(chan struct{}), file: f, stream: countReader{f, read}}
		fo := &fanOut{readers: []*fanReader{r}, done: make(chan struct{})}
		close(fo.done)
		return fo, nil
	}
	dec, comp, err := rootfs.Decompress(countReader{f, read})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("base %s: %w", base, err)
	}
	var skipped func() []rootfs.Skipped
	if skip != nil {
		skipped, _ = rootfs.PassOver(dec, skip)
	}
	fo := &fanOut{done: make(chan struct{})}
	for range n {
		r := &fanReader{ch: make(chan []byte, 4), closed: make(chan struct{})}
		r.stream = rootfs.DecodedPassing(r, comp, skipped)
		fo.readers = append(fo.readers, r)
	}
	go func() {
		defer close(fo.done)
		defer f.Close()
		defer dec.Close()
		var err error
		for err == nil {
			buf := make([]byte, fanChunk) // read-only once sent: the readers share it
			k := 0
			for k < len(buf) && err == nil {
				var n int
				n, err = dec.Read(buf[k:])
				k += n
			}
			if k > 0 {
				switch open, ok := fo.send(ctx, buf[:k]); {
				case !ok:
					err = context.Cause(ctx)
				case open == 0:
					err = errNoReader // every artifact stopped: no need to read on
				}
			}
		}
		for _, r := range fo.readers {
			r.err = err
			close(r.ch)
		}
	}()
	return fo, nil
}

// errNoReader ends a fanOut whose readers are all closed.
var errNoReader = errors.New("no reader left")

// send gives chunk to every reader still open, and says how many there
// are, or false when ctx is done.
func (fo *fanOut) send(ctx context.Context, chunk []byte) (open int, ok bool) {
	for _, r := range fo.readers {
		select {
		case r.ch <- chunk:
			open++
		case <-r.closed:
		case <-ctx.Done():
			return 0, false
		}
	}
	return open, true
}

// fanReader is one reader of a fanOut: the decoded base.
type fanReader struct {
	stream io.Reader // what to merge: the reader, marked rootfs.Decoded
	ch     chan []byte
	cur    []byte
	err    error // after ch is closed: io.EOF or why the base could not be read
	closed chan struct{}
	once   sync.Once
	file   *os.File // the base, read by the only reader
}

func (r *fanReader) Read(p []byte) (int, error) {
	for len(r.cur) == 0 {
		c, ok := <-r.ch
		if !ok {
			return 0, r.err
		}
		r.cur = c
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	return n, nil
}

// Close leaves the reader out of the rest of the stream.
func (r *fanReader) Close() error {
	r.once.Do(func() {
		close(r.closed)
		if r.file != nil {
			r.file.Close()
		}
	})
	return nil
}
