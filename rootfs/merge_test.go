package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardway-dev/hardway/tree"
)

// syntheticBase is a small root file system with every kind of member a
// base may hold, named both "./x" and "x" as real tarballs are.
func syntheticBase(t testing.TB) []byte {
	cdev := member{Header: tar.Header{Typeflag: tar.TypeChar, Name: "./dev/null", Mode: 0o666, Devmajor: 1, Devminor: 3}}
	fifo := member{Header: tar.Header{Typeflag: tar.TypeFifo, Name: "./run/initctl", Mode: 0o600}}
	capped := file("./usr/bin/ping", "ELF ping")
	capped.Mode = 0o755
	capped.PAXRecords = map[string]string{
		"SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00",
		"SCHILY.xattr.user.note":           "kept",
		"SCHILY.xattr.trusted.overlay.x":   "y",
	}
	suid := file("./usr/bin/su", "ELF su")
	suid.Mode = 0o4755
	return tarball(t,
		dir("./", 0o755, 0),
		link("bin", "usr/bin"),
		dir("./dev/", 0o755, 0),
		cdev,
		dir("./etc/", 0o755, 0),
		file("./etc/hostname", "base\n"),
		file("./etc/keep", "keep\n"),
		file("./etc/machine-id", "0123456789abcdef0123456789abcdef\n"),
		dir("./etc/ssh/", 0o755, 0),
		file("./etc/ssh/ssh_host_ed25519_key", "secret"),
		file("./etc/ssh/ssh_host_ed25519_key.pub", "public"),
		file("./etc/ssh/sshd_config", "config"),
		hardlink("./etc/ssh/key-copy", "./etc/ssh/ssh_host_ed25519_key"),
		link("./etc/os-release", "../usr/lib/os-release"),
		file("data", "a file the layer turns into a directory"),
		link("lib", "usr/lib"),
		dir("./opt/", 0o700, 5),
		file("./opt/base-file", "base"),
		dir("./run/", 0o755, 0),
		fifo,
		link("sbin", "usr/sbin"),
		dir("./srv/", 0o755, 0),
		file("./srv/a", "a"),
		dir("./srv/sub/", 0o755, 0),
		file("./srv/sub/b", "b"),
		dir("./usr/", 0o755, 0),
		dir("./usr/bin/", 0o755, 0),
		capped,
		file("./usr/bin/tool", "ELF tool"),
		hardlink("./usr/bin/tool-hard", "usr/bin/tool"),
		link("./usr/bin/tool-sym", "tool"),
		suid,
		dir("./usr/lib/", 0o755, 0),
		file("./usr/lib/os-release", "PRETTY_NAME=\"Test Linux 7\"\nID=testos\nVERSION_ID=\"7\"\n"),
		dir("./usr/lib/systemd/", 0o755, 0),
		file("./usr/lib/systemd/systemd", "ELF systemd"),
		dir("./usr/lib/systemd/system/", 0o755, 0),
		dir("./usr/sbin/", 0o755, 0),
		file("./usr/sbin/sshd", "ELF sshd"),
	)
}

// overlay is the node layer of the precedence test.
func overlay() Layer {
	return Layer{Name: "node", Entries: []Entry{
		Bytes("/etc/hostname", 0o644, 0, 0, []byte("node1\n")),
		{Path: "/opt", Mode: fs.ModeDir | 0o755, UID: 0, GID: 0},
		Bytes("/srv", 0o600, 0, 0, []byte("srv is a file now")),
		Bytes("/data/x", 0o644, 0, 0, []byte("x")),
		Bytes("/lib/systemd/system/foo.service", 0o644, 0, 0, []byte("[Unit]\n")),
		Bytes("/new/dir/file", 0o640, 7, 8, []byte("new")),
		Symlink("/etc/systemd/system/multi-user.target.wants/foo.service", "/lib/systemd/system/foo.service"),
	}}
}

