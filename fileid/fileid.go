// Package fileid is what tells a file apart from the same name holding
// other bytes: the part of a stat(2) that any write, replacement or change
// of mode changes. A program that read a file once trusts its reading while
// the file's ID is the one it read, and reads it again otherwise.
package fileid

import (
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// ID is a file's device, inode, type and permission bits, size, and
// modification and change times (nanoseconds since the epoch). A write
// changes the change time, which no call can set back.
type ID struct {
	Dev, Ino     uint64
	Mode         uint32 // st_mode: type and permission bits
	Size         int64
	Mtime, Ctime int64
}

// Of is the ID of st.
func Of(st *unix.Stat_t) ID {
	return ID{
		Dev: st.Dev, Ino: st.Ino, Mode: st.Mode, Size: st.Size,
		Mtime: st.Mtim.Nano(), Ctime: st.Ctim.Nano(),
	}
}

// Stat is the ID of the open file f.
func Stat(f *os.File) (ID, error) {
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		return ID{}, &os.PathError{Op: "stat", Path: f.Name(), Err: err}
	}
	return Of(&st), nil
}

// Settled reports whether id's file last changed before t, by more than
// racy: a change after t, even within the file system's clock tick, then
// shows in the ID (git's racily clean entries).
func (id ID) Settled(t time.Time, racy time.Duration) bool {
	limit := t.Add(-racy).UnixNano()
	return id.Ctime < limit && id.Mtime < limit
}
