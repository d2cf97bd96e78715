package emit

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"io"
	"net/url"
	"strings"
	"testing"

	"github.com/coreos/ignition/v2/config/v3_4"
	"github.com/coreos/ignition/v2/config/v3_4/types"

	"github.com/hardway-dev/hardway/generators/nodegen"
	"github.com/hardway-dev/hardway/spec"
	"github.com/hardway-dev/hardway/tree"
)

// decodeResource returns the bytes of an inline Ignition resource (a data
// URL, optionally gzip-compressed).
func decodeResource(t *testing.T, r types.Resource) []byte {
	t.Helper()
	if r.Source == nil {
		t.Fatal("resource without source")
	}
	rest, ok := strings.CutPrefix(*r.Source, "data:")
	meta, payload, found := strings.Cut(rest, ",")
	if !ok || !found {
		t.Fatalf("not a data URL: %.40s", *r.Source)
	}
	var data []byte
	var err error
	if strings.HasSuffix(meta, ";base64") {
		data, err = base64.StdEncoding.DecodeString(payload)
	} else {
		var s string
		s, err = url.PathUnescape(payload)
		data = []byte(s)
	}
	if err != nil {
		t.Fatal(err)
	}
	if r.Compression != nil && *r.Compression == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	} else if r.Compression != nil && *r.Compression != "" {
		t.Fatalf("compression %q", *r.Compression)
	}
	return data
}

// TestIgnition parses the output of both variants with Ignition's own
// parser and validator (spec 3.4.0) and finds every entry of the tree in it.
func TestIgnition(t *testing.T) {
	x, nodes := testContext(t)
	for _, variant := range []string{spec.IgnitionFCOS, spec.IgnitionFlatcar} {
		t.Run(variant, func(t *testing.T) {
			n := nodes["w2"]
			n.Ignition = variant
			n.Roles = []string{spec.RoleGateway} // no sysext image: the config holds the tree alone
			out, err := Ignition(x, n, sampleTree(), nil)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := Ignition(x, n, sampleTree(), nil)
			if !bytes.Equal(out, again) {
				t.Error("two runs differ")
			}
			cfg, rpt, err := v3_4.Parse(out)
			if err != nil || rpt.IsFatal() || len(rpt.Entries) > 0 {
				t.Fatalf("ignition parse: %v\n%s", err, rpt)
			}
			checkIgnition(t, cfg, sampleTree())
		})
	}
}

// checkIgnition compares cfg with the tree entry by entry.
func checkIgnition(t *testing.T, cfg types.Config, tr *tree.Tree) {
	files := map[string]types.File{}
	for _, f := range cfg.Storage.Files {
		files[f.Path] = f
	}
	links := map[string]types.Link{}
	for _, l := range cfg.Storage.Links {
		links[l.Path] = l
	}
	dirs := map[string]types.Directory{}
	for _, d := range cfg.Storage.Directories {
		dirs[d.Path] = d
	}
	nFiles := 0
	for _, e := range tr.Entries() {
		switch {
		case e.IsFile():
			nFiles++
			f, ok := files[e.Path]
			if !ok {
				t.Errorf("%s missing", e.Path)
				continue
			}
			if f.Mode == nil || *f.Mode != int(e.Mode.Perm()) || !owned(f.Node, e) || f.Overwrite == nil || !*f.Overwrite {
				t.Errorf("%s: mode %v user %v group %v overwrite %v", e.Path, deref(f.Mode), deref(f.User.ID), deref(f.Group.ID), f.Overwrite)
			}
			if got := decodeResource(t, f.Contents); !bytes.Equal(got, e.Data) {
				t.Errorf("%s: content %q, want %q", e.Path, got, e.Data)
			}
		case e.IsSymlink() && strings.Contains(e.Path, ".wants/"):
			if _, ok := links[e.Path]; ok {
				t.Errorf("enablement link %s is a storage link, not a unit", e.Path)
			}
		case e.IsSymlink():
			if l, ok := links[e.Path]; !ok || l.Target == nil || *l.Target != e.Target {
				t.Errorf("link %s: %+v", e.Path, l)
			}
		case e.IsDir():
			if _, own := tr.Get(e.Path); !own {
				continue
			}
			if d, ok := dirs[e.Path]; !ok || d.Mode == nil || *d.Mode != int(e.Mode.Perm()) || !owned(d.Node, e) {
				t.Errorf("directory %s: %+v", e.Path, d)
			}
		}
	}
	if len(cfg.Storage.Files) != nFiles {
		t.Errorf("%d files in the config, %d in the tree", len(cfg.Storage.Files), nFiles)
	}
	var units []string
	for _, u := range cfg.Systemd.Units {
		if u.Enabled == nil || !*u.Enabled {
			t.Errorf("unit %s not enabled", u.Name)
		}
		units = append(units, u.Name)
	}
	if strings.Join(units, " ") != "b.service a.service" {
		t.Errorf("units %q", units)
	}
	if u := cfg.Passwd.Users; len(u) != 1 || u[0].Name != "core" || len(u[0].SSHAuthorizedKeys) != 1 {
		t.Errorf("passwd users %+v", u)
	}
}