func TestMergePrecedence(t *testing.T) {
	epoch := time.Unix(1700000000, 0)
	base := syntheticBase(t)
	out, st := merge(t, base, Options{Epoch: epoch, Clamp: true}, func(info *BaseInfo) []Layer {
		return []Layer{Sysprep(info), overlay()}
	})
	keygen, err := os.ReadFile("../templates/files/rootfs/" + SSHKeygenUnit)
	if err != nil {
		t.Fatal(err)
	}
	m, names := readAll(t, out)

	want := map[string]string{ // name → content, for regular files
		"./etc/hostname":                        "node1\n",
		"./etc/keep":                            "keep\n",
		"./etc/machine-id":                      "",
		"./etc/ssh/sshd_config":                 "config",
		"./opt/base-file":                       "base",
		"./srv":                                 "srv is a file now",
		"./data/x":                              "x",
		"./usr/lib/systemd/system/foo.service":  "[Unit]\n",
		"./new/dir/file":                        "new",
		"./usr/bin/tool":                        "ELF tool",
		"./etc/systemd/system/" + SSHKeygenUnit: string(keygen),
		"./usr/lib/os-release":                  "PRETTY_NAME=\"Test Linux 7\"\nID=testos\nVERSION_ID=\"7\"\n",
	}
	for name, data := range want {
		g, ok := m[name]
		if !ok {
			t.Errorf("missing %s", name)
			continue
		}
		if g.Typeflag != tar.TypeReg || g.data != data {
			t.Errorf("%s: type %q content %q, want a file with %q", name, g.Typeflag, g.data, data)
		}
	}
	for _, name := range []string{
		"./etc/ssh/ssh_host_ed25519_key", "./etc/ssh/ssh_host_ed25519_key.pub", // sysprep
		"./etc/ssh/key-copy",                             // a hard link to a removed key
		"./srv/", "./srv/a", "./srv/sub/", "./srv/sub/b", // a directory replaced by a file
		"./data",             // a file replaced by a directory
		"./lib/",             // the layer's /lib follows the base's link
		"bin", "lib", "sbin", // names are normalised
	} {
		if _, ok := m[name]; ok {
			t.Errorf("%s should not be in the stream", name)
		}
	}
	checks := []struct {
		name string
		ok   func(g got) bool
		what string
	}{
		{"./", func(g got) bool { return g.index == 0 && g.Typeflag == tar.TypeDir }, "the first member, a directory"},
		{"./opt/", func(g got) bool { return g.Mode == 0o755 && g.Uid == 0 }, "the layer's mode 0755 and owner 0 (merged with the base's 0700, uid 5)"},
		{"./data/", func(g got) bool { return g.Typeflag == tar.TypeDir }, "a directory"},
		{"./lib", func(g got) bool { return g.Typeflag == tar.TypeSymlink && g.Linkname == "usr/lib" }, "the base's link to usr/lib"},
		{"./bin", func(g got) bool { return g.Typeflag == tar.TypeSymlink && g.Linkname == "usr/bin" }, "the base's link"},
		{"./sbin", func(g got) bool { return g.Typeflag == tar.TypeSymlink }, "a link"},
		{"./dev/null", func(g got) bool { return g.Typeflag == tar.TypeChar && g.Devmajor == 1 && g.Devminor == 3 }, "char device 1:3"},
		{"./run/initctl", func(g got) bool { return g.Typeflag == tar.TypeFifo }, "a fifo"},
		{"./usr/bin/tool-hard", func(g got) bool { return g.Typeflag == tar.TypeLink && g.Linkname == "./usr/bin/tool" }, "a hard link to ./usr/bin/tool"},
		{"./usr/bin/tool-sym", func(g got) bool { return g.Typeflag == tar.TypeSymlink && g.Linkname == "tool" }, "a symlink to tool"},
		{"./usr/bin/su", func(g got) bool { return g.Mode == 0o4755 }, "setuid 4755"},
		{"./usr/bin/ping", func(g got) bool {
			return len(g.PAXRecords) == 3 && g.PAXRecords["SCHILY.xattr.trusted.overlay.x"] == "y" &&
				g.PAXRecords["SCHILY.xattr.security.capability"] == "\x01\x00\x00\x02\x00\x20\x00\x00"
		}, "every xattr (no filter)"},
		{"./new/dir/file", func(g got) bool { return g.Mode == 0o640 && g.Uid == 7 && g.Gid == 8 }, "mode 0640, owner 7:8"},
		{"./new/", func(g got) bool { return g.Typeflag == tar.TypeDir && g.Mode == 0o755 }, "an implicit 0755 directory"},
		{"./etc/systemd/system/multi-user.target.wants/foo.service", func(g got) bool {
			return g.Typeflag == tar.TypeSymlink && g.Linkname == "/lib/systemd/system/foo.service"
		}, "the enablement link"},
	}
	for _, c := range checks {
		g, ok := m[c.name]
		if !ok {
			t.Errorf("missing %s", c.name)
			continue
		}
		if !c.ok(g) {
			t.Errorf("%s: %+v, want %s", c.name, g.Header, c.what)
		}
	}
	// Reproducibility of every header: numeric owners, clamped whole-second
	// mtimes, no atime or ctime.
	for _, name := range names {
		g := m[name]
		if g.Uname != "" || g.Gname != "" {
			t.Errorf("%s: owner names %q/%q", name, g.Uname, g.Gname)
		}
		if !g.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %v, want the epoch %v", name, g.ModTime, epoch)
		}
		if !g.AccessTime.IsZero() || !g.ChangeTime.IsZero() {
			t.Errorf("%s: atime/ctime written", name)
		}
		if !strings.HasPrefix(name, "./") {
			t.Errorf("%s: not ./-prefixed", name)
		}
	}
	// In place: a replaced member keeps the base's position; new ones follow the base, sorted.
	if m["./etc/hostname"].index > m["./etc/keep"].index {
		t.Errorf("./etc/hostname moved after ./etc/keep: %v", names)
	}
	tail := names[len(names)-4:]
	if strings.Join(tail, " ") != "./new/ ./new/dir/ ./new/dir/file ./usr/lib/systemd/system/foo.service" {
		t.Errorf("layer-only members at the end: %v", tail)
	}
	if st.Dropped[DropRemoved] != 2 || st.Dropped[DropShadowed] != 3 || st.Dropped[DropHardlink] != 1 {
		t.Errorf("dropped %v, want 2 removed, 3 shadowed, 1 hardlink", st.Dropped)
	}
	if !st.HasSbin || st.Members != len(names) {
		t.Errorf("stats %+v for %d members", st, len(names))
	}
}

