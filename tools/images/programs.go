package images

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// goProgram builds a main package of this module as a static linux/amd64
// binary, stamped with the image tag (main.version), reproducibly.
func goProgram(pkg string) func(ctx context.Context, o Options, tag string) ([]byte, error) {
	return func(ctx context.Context, o Options, tag string) ([]byte, error) {
		dir, err := os.MkdirTemp("", "hardway-images-")
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		out := filepath.Join(dir, filepath.Base(pkg))
		cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-buildvcs=false",
			"-ldflags=-s -w -X main.version="+tag, "-o", out, pkg)
		cmd.Dir = o.ModuleDir
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64", "GOWORK=off", "GOFLAGS=-mod=readonly")
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return nil, fmt.Errorf("go build %s: %w\n%s", pkg, err, stderr.Bytes())
		}
		return os.ReadFile(out)
	}
}

// coreDNS reads the CoreDNS binary that hack/tools.sh built from the module
// proxy (tools/coredns pins the version) and checks it is the tag's release.
func coreDNS(ctx context.Context, o Options, tag string) ([]byte, error) {
	if o.CoreDNS == "" {
		return nil, errors.New("no CoreDNS binary given: build it with `hack/tools.sh coredns`")
	}
	out, err := exec.CommandContext(ctx, o.CoreDNS, "-version").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s -version: %w\n%s", o.CoreDNS, err, out)
	}
	want := "CoreDNS-" + strings.TrimPrefix(tag, "v")
	if first, _, _ := strings.Cut(string(out), "\n"); strings.TrimSpace(first) != want {
		return nil, fmt.Errorf("%s reports %q, the image is %s: pin the same version in tools/coredns/go.mod", o.CoreDNS, strings.TrimSpace(first), want)
	}
	return os.ReadFile(o.CoreDNS)
}

// checkStaticAMD64 makes sure a program runs in an image with no libc:
// an x86-64 ELF executable with no program interpreter.
func checkStaticAMD64(prog []byte) error {
	f, err := elf.NewFile(bytes.NewReader(prog))
	if err != nil {
		return fmt.Errorf("not an ELF executable: %w", err)
	}
	defer f.Close()
	if f.Machine != elf.EM_X86_64 {
		return fmt.Errorf("built for %v, want x86-64", f.Machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked, want static")
		}
	}
	return nil
}
