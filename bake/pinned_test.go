package bake

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// TestPinnedCopy: the copy's binaries.dir holds every file of the bin dirs,
// each binary its roles need is pinned with the SHA-256 of its content,
// spec.images lists the archives, and the user's spec is not changed.
func TestPinnedCopy(t *testing.T) {
	const example = "../examples/seed-lxc.yaml"
	before, err := os.ReadFile(example)
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(bin, b.Name), []byte("ELF "+b.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	var archives []string
	for _, a := range []string{"pause.tar", "smoke.tar"} {
		p := filepath.Join(t.TempDir(), a)
		if err := os.WriteFile(p, []byte(a), 0o644); err != nil {
			t.Fatal(err)
		}
		archives = append(archives, p)
	}
	dir := t.TempDir()
	const key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOv3x5yDZ0Yg1jG7kK0A6bC4tE2mZ9Yc8vQfWq3Hn1rT verify@test"
	file, err := PinnedCopy(example, dir, []string{bin}, archives, key)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spec.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if is := doc.Validate(spec.Options{}); len(is.Errors()) > 0 {
		t.Fatalf("the copy does not validate: %v", is.Errors())
	}
	s := doc.Cluster.Spec
	if doc.BinariesDir() != filepath.Join(dir, "artifacts") || s.Binaries.Mode != spec.ModeUpstream {
		t.Errorf("binaries: %s in %s", s.Binaries.Mode, doc.BinariesDir())
	}
	for _, b := range binaries {
		if b.Optional {
			continue
		}
		sum := sha256.Sum256([]byte("ELF " + b.Name))
		if got := s.Binaries.SHA256[b.Name]; got != hex.EncodeToString(sum[:]) {
			t.Errorf("pin of %s: %q", b.Name, got)
		}
	}
	if want := []string{"images/pause.tar", "images/smoke.tar"}; !slices.Equal(s.Images, want) {
		t.Errorf("images %v, want %v", s.Images, want)
	}
	if n := len(s.SSH.AuthorizedKeys); n < 2 || s.SSH.AuthorizedKeys[n-1] != key {
		t.Errorf("authorizedKeys %v, want the example's and then %q", s.SSH.AuthorizedKeys, key)
	}
	if after, _ := os.ReadFile(example); string(after) != string(before) {
		t.Error("the example was changed")
	}
}

// TestPinnedCopyPackaged: a spec in binaries.mode packaged stays packaged,
// and only what the base's packages do not bring is pinned: Kubernetes,
// not etcd, containerd, runc or the CNI plugins.
func TestPinnedCopyPackaged(t *testing.T) {
	bin := t.TempDir()
	for _, b := range binaries {
		if err := os.WriteFile(filepath.Join(bin, b.Name), []byte("ELF "+b.Name), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	file, err := PinnedCopy("../examples/seed-kvm.yaml", t.TempDir(), []string{bin}, nil)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := spec.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := doc.Cluster.Spec
	if s.Binaries.Mode != spec.ModePackaged {
		t.Errorf("binaries.mode %s, want packaged", s.Binaries.Mode)
	}
	var got []string
	for name := range s.Binaries.SHA256 {
		got = append(got, name)
	}
	slices.Sort(got)
	// crictl: the workers' optional tool, pinned when present.
	want := []string{"crictl", "kube-apiserver", "kube-controller-manager", "kube-proxy", "kube-scheduler", "kubectl", "kubelet"}
	if !slices.Equal(got, want) {
		t.Errorf("pinned %v, want %v", got, want)
	}
}

// TestArchiveList: one path a line, surrounding spaces and blank lines
// dropped; a missing list is an error.
func TestArchiveList(t *testing.T) {
	list := filepath.Join(t.TempDir(), "images.list")
	if err := os.WriteFile(list, []byte("/a/pause.tar\n\n  /a/coredns.tar \n/a/smoke.tar"), 0o644); err != nil {
		t.Fatal(err)
	}
	got, err := ArchiveList(list)
	if want := []string{"/a/pause.tar", "/a/coredns.tar", "/a/smoke.tar"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("ArchiveList = %q, %v; want %q", got, err, want)
	}
	if _, err := ArchiveList(list + ".missing"); err == nil {
		t.Error("a missing list: no error")
	}
}