// TestMergeSecrets: the secrets of a node's tree that a merge writes are
// listed in its stats, those it leaves out are not.
func TestMergeSecrets(t *testing.T) {
	tr := tree.New("n1")
	tr.Secret("/etc/kubernetes/ca.key", []byte("key"))
	tr.Secret("/dev/shm/key", []byte("excluded"))
	tr.File("/etc/kubernetes/ca.crt", 0o644, []byte("cert"))
	tr.FileOwned("/etc/etcd/server.key", 0o600, 5, 5, []byte("key"), true)
	node, err := FromTree("node n1", tr)
	if err != nil {
		t.Fatal(err)
	}
	_, st := merge(t, syntheticBase(t), Options{Exclude: func(p string) bool { return strings.HasPrefix(p, "/dev/") }}, func(*BaseInfo) []Layer {
		return []Layer{node}
	})
	if want := []string{"/etc/etcd/server.key", "/etc/kubernetes/ca.key"}; !slices.Equal(st.Secrets, want) {
		t.Errorf("secrets %q, want %q", st.Secrets, want)
	}
	_, st = merge(t, syntheticBase(t), Options{}, func(info *BaseInfo) []Layer { return []Layer{Sysprep(info)} })
	if len(st.Secrets) != 0 {
		t.Errorf("secrets %q without a node's tree", st.Secrets)
	}
}

func TestMergeFilters(t *testing.T) {
	base := syntheticBase(t)
	out, st := merge(t, base, Options{
		Exclude: func(p string) bool { return strings.HasPrefix(p, "/dev/") },
		Xattr:   func(n string) bool { return strings.HasPrefix(n, "user.") || n == "security.capability" },
	}, func(*BaseInfo) []Layer {
		return []Layer{{Name: "dev", Entries: []Entry{Bytes("/dev/kmsg", 0o644, 0, 0, nil)}}}
	})
	m, _ := readAll(t, out)
	if _, ok := m["./dev/null"]; ok {
		t.Error("./dev/null kept")
	}
	if _, ok := m["./dev/kmsg"]; ok {
		t.Error("a layer's ./dev/kmsg kept")
	}
	if _, ok := m["./dev/"]; !ok {
		t.Error("./dev/ itself dropped")
	}
	p := m["./usr/bin/ping"].PAXRecords
	if len(p) != 2 || p["SCHILY.xattr.user.note"] != "kept" || p["SCHILY.xattr.security.capability"] == "" {
		t.Errorf("ping xattrs %q, want user.note and security.capability", p)
	}
	if st.DroppedXattrs["trusted.overlay.x"] != 1 || st.Dropped[DropExcluded] != 2 || st.Dev != 0 {
		t.Errorf("stats %+v", st)
	}
	if len(st.Warnings) != 1 || !strings.Contains(st.Warnings[0], "/dev/kmsg") {
		t.Errorf("warnings %q, want one about the layer's /dev/kmsg", st.Warnings)
	}
	// Base mtimes are kept, in whole seconds, without Clamp.
	if g := m["./etc/keep"]; !g.ModTime.Equal(baseMTime.Truncate(time.Second)) {
		t.Errorf("./etc/keep mtime %v, want %v", g.ModTime, baseMTime.Truncate(time.Second))
	}
}

