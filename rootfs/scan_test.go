package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
)

func TestScan(t *testing.T) {
	for _, c := range []Compression{Plain, Gzip, Xz, Zstd} {
		t.Run(string(c), func(t *testing.T) {
			info, err := Scan(context.Background(), bytes.NewReader(compress(t, c, syntheticBase(t))))
			if err != nil {
				t.Fatal(err)
			}
			if info.Compression != c {
				t.Errorf("compression %s, want %s", info.Compression, c)
			}
			if info.OS != (OSRelease{ID: "testos", VersionID: "7", PrettyName: "Test Linux 7"}) {
				t.Errorf("os-release %+v (through the /etc/os-release link)", info.OS)
			}
			if got := info.Systemd(); got != "/usr/lib/systemd/systemd" {
				t.Errorf("systemd %q", got)
			}
			if k, ok := info.Kind("/lib/systemd/systemd"); !ok || k != tar.TypeReg {
				t.Errorf("/lib/systemd/systemd through the /lib link: %q %v", k, ok)
			}
			if !info.Has("/sbin") || !info.Has("/sbin/sshd") || info.Has("/usr/bin/cloud-init") {
				t.Errorf("Has: /sbin %v, /sbin/sshd %v, cloud-init %v", info.Has("/sbin"), info.Has("/sbin/sshd"), info.Has("/usr/bin/cloud-init"))
			}
		})
	}
}

// TestScanBzip2 reads a base compressed by the real bzip2.
func TestScanBzip2(t *testing.T) {
	bz, err := exec.LookPath("bzip2")
	if err != nil {
		t.Fatal("bzip2 not found: apt-get install bzip2")
	}
	cmd := exec.Command(bz, "-c")
	cmd.Stdin = bytes.NewReader(syntheticBase(t))
	out, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	info, err := Scan(context.Background(), bytes.NewReader(out))
	if err != nil || info.Compression != Bzip2 || info.OS.ID != "testos" {
		t.Fatalf("bzip2 base: %+v, %v", info, err)
	}
}

// TestBrokenBase: every way a base can be broken is an error that says
// what is wrong, from Scan and from Merge alike.
func TestBrokenBase(t *testing.T) {
	good := syntheticBase(t)
	// A member boundary near the middle: the end of a header block whose
	// member has no content.
	cut := 0
	for off := 0; off+512 <= len(good)/2; off += 512 {
		cut = off
	}
	flip := func(b []byte, at int) []byte {
		b = bytes.Clone(b)
		b[at] ^= 0xff
		return b
	}
	z := compress(t, Zstd, good)
	gz := compress(t, Gzip, good)
	x := compress(t, Xz, good)
	cases := []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty file"},
		{"not a tarball", []byte(strings.Repeat("hello, world\n", 100)), "not a tar archive"},
		{"tar cut at a block", good[:cut], "truncated"},
		{"tar cut in a member", good[:len(good)-1500], "truncated"},
		{"tar without end marker", good[:len(good)-1024], "end-of-archive marker"},
		{"tar bad header", flip(good, 512*3+100), "corrupt tar archive"},
		{"zstd truncated", z[:len(z)/2], "truncated zstd"},
		{"zstd flipped byte", flip(z, len(z)/2), "zstd"},
		{"zstd cut before its checksum", z[:len(z)-4], "zstd"},
		{"gzip truncated", gz[:len(gz)-10], "gzip"},
		{"gzip flipped byte", flip(gz, len(gz)/2), "corrupt"},
		{"xz truncated", x[:len(x)-10], "xz"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Scan(context.Background(), bytes.NewReader(c.data))
			t.Logf("Scan: %v", err)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Scan: %v, want an error with %q", err, c.want)
			}
			info, _ := Scan(context.Background(), bytes.NewReader(good))
			p, _ := NewPlan(info, Layer{Name: "x"})
			_, err = Merge(context.Background(), &bytes.Buffer{}, bytes.NewReader(c.data), p, Options{})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Merge: %v, want an error with %q", err, c.want)
			}
		})
	}
}

func TestMergeCancel(t *testing.T) {
	base := syntheticBase(t)
	info, _ := Scan(context.Background(), bytes.NewReader(base))
	p, _ := NewPlan(info)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := Merge(ctx, &bytes.Buffer{}, bytes.NewReader(base), p, Options{}); err != context.Canceled {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestHardlinkToReplaced: a base hard link whose target a layer replaces
// stays valid and shares the layer's content, with a warning.
func TestHardlinkToReplaced(t *testing.T) {
	base := tarball(t, dir("./", 0o755, 0), link("sbin", "usr/sbin"), file("./a", "base"), hardlink("./b", "./a"))
	out, st := merge(t, base, Options{}, func(*BaseInfo) []Layer {
		return []Layer{{Name: "l", Entries: []Entry{Bytes("/a", 0o644, 0, 0, []byte("layer"))}}}
	})
	m, _ := readAll(t, out)
	if m["./a"].data != "layer" || m["./b"].Typeflag != tar.TypeLink || m["./b"].Linkname != "./a" || m["./a"].index > m["./b"].index {
		t.Errorf("a=%+v b=%+v", m["./a"], m["./b"])
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "shares the content") {
		t.Errorf("warnings %q", st.Warnings)
	}
}
