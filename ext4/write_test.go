package ext4

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// member is a tar member of a test stream.
type member struct {
	tar.Header
	data string
}

func stream(t *testing.T, ms []member) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, m := range ms {
		h := m.Header
		if h.Typeflag == tar.TypeReg {
			h.Size = int64(len(m.data))
		}
		if h.ModTime.IsZero() {
			h.ModTime = time.Unix(1700000000, 0)
		}
		h.Format = tar.FormatPAX
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
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

// acl is a POSIX ACL in the kernel's xattr format: user::rwx, group::r-x,
// group:4:r-x, mask::r-x, other::r-x.
func acl() string {
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{1, 7, 0xffffffff}, {4, 5, 0xffffffff}, {8, 5, 4}, {0x10, 5, 0xffffffff}, {0x20, 5, 0xffffffff}} {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	return string(b)
}

func testMembers(big []byte) []member {
	dir := func(name string, mode int64) member {
		return member{Header: tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: mode}}
	}
	reg := func(name string, mode int64, data string) member {
		return member{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, data: data}
	}
	ms := []member{
		dir("./", 0o755),
		dir("./etc/", 0o755),
		reg("./etc/hostname", 0o644, "node1\n"),
		reg("./etc/empty", 0o600, ""),
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./etc/key", Mode: 0o600, Uid: 100000, Gid: 70000}, data: "secret"},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "./etc/short", Linkname: "hostname", Mode: 0o777}},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "./etc/long", Linkname: strings.Repeat("x/", 40) + "target", Mode: 0o777}},
		{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/hostname2", Linkname: "./etc/hostname"}},
		dir("./dev/", 0o755),
		{Header: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}},
		{Header: tar.Header{Typeflag: tar.TypeBlock, Name: "./dev/big", Mode: 0o660, Devmajor: 259, Devminor: 300}},
		{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "./dev/fifo", Mode: 0o600}},
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./var/log/journal/", Mode: 0o2755, PAXRecords: map[string]string{
			"SCHILY.xattr.system.posix_acl_default": acl(), "SCHILY.xattr.user.note": "hello",
		}}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./usr/bin/ping", Mode: 0o755, PAXRecords: map[string]string{
			"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00",
		}}, data: "ELF"},
		reg("./big", 0o644, string(big)),
	}
	for i := range 300 { // a directory of several blocks
		ms = append(ms, reg(fmt.Sprintf("./many/file-with-a-long-name-%03d", i), 0o644, fmt.Sprint(i)))
	}
	return ms
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s (e2fsprogs)", tool)
		}
	}
}

