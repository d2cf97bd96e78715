package bake

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/verify"
)

// TestHostileBaseRefused: a base that GNU tar cannot extract as the bake
// sees it, or that would put a program anyone can replace into a node, is
// refused by LXC and KVM bakes alike, naming the member, before anything is
// written. The bases are built here with archive/tar.
func TestHostileBaseRefused(t *testing.T) {
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	reg := func(name string, mode int64) member {
		return member{Header: tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode}, data: "ELF"}
	}
	cases := []struct {
		name  string
		extra []member
		want  string
	}{
		// Through ./opt, the base's file lands on a layer's path
		// (/usr/local/bin/etcd, a pinned binary in upstream mode) before
		// the layer's: pct's --skip-old-files would keep the base's, and
		// GNU tar would exit 0.
		{"file below a symlink", []member{
			{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./usr/local/", Mode: 0o755}},
			{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./usr/local/bin/", Mode: 0o755}},
			{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "./opt", Linkname: "usr/local", Mode: 0o777}},
			{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./opt/bin/", Mode: 0o755}},
			reg("./opt/bin/etcd", 0o755),
		}, "/opt/bin/etcd"},
		{"dangling hard link", []member{{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/ping6", Linkname: "./usr/bin/ping4"}}}, "/usr/bin/ping6"},
		{"setuid 4777", []member{reg("./usr/bin/su", 0o4777)}, "/usr/bin/su"},
	}
	for _, c := range cases {
		base := kernelBase(t, 0, c.extra...) // a KVM bake would go on
		for _, format := range []string{FormatLXC, FormatKVM} {
			t.Run(c.name+"/"+format, func(t *testing.T) {
				node := map[string]string{FormatLXC: "cp1", FormatKVM: "w2"}[format]
				jobs, err := Jobs(x, format, node, "")
				if err != nil {
					t.Fatal(err)
				}
				out := t.TempDir()
				cfg := Config{Doc: doc, Base: base, Out: out}
				if format == FormatLXC {
					_, err = Run(context.Background(), cfg, jobs)
				} else {
					_, err = RunKVM(context.Background(), cfg, KVMOptions{DiskSize: 1 << 30, Formats: []string{ImageRaw}}, jobs)
				}
				t.Log(err)
				if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), base) {
					t.Errorf("err = %v, want the base %s refused for %s", err, base, c.want)
				}
				if got := entries(t, out); len(got) != 0 {
					t.Errorf("output dir holds %v", got)
				}
			})
		}
	}
}

// hostileDrops are base members every bake leaves out, and says so: a
// device node outside /dev (and a hard link to one), and hard links whose
// target the bake removed (sysprep removes the SSH host keys), directly or
// through another such link.
var hostileDrops = []member{
	{Header: tar.Header{Typeflag: tar.TypeChar, Name: "./usr/bin/mem", Mode: 0o666, Devmajor: 1, Devminor: 1}},
	{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./usr/bin/null", Linkname: "./dev/null"}},
	{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/ssh/key-copy", Linkname: "./etc/ssh/ssh_host_ed25519_key"}},
	{Header: tar.Header{Typeflag: tar.TypeLink, Name: "./etc/ssh/key-copy2", Linkname: "./etc/ssh/key-copy"}},
}

// TestHostileBaseDropsLXC bakes a template from a base with hostileDrops:
// GNU tar extracts it with pct's flags, and none of them is in it.
func TestHostileBaseDropsLXC(t *testing.T) {
	doc := testSpec(t, spec.ModePackaged, nil, nil)
	x, _ := generated(t, doc)
	res, err := bakeOne(t, context.Background(), x, doc, buildBase(t, hostileDrops), t.TempDir(), "cp1")
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	cmd := exec.Command("tar", append(verify.PctExtract, "-C", root)...)
	f, err := os.Open(res[0].Path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdin = f
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("GNU tar with pct's flags: %v\n%s", err, out)
	}
	hs, _ := listZstdTar(t, res[0].Path)
	for _, h := range hs {
		for _, m := range hostileDrops {
			if h.Name == m.Name {
				t.Errorf("%s is in the template", h.Name)
			}
		}
	}
	st := res[0].Stats
	if st.Dropped["device"] != 1 || st.Dropped["hardlink"] != 3 {
		t.Errorf("dropped %v, want 1 device and 3 hard links (the one to /dev/null, excluded)", st.Dropped)
	}
}

// TestHostileBaseDropsKVM bakes a KVM image from a base with hostileDrops
// (its /dev kept, unlike a template's): none of them is in its root file
// system.
func TestHostileBaseDropsKVM(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a KVM bake")
	}
	res, part := bakeW2Root(t, kernelBase(t, 0, hostileDrops...), nil)
	for _, m := range hostileDrops {
		p := strings.TrimPrefix(m.Name, ".")
		if out, _ := exec.Command("debugfs", "-R", "stat "+p, part).CombinedOutput(); !bytes.Contains(out, []byte("File not found")) {
			t.Errorf("%s is in the image:\n%s", p, out)
		}
	}
	if out, _ := exec.Command("debugfs", "-R", "stat /dev/null", part).CombinedOutput(); !bytes.Contains(out, []byte("character special")) {
		t.Errorf("/dev/null is not in the image:\n%s", out)
	}
	if st := res[0].Stats; st.Dropped["device"] != 2 || st.Dropped["hardlink"] != 2 {
		t.Errorf("dropped %v, want 2 devices and 2 hard links", st.Dropped)
	}
}
