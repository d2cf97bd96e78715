package tree

import (
	"io/fs"
	"strings"
	"testing"
)

func TestEnablementTargets(t *testing.T) {
	tr := New("n")
	tr.File("/etc/systemd/system/etcd.service", 0o644, []byte("[Unit]\n"))
	tr.Enable("etcd.service", "multi-user.target")
	tr.Enable("chrony.service", "multi-user.target")
	tr.Enable("etcd.service", "multi-user.target") // twice is once
	want := map[string]string{
		"/etc/systemd/system/multi-user.target.wants/etcd.service":   "/etc/systemd/system/etcd.service",
		"/etc/systemd/system/multi-user.target.wants/chrony.service": "/lib/systemd/system/chrony.service",
	}
	got := map[string]string{}
	dirs := map[string]bool{}
	for _, e := range tr.Entries() {
		if e.IsSymlink() {
			got[e.Path] = e.Target
		}
		if e.IsDir() {
			dirs[e.Path] = true
		}
	}
	if len(got) != len(want) {
		t.Fatalf("symlinks %v", got)
	}
	for p, tg := range want {
		if got[p] != tg {
			t.Errorf("%s → %s, want %s", p, got[p], tg)
		}
		if e, ok := tr.Get(p); !ok || e.Target != tg {
			t.Errorf("Get(%s) = %v", p, e)
		}
	}
	for _, d := range []string{"/etc", "/etc/systemd", "/etc/systemd/system", "/etc/systemd/system/multi-user.target.wants"} {
		if !dirs[d] {
			t.Errorf("implicit parent %s missing", d)
		}
	}
	if len(tr.Units()) != 2 {
		t.Errorf("units %v", tr.Units())
	}
}

func TestConflictAndSecrets(t *testing.T) {
	tr := New("n")
	tr.File("/a", 0o644, []byte("x"))
	tr.File("/a", 0o644, []byte("x")) // identical: fine
	if err := tr.Check(); err != nil {
		t.Fatalf("identical rewrite: %v", err)
	}
	tr.File("/a", 0o644, []byte("y"))
	tr.File("b", 0o644, nil)
	err := tr.Check()
	if err == nil || !strings.Contains(err.Error(), "tree n: /a is written twice with different content") || !strings.Contains(err.Error(), `tree n: path "b" is not absolute`) {
		t.Errorf("Check after a conflict and a relative path: %v", err)
	}
	if e, _ := tr.Get("/a"); string(e.Data) != "x" {
		t.Errorf("the conflicting write replaced /a: %q", e.Data)
	}
	if _, ok := tr.Get("b"); ok {
		t.Error("Get of a relative path found an entry")
	}
	tr = New("n")
	tr.FileOwned("/k", 0o640, 0, 0, []byte("key"), true)
	if err := tr.Check(); err == nil {
		t.Error("a group-readable secret must fail Check")
	}
	tr2 := New("m")
	tr2.Secret("/k", []byte("key"))
	if e, _ := tr2.Get("/k"); e.Mode != fs.FileMode(0o600) || !e.Secret {
		t.Errorf("secret entry %+v", e)
	}
	if err := tr2.Check(); err != nil {
		t.Error(err)
	}
}
