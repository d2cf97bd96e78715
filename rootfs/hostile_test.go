package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"io/fs"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// hostileBase is a small base with the members of a merged-/usr root that
// the hostile cases build on, and extra after them.
func hostileBase(t testing.TB, extra ...member) []byte {
	t.Helper()
	ms := []member{
		dir("./", 0o755, 0), link("./lib", "usr/lib"), link("./sbin", "usr/sbin"),
		dir("./dev/", 0o755, 0), dir("./etc/", 0o755, 0), dir("./tmp/", 0o1777, 0),
		dir("./usr/", 0o755, 0), dir("./usr/lib/", 0o755, 0), dir("./usr/local/", 0o755, 0),
		dir("./usr/local/bin/", 0o755, 0), dir("./usr/sbin/", 0o755, 0),
	}
	return tarball(t, append(ms, extra...)...)
}

func withMode(m member, mode int64) member {
	m.Mode = mode
	return m
}

func device(name string, typ byte, major, minor int64) member {
	return member{Header: tar.Header{Typeflag: typ, Name: name, Mode: 0o666, Devmajor: major, Devminor: minor}}
}

// TestUnsafeBaseRefused: a base that GNU tar, as pct and a KVM bake run
// it, cannot extract as the bake sees it, or that holds a program anyone can
// replace to gain its owner's rights, is refused by Scan with every member
// named, whatever the artifact format (both scan the base with Scan).
func TestUnsafeBaseRefused(t *testing.T) {
	cases := []struct {
		name  string
		extra []member
		want  []string
	}{
		// GNU tar writes through a link with a relative target (./lib/x
		// lands in /usr/lib/x, behind the layers' backs: pct's
		// --skip-old-files then keeps it over a layer's file there) and
		// fails below one with an absolute or ".." target (a placeholder
		// file stands for the link until the end).
		{"file below a symlink", []member{file("./lib/x", "x")}, []string{"/lib/x", "below the symbolic link /lib"}},
		{"binary below an absolute symlink", []member{link("./opt", "/usr/local"), dir("./opt/bin/", 0o755, 0), file("./opt/bin/etcd", "not the pinned etcd")},
			[]string{"/opt/bin (below the symbolic link /opt → /usr/local)", "/opt/bin/etcd"}},
		{"file below a file", []member{file("./etc/q", "q"), file("./etc/q/r", "r")}, []string{"/etc/q/r", "below the file /etc/q"}},
		{"symlink over a directory with content", []member{file("./srv/x", "x"), link("./srv", "usr/lib")}, []string{"/srv", "/srv/x"}},
		{"dangling hard link", []member{hardlink("./usr/local/bin/a", "./usr/local/bin/missing")}, []string{"/usr/local/bin/a", "/usr/local/bin/missing"}},
		{"hard link before its target", []member{hardlink("./etc/a", "./etc/b"), file("./etc/b", "b")}, []string{"/etc/a", "/etc/b"}},
		{"hard link to a directory", []member{hardlink("./etc/a", "./usr/lib/")}, []string{"/etc/a", "/usr/lib", "directory"}},
		{"file twice", []member{file("./etc/x", "1"), file("./etc/x", "2")}, []string{"/etc/x", "twice"}},
		{"setuid 4777", []member{withMode(file("./usr/local/bin/su", "ELF"), 0o4777)}, []string{"/usr/local/bin/su", "4777"}},
		{"setgid 2757", []member{withMode(file("./usr/local/bin/sg", "ELF"), 0o2757)}, []string{"/usr/local/bin/sg", "2757"}},
		{"setuid 4775", []member{withMode(file("./usr/local/bin/gw", "ELF"), 0o4775)}, []string{"/usr/local/bin/gw", "4775"}},
	}
	var all []member
	for _, c := range cases {
		all = append(all, c.extra...)
		t.Run(c.name, func(t *testing.T) {
			_, err := Scan(context.Background(), bytes.NewReader(hostileBase(t, c.extra...)))
			t.Log(err)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("Scan: %v; want an error that says %q", err, w)
				}
			}
		})
	}
	// Every problem of a base at once.
	_, err := Scan(context.Background(), bytes.NewReader(hostileBase(t, all...)))
	for _, c := range cases {
		if err == nil || !strings.Contains(err.Error(), c.want[0]) {
			t.Errorf("Scan of every hostile member: %v; want it to name %s", err, c.want[0])
		}
	}
	// What a real base holds is fine: setuid 4755 and setgid 2755
	// programs, a setgid 2775 directory, hard links to earlier files and
	// symlinks, the same directory twice, device nodes (dropped by Merge
	// outside /dev).
	_, err = Scan(context.Background(), bytes.NewReader(hostileBase(t,
		withMode(file("./usr/local/bin/su", "ELF"), 0o4755), withMode(file("./usr/local/bin/chage", "ELF"), 0o2755),
		dir("./usr/local/share/", 0o2775, 0), dir("./usr/local/share/", 0o2775, 0),
		hardlink("./usr/local/bin/su2", "usr/local/bin/su"), link("./usr/local/bin/s", "su"), hardlink("./usr/local/bin/s2", "./usr/local/bin/s"),
		device("./dev/null", tar.TypeChar, 1, 3), device("./tmp/sda", tar.TypeBlock, 8, 0),
	)))
	if err != nil {
		t.Errorf("Scan of a sound base: %v", err)
	}
}

