package ext4

import (
	"fmt"
	"io"
	"slices"
)

// blockWriter writes blocks at their place in the file system, gathering
// consecutive ones into large writes.
type blockWriter struct {
	f     File
	off   int64  // the file system's offset in f
	start uint64 // first block of buf
	buf   []byte
}

// flushAt is the buffer size that triggers a write.
const flushAt = 4 << 20

// writeAt writes data (whole blocks) at block b.
func (w *blockWriter) writeAt(b uint64, data []byte) error {
	if err := w.seek(b); err != nil {
		return err
	}
	w.buf = append(w.buf, data...)
	return w.maybeFlush()
}

// copyAt writes n bytes of r at block b, padded with zeros to a whole block.
func (w *blockWriter) copyAt(b uint64, r io.Reader, n int64) error {
	if err := w.seek(b); err != nil {
		return err
	}
	for n > 0 {
		k := min(n, flushAt)
		i := len(w.buf)
		w.buf = slices.Grow(w.buf, int(k)+blockSize)[:i+int(k)]
		if _, err := io.ReadFull(r, w.buf[i:]); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("read: %w", err)
		}
		n -= k
		if tail := len(w.buf) % blockSize; n == 0 && tail != 0 {
			i := len(w.buf)
			w.buf = w.buf[:i+blockSize-tail]
			clear(w.buf[i:])
		}
		if err := w.maybeFlush(); err != nil {
			return err
		}
	}
	return nil
}

// seek starts a new write unless b follows the buffer.
func (w *blockWriter) seek(b uint64) error {
	if len(w.buf) > 0 && w.start+uint64(len(w.buf))/blockSize == b {
		return nil
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.start = b
	return nil
}

func (w *blockWriter) maybeFlush() error {
	if len(w.buf) < flushAt {
		return nil
	}
	return w.flush()
}

// flush writes the buffer.
func (w *blockWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	whole := len(w.buf) / blockSize * blockSize
	if whole == 0 {
		return nil
	}
	if _, err := w.f.WriteAt(w.buf[:whole], w.off+int64(w.start)*blockSize); err != nil {
		return &WriteError{err}
	}
	w.start += uint64(whole / blockSize)
	w.buf = append(w.buf[:0], w.buf[whole:]...)
	return nil
}

// WriteError is a failure to write the file system (a full disk), as
// opposed to a problem of the stream.
type WriteError struct{ Err error }

func (e *WriteError) Error() string { return "write: " + e.Err.Error() }
func (e *WriteError) Unwrap() error { return e.Err }
