package rootfs

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"reflect"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
)

// member is one entry of a synthetic base tarball.
type member struct {
	tar.Header
	data string
}

func dir(name string, mode int64, uid int) member {
	return member{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode, Uid: uid, Gid: uid}}
}

func file(name, data string) member {
	return member{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644}, data: data}
}

func link(name, target string) member {
	return member{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: target, Mode: 0o777}}
}

func hardlink(name, target string) member {
	return member{Header: tar.Header{Typeflag: tar.TypeLink, Name: name, Linkname: target, Mode: 0o755}}
}

// baseMTime is the mtime of synthetic base members: after any test epoch.
var baseMTime = time.Date(2030, 1, 2, 3, 4, 5, 600, time.UTC)

// tarball writes members as a tar archive, GNU tar's way (PAX when needed).
func tarball(t testing.TB, members ...member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range members {
		h := m.Header
		if h.ModTime.IsZero() {
			h.ModTime = baseMTime
		}
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.data))
		}
		h.Uname, h.Gname = "someone", "somegroup"
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatalf("%s: %v", h.Name, err)
		}
		if _, err := io.WriteString(tw, m.data); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// compress compresses data with c.
func compress(t testing.TB, c Compression, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var w io.WriteCloser
	var err error
	switch c {
	case Plain:
		return data
	case Gzip:
		w = gzip.NewWriter(&buf)
	case Zstd:
		w, err = zstd.NewWriter(&buf)
	case Xz:
		w, err = xz.NewWriter(&buf)
	default:
		t.Fatalf("cannot compress %s", c)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// got is one member of a merged stream.
type got struct {
	tar.Header
	data  string
	index int
}

// readAll reads a merged stream into its members by name, and their names in order.
func readAll(t testing.TB, data []byte) (map[string]got, []string) {
	t.Helper()
	tr := tar.NewReader(bytes.NewReader(data))
	out := map[string]got{}
	var names []string
	for i := 0; ; i++ {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if _, dup := out[h.Name]; dup {
			t.Errorf("member %s appears twice", h.Name)
		}
		out[h.Name] = got{Header: *h, data: string(b), index: i}
		names = append(names, h.Name)
	}
	return out, names
}

// merge scans base, plans layers and merges, failing the test on error.
func merge(t testing.TB, base []byte, o Options, layers func(*BaseInfo) []Layer) ([]byte, *Stats) {
	t.Helper()
	info, err := Scan(context.Background(), bytes.NewReader(base))
	if err != nil {
		t.Fatalf("scan: %v", err)
	}
	p, err := NewPlan(info, layers(info)...)
	if err != nil {
		t.Fatalf("plan: %v", err)
	}
	var out bytes.Buffer
	st, err := Merge(context.Background(), &out, bytes.NewReader(base), p, o)
	if err != nil {
		t.Fatalf("merge: %v", err)
	}
	// One pass must write the same, or say that it cannot.
	var one bytes.Buffer
	planner := func(info *BaseInfo) (*Plan, error) { return NewPlan(info, layers(info)...) }
	st1, info1, err := MergeScan(context.Background(), &one, bytes.NewReader(base), planner, o)
	switch {
	case errors.Is(err, ErrReplan):
		t.Logf("MergeScan: %v", err)
	case err != nil:
		t.Fatalf("MergeScan: %v", err)
	case !bytes.Equal(one.Bytes(), out.Bytes()):
		t.Errorf("MergeScan wrote other bytes than Scan and Merge")
	case !reflect.DeepEqual(st1, st):
		t.Errorf("MergeScan's stats %+v, Merge's %+v", st1, st)
	}
	if err == nil || errors.Is(err, ErrReplan) {
		if !reflect.DeepEqual(info1, info) {
			t.Errorf("MergeScan learned %+v, Scan %+v", info1, info)
		}
	}
	return out.Bytes(), st
}