// TestMergeDropsDevices: a device node outside /dev, or a hard link to
// one, is left out of every artifact and counted; those below /dev stay
// (a KVM image keeps /dev; an LXC template excludes all of it).
func TestMergeDropsDevices(t *testing.T) {
	base := hostileBase(t,
		device("./dev/null", tar.TypeChar, 1, 3), device("./dev/sda", tar.TypeBlock, 8, 0),
		device("./tmp/mem", tar.TypeChar, 1, 1), device("./etc/disk", tar.TypeBlock, 8, 0),
		hardlink("./tmp/null", "./dev/null"), hardlink("./dev/null2", "./dev/null"),
	)
	out, st := merge(t, base, Options{}, func(*BaseInfo) []Layer { return nil })
	m, _ := readAll(t, out)
	for name, want := range map[string]bool{"./dev/null": true, "./dev/sda": true, "./dev/null2": true, "./tmp/mem": false, "./etc/disk": false, "./tmp/null": false} {
		if _, ok := m[name]; ok != want {
			t.Errorf("%s in the stream: %v, want %v", name, ok, want)
		}
	}
	if st.Dropped["device"] != 3 {
		t.Errorf("dropped %v, want 3 devices", st.Dropped)
	}
}

// TestMergeHardlinkToDropped: a hard link whose target the merge left out
// (removed, excluded, or itself a hard link left out) is left out too:
// GNU tar cannot make a link to nothing.
func TestMergeHardlinkToDropped(t *testing.T) {
	base := hostileBase(t,
		dir("./etc/ssh/", 0o755, 0), file("./etc/ssh/ssh_host_ed25519_key", "secret"),
		hardlink("./etc/key1", "./etc/ssh/ssh_host_ed25519_key"), hardlink("./etc/key2", "./etc/key1"),
		file("./dev/x", "x"), hardlink("./etc/x", "./dev/x"), hardlink("./etc/x2", "./etc/x"),
		file("./etc/kept", "k"), hardlink("./etc/kept2", "./etc/kept"), hardlink("./etc/kept3", "./etc/kept2"),
	)
	out, st := merge(t, base, Options{Epoch: time.Unix(1700000000, 0), Clamp: true, Exclude: func(p string) bool { return strings.HasPrefix(p, "/dev/") }}, func(info *BaseInfo) []Layer {
		return []Layer{Sysprep(info)}
	})
	m, _ := readAll(t, out)
	for _, gone := range []string{"./etc/key1", "./etc/key2", "./etc/x", "./etc/x2"} {
		if _, ok := m[gone]; ok {
			t.Errorf("%s kept, its target is not in the stream", gone)
		}
	}
	if m["./etc/kept2"].Linkname != "./etc/kept" || m["./etc/kept3"].Linkname != "./etc/kept2" {
		t.Errorf("kept2 %+v, kept3 %+v", m["./etc/kept2"].Header, m["./etc/kept3"].Header)
	}
	if st.Dropped[DropHardlink] != 4 {
		t.Errorf("dropped %v, want 4 hard links", st.Dropped)
	}
	checkWithGNUTar(t, out)
}

// pctFlags are the flags pct extracts a template with (pve-container
// src/PVE/LXC/Create.pm restore_archive), for an uncompressed stream.
var pctFlags = []string{"xpf", "-", "--totals", "--one-file-system", "-p", "--sparse", "--numeric-owner",
	"--acls", "--xattrs", "--xattrs-include=user.*", "--xattrs-include=security.capability",
	"--warning=no-file-ignored", "--warning=no-xattr-write", "--skip-old-files", "--anchored", "--exclude", "./dev/*"}

// checkWithGNUTar extracts a merged stream with GNU tar as pct does; it
// must succeed.
func checkWithGNUTar(t *testing.T, stream []byte) {
	t.Helper()
	cmd := exec.Command("tar", append(pctFlags, "-C", t.TempDir())...)
	cmd.Stdin = bytes.NewReader(stream)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("GNU tar with pct's flags: %v\n%s", err, out)
	}
}

// TestMergeRechecks: a base that changed since Scan accepted it cannot
// slip a member below a symlink, or a setuid program others may write,
// into the stream; a layer cannot bring such a program either.
func TestMergeRechecks(t *testing.T) {
	info, err := Scan(context.Background(), bytes.NewReader(hostileBase(t)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(info)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		m    member
		want string
	}{
		{"below a symlink", file("./lib/x", "x"), "/lib/x is below the symbolic link /lib"},
		{"setuid 4777", withMode(file("./usr/local/bin/su", "ELF"), 0o4777), "/usr/local/bin/su is a setuid or setgid program others may write, mode 4777"},
	} {
		_, err := Merge(context.Background(), io.Discard, bytes.NewReader(hostileBase(t, c.m)), p, Options{})
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: Merge: %v, want %q", c.name, err, c.want)
		}
	}
	_, err = NewPlan(info, Layer{Name: "l", Entries: []Entry{Bytes("/usr/local/bin/su", fs.ModeSetuid|0o777, 0, 0, []byte("ELF"))}})
	if err == nil || !strings.Contains(err.Error(), "layer l: /usr/local/bin/su is a setuid or setgid program others may write (mode 4777)") {
		t.Errorf("NewPlan: %v", err)
	}
}