// owned reports whether n carries e's numeric owner.
func owned(n types.Node, e *tree.Entry) bool {
	return n.User.ID != nil && *n.User.ID == e.UID && n.Group.ID != nil && *n.Group.ID == e.GID
}

func deref(p *int) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestIgnitionOSLinks: on FCOS /root is a symlink to /var/roothome, where
// Ignition refuses a directory entry; the files below it stay.
func TestIgnitionOSLinks(t *testing.T) {
	x, nodes := testContext(t)
	tr := tree.New("w2")
	tr.Dir("/root", 0o700)
	tr.Dir("/root/.ssh", 0o700)
	tr.Secret("/root/.ssh/authorized_keys", []byte("ssh-ed25519 AAAA ops\n"))
	for variant, wantRoot := range map[string]bool{spec.IgnitionFCOS: false, spec.IgnitionFlatcar: true} {
		n := nodes["w2"]
		n.Ignition = variant
		n.Roles = []string{spec.RoleGateway}
		out, err := Ignition(x, n, tr, nil)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _, err := v3_4.Parse(out)
		if err != nil {
			t.Fatal(err)
		}
		var dirs []string
		for _, d := range cfg.Storage.Directories {
			dirs = append(dirs, d.Path)
		}
		want := "/root/.ssh"
		if wantRoot {
			want = "/root " + want
		}
		if strings.Join(dirs, " ") != want || len(cfg.Storage.Files) != 1 {
			t.Errorf("%s: directories %q (want %q), %d files", variant, dirs, want, len(cfg.Storage.Files))
		}
	}
}

func TestIgnitionUnknownVariant(t *testing.T) {
	x, nodes := testContext(t)
	n := nodes["w2"]
	n.Ignition = "rhcos"
	if _, err := Ignition(x, n, sampleTree(), testSysext); err == nil {
		t.Fatal("unknown variant accepted")
	}
}

// testSysext is the systemd-sysext image of w2, a worker booted by Ignition.
var testSysext = &Sysext{URL: "http://10.240.0.1:8080/hardway-w2_1.34.2_x86-64.raw", SHA256: strings.Repeat("0123456789abcdef", 4)}

// TestIgnitionSysext: a node with pinned binaries (spec.Node.Sysext) gets
// its sysext image as a file Ignition fetches and checks against its
// SHA-256, where systemd-sysext looks; without the image its config is
// refused, and a node without pinned binaries refuses one.
func TestIgnitionSysext(t *testing.T) {
	x, nodes := testContext(t)
	n := nodes["w2"]
	n.Ignition = spec.IgnitionFlatcar
	out, err := Ignition(x, n, sampleTree(), testSysext)
	if err != nil {
		t.Fatal(err)
	}
	cfg, rpt, err := v3_4.Parse(out)
	if err != nil || rpt.IsFatal() || len(rpt.Entries) > 0 {
		t.Fatalf("ignition parse: %v\n%s", err, rpt)
	}
	var found bool
	for _, f := range cfg.Storage.Files {
		if f.Path != nodegen.SysextPath {
			continue
		}
		found = true
		if f.Contents.Source == nil || *f.Contents.Source != testSysext.URL ||
			f.Contents.Verification.Hash == nil || *f.Contents.Verification.Hash != "sha256-"+testSysext.SHA256 ||
			f.Mode == nil || *f.Mode != 0o644 || f.Overwrite == nil || !*f.Overwrite {
			t.Errorf("%s: %+v", nodegen.SysextPath, f)
		}
	}
	if !found {
		t.Errorf("no %s in the config", nodegen.SysextPath)
	}
	if _, err := Ignition(x, n, sampleTree(), nil); err == nil || !strings.Contains(err.Error(), "hardway bake --format sysext") {
		t.Errorf("w2 without its sysext: %v", err)
	}
	n.Roles = []string{spec.RoleGateway}
	if _, err := Ignition(x, n, sampleTree(), testSysext); err == nil {
		t.Error("a gateway took a sysext image")
	}
	if _, err := Ignition(x, n, sampleTree(), nil); err != nil {
		t.Errorf("a gateway: %v", err)
	}
}
