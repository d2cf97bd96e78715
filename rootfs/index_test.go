package rootfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
)

// kernelBase is a base with a kernel, an initrd bigger than a frame and
// modules in several directories, between files a template keeps.
func kernelBase(t testing.TB) []byte {
	t.Helper()
	ms := []member{dir("./", 0o755, 0), link("./bin", "usr/bin"), dir("./boot/", 0o755, 0),
		file("./boot/config-6.1", strings.Repeat("CONFIG_X=y\n", 300)),
		file("./boot/initrd.img-6.1", pattern("initrd", 300<<10)),
		file("./boot/vmlinuz-6.1", pattern("vmlinuz", 90<<10)),
		dir("./etc/", 0o755, 0), file("./etc/os-release", "ID=debian\nVERSION_ID=12\n"),
		link("./sbin", "usr/sbin"), dir("./usr/", 0o755, 0), dir("./usr/bin/", 0o755, 0),
		file("./usr/bin/cloud-init", "#!/bin/sh\n"), dir("./usr/lib/", 0o755, 0),
		dir("./usr/lib/mime/", 0o755, 0), file("./usr/lib/mime/packages", pattern("mime", 20<<10)),
		dir("./usr/lib/modules/", 0o755, 0), dir("./usr/lib/modules/6.1/", 0o755, 0),
	}
	for d := range 6 {
		ms = append(ms, dir(fmt.Sprintf("./usr/lib/modules/6.1/kernel/d%d/", d), 0o755, 0))
		for f := range 40 {
			ms = append(ms, file(fmt.Sprintf("./usr/lib/modules/6.1/kernel/d%d/m%02d.ko", d, f), pattern(fmt.Sprint(d, f), 3<<10)))
		}
		if d == 4 { // a name BaseInfo knows wherever it is (watched)
			ms = append(ms, file("./usr/lib/modules/6.1/kernel/d4/init", "#!/bin/sh\n"))
		}
	}
	ms = append(ms, dir("./usr/lib/systemd/", 0o755, 0), file("./usr/lib/systemd/systemd", pattern("systemd", 40<<10)),
		dir("./usr/sbin/", 0o755, 0), dir("./var/", 0o755, 0), file("./var/last", "the end\n"))
	return tarball(t, ms...)
}

// pattern is n bytes that compress, but not to nothing.
func pattern(seed string, n int) string {
	var b strings.Builder
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%s %d %x\n", seed, i, i*i*2654435761)
	}
	return b.String()[:n]
}

// indexed writes data as an indexed base with frames of frame bytes.
func indexed(t testing.TB, data []byte, frame int) ([]byte, *Index) {
	t.Helper()
	var frames, out bytes.Buffer
	x, err := IndexBase(context.Background(), &frames, bytes.NewReader(compress(t, Zstd, data)), IndexOptions{FrameSize: frame})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := x.WriteTo(&out); err != nil {
		t.Fatal(err)
	}
	out.Write(frames.Bytes())
	return out.Bytes(), x
}

var kernelRemove = []string{"/boot/*", "/usr/lib/modules/*"}

// An indexed base is the same tar stream for every reader of .tar.zst
// files: the zstd command, a stream decoder, and Decompress.
func TestIndexBaseSameStream(t *testing.T) {
	data := kernelBase(t)
	ix, x := indexed(t, data, 64<<10)
	if len(x.Frames) < 8 {
		t.Fatalf("%d frames of 64 KiB for %d bytes", len(x.Frames), len(data))
	}
	zstdCmd := exec.Command("zstd", "-dc")
	zstdCmd.Stdin = bytes.NewReader(ix)
	out, err := zstdCmd.Output()
	if err != nil {
		t.Fatalf("zstd -dc: %v", err)
	}
	if !bytes.Equal(out, data) {
		t.Errorf("zstd -dc gives %d bytes, not the %d of the tarball", len(out), len(data))
	}
	d, _ := zstd.NewReader(bytes.NewReader(ix))
	if got, err := io.ReadAll(d); err != nil || !bytes.Equal(got, data) {
		t.Errorf("a zstd stream decoder: %d bytes, %v", len(got), err)
	}
	r, c, err := Decompress(bytes.NewReader(ix))
	if err != nil || c != Zstd {
		t.Fatalf("Decompress: %v %v", c, err)
	}
	if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, data) {
		t.Errorf("Decompress: %d bytes, %v", len(got), err)
	}
	// The initrd and the modules' directories are frames of their own.
	var initrd, modules bool
	for _, f := range x.Frames {
		initrd = initrd || reflect.DeepEqual(f.Roots, []string{"/boot/initrd.img-6.1"})
		modules = modules || len(f.Roots) > 0 && strings.HasPrefix(f.Roots[0], "/usr/lib/modules/6.1/kernel/")
	}
	if !initrd || !modules {
		t.Errorf("no frame of the initrd alone (%v) or of modules alone (%v): %+v", initrd, modules, x.Frames)
	}
}