func TestMergeReproducible(t *testing.T) {
	base := syntheticBase(t)
	layers := func(info *BaseInfo) []Layer { return []Layer{Sysprep(info), overlay()} }
	a, _ := merge(t, base, Options{Epoch: time.Unix(1, 0), Clamp: true}, layers)
	// Another compression of the same base, and the layer's entries in another order.
	b, _ := merge(t, compress(t, Zstd, base), Options{Epoch: time.Unix(1, 0), Clamp: true}, func(info *BaseInfo) []Layer {
		l := overlay()
		for i, j := 0, len(l.Entries)-1; i < j; i, j = i+1, j-1 {
			l.Entries[i], l.Entries[j] = l.Entries[j], l.Entries[i]
		}
		return []Layer{Sysprep(info), l}
	})
	if !bytes.Equal(a, b) {
		t.Fatal("two merges of the same inputs differ")
	}
}

func TestLayerOrder(t *testing.T) {
	base := tarball(t, dir("./", 0o755, 0), dir("./etc/", 0o755, 0), link("./sbin", "usr/sbin"))
	out, _ := merge(t, base, Options{}, func(*BaseInfo) []Layer {
		return []Layer{
			{Name: "first", Entries: []Entry{Bytes("/etc/a", 0o644, 0, 0, []byte("first")), Bytes("/etc/b/c", 0o644, 0, 0, []byte("c"))}},
			{Name: "second", Entries: []Entry{Bytes("/etc/a", 0o600, 0, 0, []byte("second")), Symlink("/etc/b", "elsewhere")}},
		}
	})
	m, _ := readAll(t, out)
	if g := m["./etc/a"]; g.data != "second" || g.Mode != 0o600 {
		t.Errorf("./etc/a = %q %o, want the second layer's", g.data, g.Mode)
	}
	if g := m["./etc/b"]; g.Typeflag != tar.TypeSymlink {
		t.Errorf("./etc/b = %+v, want the second layer's link", g.Header)
	}
	if _, ok := m["./etc/b/c"]; ok {
		t.Error("./etc/b/c kept below the second layer's link")
	}
}

func TestPlanConflict(t *testing.T) {
	base := tarball(t, link("./lib", "usr/lib"), dir("./usr/lib/", 0o755, 0))
	info, err := Scan(context.Background(), bytes.NewReader(base))
	if err != nil {
		t.Fatal(err)
	}
	_, err = NewPlan(info, Layer{Name: "l", Entries: []Entry{
		Bytes("/lib/x", 0o644, 0, 0, []byte("1")),
		Bytes("/usr/lib/x", 0o644, 0, 0, []byte("2")),
	}})
	if err == nil || !strings.Contains(err.Error(), "/usr/lib/x") {
		t.Fatalf("err = %v, want a conflict on /usr/lib/x", err)
	}
}