func writeImage(t *testing.T, file string, off int64, data []byte, bpg uint64) *FS {
	t.Helper()
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	o := Options{Size: 64 << 20, Label: "root", Time: 1700000100}
	copy(o.UUID[:], "0123456789abcdef")
	copy(o.HashSeed[:], "fedcba9876543210")
	if err := f.Truncate(off + o.Size); err != nil {
		t.Fatal(err)
	}
	fs, err := write(context.Background(), f, off, bytes.NewReader(data), o, bpg)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

func debugfs(t *testing.T, img, req string) string {
	t.Helper()
	out, err := exec.Command("debugfs", "-R", req, img).CombinedOutput()
	if err != nil {
		t.Fatalf("debugfs -R %q: %v\n%s", req, err, out)
	}
	return string(out)
}

// TestWrite writes a stream of every member type into small block groups
// (so that a file spans more extents than an inode holds), then checks the
// result with e2fsck and debugfs, and that the same stream gives the same
// bytes at another offset.
func TestWrite(t *testing.T) {
	need(t, "e2fsck", "debugfs")
	big := make([]byte, 22<<20) // crosses 6 groups of 4 MiB
	for i := range big {
		big[i] = byte(i * 7 / 4096)
	}
	data := stream(t, testMembers(big))
	dir := t.TempDir()
	img := filepath.Join(dir, "fs.img")
	fs := writeImage(t, img, 0, data, 1024)

	if out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn: %v\n%s", err, out)
	}
	for req, want := range map[string][]string{
		"cat /etc/hostname":                   {"node1"},
		"stat /etc/key":                       {"User: 100000   Group: 70000", "Mode:  0600", "Size: 6"},
		"stat /etc/hostname":                  {"Links: 2"},
		"stat /etc/short":                     {"Fast link dest: \"hostname\""},
		"stat /etc/long":                      {"Type: symlink", "Size: 86"},
		"stat /dev/null":                      {"character special", "Device major/minor number: 01:03"},
		"stat /dev/big":                       {"block special", "Device major/minor number: 259:300"},
		"stat /dev/fifo":                      {"Type: FIFO"},
		"stat /var/log/journal":               {"Mode:  02755"},
		"ea_list /var/log/journal":            {"system.posix_acl_default", "user.note (5) = \"hello\""},
		"ea_list /usr/bin/ping":               {"security.capability (20)"},
		"stat /big":                           {"Size: 23068672"},
		"stat /":                              {"Links: 8"},
		"ls -l /many":                         {"file-with-a-long-name-299"},
		"stat /lost+found":                    {"Mode:  0700", "Size: 16384"},
		"stat /etc/empty":                     {"Size: 0"},
		"cat /many/file-with-a-long-name-123": {"123"},
	} {
		out := debugfs(t, img, req)
		for _, w := range want {
			if !strings.Contains(out, w) {
				t.Errorf("debugfs %s: no %q in\n%s", req, w, out)
			}
		}
	}
	// debugfs shows an ACL in the kernel's format: back from ext4's.
	if out := debugfs(t, img, "ea_get -x /var/log/journal system.posix_acl_default"); !strings.Contains(out, "08 00 05 00 04 00 00 00") {
		t.Errorf("ACL: %s", out)
	}
	dump := filepath.Join(dir, "big")
	debugfs(t, img, "dump /big "+dump)
	if got, _ := os.ReadFile(dump); !bytes.Equal(got, big) {
		t.Errorf("/big differs from what was written")
	}
	if target, ok := fs.Readlink("/etc/long"); !ok || !strings.HasSuffix(target, "/target") {
		t.Errorf("Readlink(/etc/long) = %q, %v", target, ok)
	}
	r, err := fs.Open("/etc/hostname2")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(r); string(b) != "node1\n" {
		t.Errorf("Open(/etc/hostname2) = %q", b)
	}

	again := filepath.Join(dir, "disk.img")
	writeImage(t, again, 1<<20, data, 1024)
	a, _ := os.ReadFile(img)
	b, _ := os.ReadFile(again)
	if sha256.Sum256(a) != sha256.Sum256(b[1<<20:]) {
		t.Error("the same stream at another offset gave other bytes")
	}
}

// TestWriteErrors: what the stream or the size cannot give is an error.
func TestWriteErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		ms   []member
		size int64
		want string
	}{
		{"full", []member{{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./f", Mode: 0o644}, data: strings.Repeat("x", 70<<20)}}, 64 << 20, "no space"},
		{"dangling hard link", []member{{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./a", Linkname: "./b"}}}, 64 << 20, "no earlier file"},
		{"twice", []member{
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./a", Mode: 0o644}},
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./a", Mode: 0o644}},
		}, 64 << 20, "twice"},
		{"below a file", []member{
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./a", Mode: 0o644}},
			{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./a/b", Mode: 0o644}},
		}, 64 << 20, "not a directory"},
		{"tiny", nil, 1 << 20, "too small"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Create(filepath.Join(t.TempDir(), "img"))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			_, err = Write(context.Background(), f, 0, bytes.NewReader(stream(t, tc.ms)), Options{Size: tc.size})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestHasSuper(t *testing.T) {
	var got []uint64
	for g := uint64(0); g < 130; g++ {
		if hasSuper(g) {
			got = append(got, g)
		}
	}
	if fmt.Sprint(got) != "[0 1 3 5 7 9 25 27 49 81 125]" {
		t.Errorf("backup groups: %v", got)
	}
}
