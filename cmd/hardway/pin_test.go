package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestPin pins a copy of the seed's spec from a directory holding some of
// its binaries: the printed mapping and the one --write puts in the file
// hold the hashes sha256sum gives, the missing required binaries are named,
// and the written spec still validates and bakes' pins check passes.
func TestPin(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "cluster.yaml")
	data, err := os.ReadFile(seed)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(spec, data, 0o644)
	art := filepath.Join(dir, "artifacts")
	os.Mkdir(art, 0o755)
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		os.WriteFile(filepath.Join(art, b), []byte("#!/bin/sh\necho "+b+"\n"), 0o755)
	}
	want := map[string]string{}
	for _, b := range []string{"etcd", "kube-apiserver", "kubectl"} {
		out, err := exec.Command("sha256sum", filepath.Join(art, b)).Output()
		if err != nil {
			t.Fatal(err)
		}
		want[b] = strings.Fields(string(out))[0]
	}

	out, code := hardway(t, "pin", "-f", spec)
	if code != 0 {
		t.Fatalf("pin: exit %d\n%s", code, out)
	}
	for b, sum := range want {
		if !strings.Contains(out, "  "+b+": \""+sum+"\"") {
			t.Errorf("printed mapping lacks %s: %s:\n%s", b, sum, out)
		}
	}
	if !strings.Contains(out, "not pinned: "+filepath.Join(art, "kube-scheduler")+" is missing") {
		t.Errorf("missing kube-scheduler not named:\n%s", out)
	}
	if after, _ := os.ReadFile(spec); string(after) != string(data) {
		t.Error("pin without --write changed the spec")
	}

	out, code = hardway(t, "pin", "-f", spec, "--write")
	if code != 0 {
		t.Fatalf("pin --write: exit %d\n%s", code, out)
	}
	after, _ := os.ReadFile(spec)
	for b, sum := range want {
		if !strings.Contains(string(after), "      "+b+": \""+sum+"\"\n") {
			t.Errorf("spec lacks the pin of %s:\n%s", b, after)
		}
	}
	if out, code := hardway(t, "validate", "-f", spec); code != 0 {
		t.Errorf("the pinned spec does not validate: %s", out)
	}
	if out, code := hardway(t, "pin", "-f", filepath.Join(dir, "nope.yaml")); code == 0 {
		t.Errorf("pin of a missing spec: exit 0\n%s", out)
	}
}

// TestPinRefusesAnotherRelease (issue 16, point 10): pin reads the
// Kubernetes release a binary was built from and refuses one that is not
// spec.kubernetesVersion; the seed's own release pins.
func TestPinRefusesAnotherRelease(t *testing.T) {
	if testing.Short() {
		t.Skip("builds two Go programs")
	}
	dir := t.TempDir()
	spec := filepath.Join(dir, "cluster.yaml")
	data, _ := os.ReadFile(seed)
	os.WriteFile(spec, data, 0o644)
	src := filepath.Join(dir, "src")
	os.Mkdir(src, 0o755)
	os.WriteFile(filepath.Join(src, "go.mod"), []byte("module example.com/fake\n\ngo 1.26\n"), 0o644)
	os.WriteFile(filepath.Join(src, "main.go"), []byte("package main\n\nfunc main() {}\n"), 0o644)
	art := filepath.Join(dir, "artifacts")
	build := func(version string) {
		t.Helper()
		cmd := exec.Command("go", "build", "-o", filepath.Join(art, "kube-apiserver"),
			"-ldflags", "-X 'k8s.io/component-base/version.gitVersion="+version+"'", ".")
		cmd.Dir = src
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("build: %v\n%s", err, out)
		}
	}
	build("v1.33.4")
	out, code := hardway(t, "pin", "-f", spec, "--write")
	if code != exitFailed || !strings.Contains(out, "spec.kubernetesVersion is v1.34.2, but in "+art+" kube-apiserver is Kubernetes v1.33.4") {
		t.Errorf("a v1.33.4 kube-apiserver: exit %d\n%s", code, out)
	}
	if after, _ := os.ReadFile(spec); string(after) != string(data) {
		t.Error("pin wrote the spec anyway")
	}
	build("v1.34.2")
	if out, code := hardway(t, "pin", "-f", spec, "--write"); code != 0 {
		t.Errorf("a v1.34.2 kube-apiserver: exit %d\n%s", code, out)
	}
}