// A merge of an indexed base writes what the merge of the same tarball
// writes, passing over the frames of removed members, with the same
// stats and BaseInfo; a layer entry below a removed directory keeps its
// frames decoded.
func TestMergeIndexedSame(t *testing.T) {
	data := kernelBase(t)
	plain := compress(t, Zstd, data)
	ix, _ := indexed(t, data, 64<<10)
	for _, tc := range []struct {
		name    string
		entries []Entry
		skips   bool
	}{
		{"kernel removed", nil, true},
		{"an entry below the modules", []Entry{Bytes("/usr/lib/modules/6.1/kernel/d3/extra.ko", 0o644, 0, 0, []byte("x"))}, true},
		{"an entry in every modules directory", func() []Entry {
			var es []Entry
			for d := range 6 {
				es = append(es, Bytes(fmt.Sprintf("/usr/lib/modules/6.1/kernel/d%d/x", d), 0o644, 0, 0, []byte("x")))
			}
			return append(es, Bytes("/boot/initrd.img-6.1", 0o644, 0, 0, []byte("mine")))
		}(), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layers := func(*BaseInfo) []Layer {
				return []Layer{{Name: "lxc", Remove: kernelRemove, Entries: tc.entries}}
			}
			planner := func(info *BaseInfo) (*Plan, error) { return NewPlan(info, layers(info)...) }
			want, wantSt := merge(t, plain, Options{}, layers)
			var got bytes.Buffer
			st, info, err := MergeScan(context.Background(), &got, bytes.NewReader(ix), planner, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Bytes(), want) {
				t.Errorf("the indexed base merged to other bytes")
			}
			if (len(st.Skipped) > 0) != tc.skips {
				t.Errorf("skipped %+v, want some: %v", st.Skipped, tc.skips)
			}
			for _, s := range st.Skipped {
				for _, r := range s.Roots {
					if !strings.HasPrefix(r, "/boot/") && !strings.HasPrefix(r, "/usr/lib/modules/6.1/") {
						t.Errorf("passed over %s", r)
					}
					for _, e := range tc.entries {
						if e.Path == r || under(e.Path, r) {
							t.Errorf("passed over %s, where the layer has %s", r, e.Path)
						}
					}
				}
			}
			full, err := Scan(context.Background(), bytes.NewReader(plain))
			if err != nil {
				t.Fatal(err)
			}
			if info.Members != full.Members || info.Size != full.Size || info.OS != full.OS {
				t.Errorf("BaseInfo %d members %d bytes %+v, Scan %d %d %+v", info.Members, info.Size, info.OS, full.Members, full.Size, full.OS)
			}
			st.Skipped = nil
			if !reflect.DeepEqual(st, wantSt) {
				t.Errorf("stats %+v, want %+v", st, wantSt)
			}
			// Merge with the plan of the whole base passes over them too.
			p, _ := planner(full)
			got.Reset()
			if _, err := Merge(context.Background(), &got, bytes.NewReader(ix), p, Options{}); err != nil || !bytes.Equal(got.Bytes(), want) {
				t.Errorf("Merge of the indexed base: %v, same bytes %v", err, bytes.Equal(got.Bytes(), want))
			}
		})
	}
}

// A plan that asks about what the index let go by cannot be trusted:
// MergeScan says to merge again (BaseInfo.Partial), and with NoSkip it
// writes what the plain tarball gives.
func TestMergeIndexedAskedInside(t *testing.T) {
	data := kernelBase(t)
	ix, _ := indexed(t, data, 64<<10)
	planner := func(info *BaseInfo) (*Plan, error) {
		l := Layer{Name: "lxc", Remove: kernelRemove}
		if info.Has("/usr/lib/modules/6.1/kernel/d4/init") {
			l.Entries = append(l.Entries, Bytes("/etc/has-modules", 0o644, 0, 0, []byte("yes")))
		}
		return NewPlan(info, l)
	}
	var out bytes.Buffer
	_, info, err := MergeScan(context.Background(), &out, bytes.NewReader(ix), planner, Options{})
	if !errors.Is(err, ErrReplan) || !info.Partial() {
		t.Fatalf("MergeScan: %v, partial %v; want ErrReplan from a partial BaseInfo", err, info != nil && info.Partial())
	}
	out.Reset()
	st, info, err := MergeScan(context.Background(), &out, bytes.NewReader(ix), planner, Options{NoSkip: true})
	if err != nil || info.Partial() || len(st.Skipped) > 0 {
		t.Fatalf("MergeScan NoSkip: %v, partial %v, skipped %v", err, info.Partial(), st.Skipped)
	}
	if m, _ := readAll(t, out.Bytes()); m["./etc/has-modules"].data != "yes" {
		t.Errorf("the plan of the whole base is not the one merged")
	}
}

// A base changed after it was indexed is refused, wherever the change.
func TestIndexedChanged(t *testing.T) {
	data := kernelBase(t)
	ix, x := indexed(t, data, 64<<10)
	head := len(ix)
	for _, f := range x.Frames {
		head -= int(f.Size)
	}
	planner := func(info *BaseInfo) (*Plan, error) { return NewPlan(info, Layer{Name: "lxc", Remove: kernelRemove}) }
	for name, b := range map[string][]byte{
		"a byte of a kept frame":    flip(ix, len(ix)-20),
		"a byte of a removed frame": flip(ix, head+int(x.Frames[0].Size)+100),
		"truncated":                 ix[:len(ix)-1000],
		"data after the frames":     append(append([]byte{}, ix...), compress(t, Zstd, []byte("more"))...),
	} {
		_, _, err := MergeScan(context.Background(), io.Discard, bytes.NewReader(b), planner, Options{})
		var ie *InputError
		if !errors.As(err, &ie) {
			t.Errorf("%s: %v, want an InputError", name, err)
		}
	}
}

func flip(b []byte, i int) []byte {
	c := append([]byte{}, b...)
	c[i] ^= 0x55
	return c
}