func TestPinnedFile(t *testing.T) {
	src := t.TempDir() + "/etcd"
	writeFile(t, src, "the real etcd")
	good := sha256hex("the real etcd")
	bad := sha256hex("something else")
	if _, err := PinnedFile("/usr/local/bin/etcd", 0o755, src, good); err != nil {
		t.Fatal(err)
	}
	_, err := PinnedFile("/usr/local/bin/etcd", 0o755, src, bad)
	var hm *HashMismatchError
	if !errors.As(err, &hm) || !strings.Contains(err.Error(), src) || !strings.Contains(err.Error(), good) || !strings.Contains(err.Error(), bad) {
		t.Fatalf("err = %v, want one naming %s, %s and %s", err, src, good, bad)
	}

	// Changed between the check and the copy: the bake fails.
	e, err := PinnedFile("/usr/local/bin/etcd", 0o755, src, good)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, src, "the fake etcd") // same size
	base := tarball(t, dir("./", 0o755, 0))
	info, _ := Scan(context.Background(), bytes.NewReader(base))
	p, err := NewPlan(info, Layer{Name: "binaries", Entries: []Entry{e}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = Merge(context.Background(), &bytes.Buffer{}, bytes.NewReader(base), p, Options{})
	if !errors.As(err, &hm) || hm.Got != sha256hex("the fake etcd") {
		t.Fatalf("merge of a changed file: %v, want a hash mismatch", err)
	}
}

// TestPinnedFileOld: a pinned file older than racyWindow is hashed once,
// and copied unhashed only while it is the file hashed: a write after the
// check, even of the same size, or a replacement by a rename with other
// content fails the bake.
func TestPinnedFileOld(t *testing.T) {
	defer func(w time.Duration) { racyWindow = w }(racyWindow)
	racyWindow = 0 // a file written before the check is old enough
	merge := func(e Entry) (string, error) {
		base := tarball(t, dir("./", 0o755, 0))
		info, _ := Scan(context.Background(), bytes.NewReader(base))
		p, err := NewPlan(info, Layer{Name: "binaries", Entries: []Entry{e}})
		if err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		_, err = Merge(context.Background(), &out, bytes.NewReader(base), p, Options{})
		return out.String(), err
	}
	for _, change := range []struct {
		name string
		do   func(src string)
	}{
		{"unchanged", func(string) {}},
		{"written", func(src string) { writeFile(t, src, "the fake etcd") }},
		{"replaced", func(src string) {
			writeFile(t, src+".new", "the fake etcd")
			if err := os.Rename(src+".new", src); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(change.name, func(t *testing.T) {
			src := t.TempDir() + "/etcd"
			writeFile(t, src, "the real etcd")
			time.Sleep(20 * time.Millisecond) // past the clock tick of the write
			e, err := PinnedFile("/usr/local/bin/etcd", 0o755, src, sha256hex("the real etcd"))
			if err != nil {
				t.Fatal(err)
			}
			if r, err := e.Open(); err != nil {
				t.Fatal(err)
			} else if _, ok := r.(*unchangedReader); !ok {
				t.Fatalf("an old file is read through %T, want it unhashed", r)
			} else {
				r.Close()
			}
			time.Sleep(20 * time.Millisecond)
			change.do(src)
			out, err := merge(e)
			var ce *ChangedError
			var hm *HashMismatchError
			switch {
			case change.name == "unchanged" && (err != nil || !strings.Contains(out, "the real etcd")):
				t.Errorf("merge: %v", err)
			case change.name != "unchanged" && !errors.As(err, &ce) && !errors.As(err, &hm):
				t.Errorf("merge of a file %s after its check: %v, want it refused", change.name, err)
			}
		})
	}
}

// TestMergeScanReplan: MergeScan follows what the base tells as it goes
// (a link before the member a layer replaces through it; a regular
// machine-id that sysprep turns into a link), and says ErrReplan, with
// the whole base learned, when a link comes after the member it moves a
// layer entry onto. Merge with the plan of that base then writes the
// right stream.
func TestMergeScanReplan(t *testing.T) {
	layers := func(info *BaseInfo) []Layer {
		return []Layer{Sysprep(info), {Name: "node", Entries: []Entry{Bytes("/lib/x", 0o644, 0, 0, []byte("layer"))}}}
	}
	planner := func(info *BaseInfo) (*Plan, error) { return NewPlan(info, layers(info)...) }
	usr := []member{dir("./usr/", 0o755, 0), dir("./usr/lib/", 0o755, 0), file("./usr/lib/x", "base")}
	dbus := []member{dir("./var/", 0o755, 0), dir("./var/lib/", 0o755, 0), dir("./var/lib/dbus/", 0o755, 0), file("./var/lib/dbus/machine-id", "0123")}
	for _, tc := range []struct {
		name   string
		base   []member
		replan bool
	}{
		{"link first", append(append([]member{dir("./", 0o755, 0), link("./lib", "usr/lib")}, usr...), dbus...), false},
		{"link last", append(append([]member{dir("./", 0o755, 0)}, usr...), append(dbus, link("./lib", "usr/lib"))...), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base := tarball(t, tc.base...)
			var one bytes.Buffer
			_, info, err := MergeScan(context.Background(), &one, bytes.NewReader(base), planner, Options{})
			if got := errors.Is(err, ErrReplan); got != tc.replan || err != nil && !got {
				t.Fatalf("MergeScan: %v, want ErrReplan %v", err, tc.replan)
			}
			p, err := planner(info)
			if err != nil {
				t.Fatal(err)
			}
			var two bytes.Buffer
			if _, err := Merge(context.Background(), &two, bytes.NewReader(base), p, Options{}); err != nil {
				t.Fatal(err)
			}
			m, _ := readAll(t, two.Bytes())
			if g := m["./usr/lib/x"]; g.data != "layer" {
				t.Errorf("./usr/lib/x = %q, want the layer's", g.data)
			}
			if g := m["./var/lib/dbus/machine-id"]; g.Typeflag != tar.TypeSymlink {
				t.Errorf("machine-id: %+v, want sysprep's link", g.Header)
			}
			if !tc.replan && !bytes.Equal(one.Bytes(), two.Bytes()) {
				t.Error("MergeScan and Merge wrote different streams")
			}
		})
	}
}
