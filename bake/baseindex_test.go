package bake

import (
	"archive/tar"
	"bytes"
	"context"
	binenc "encoding/binary"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// A base indexed in place keeps its mode, leaves no temporary file, and
// bakes the same template byte for byte as before, its kernel passed over.
func TestBakeIndexedBase(t *testing.T) {
	doc := testSpec(t, spec.ModeUpstream, fakeBins(t, append(workerBins, controllerBins...)...), nil)
	x, _ := generated(t, doc)
	rng := rand.New(rand.NewPCG(1, 2))
	initrd := make([]byte, 3<<20) // incompressible, as an initrd is
	for i := range initrd {
		initrd[i] = byte(rng.Uint32())
	}
	extra := []member{
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./boot/", Mode: 0o755}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./boot/initrd.img-6.1.0-hw", Mode: 0o644}, data: string(initrd)},
		{Header: tar.Header{Typeflag: tar.TypeDir, Name: "./var/", Mode: 0o755}},
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./var/after-the-kernel", Mode: 0o644}, data: "kept\n"},
	}
	base := buildBase(t, extra)
	if err := os.Chmod(base, 0o640); err != nil {
		t.Fatal(err)
	}
	plain, err := bakeOne(t, context.Background(), x, doc, base, t.TempDir(), "cp1")
	if err != nil {
		t.Fatal(err)
	}
	ix, err := IndexBase(context.Background(), base, base)
	if err != nil {
		t.Fatal(err)
	}
	if len(ix.Frames) < 3 {
		t.Fatalf("%d frames: the initrd is not one of its own", len(ix.Frames))
	}
	st, err := os.Stat(base)
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("indexed base: %v, mode %v, want 0640", err, st.Mode())
	}
	if left, _ := filepath.Glob(filepath.Join(filepath.Dir(base), ".*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	head := make([]byte, 4)
	if f, err := os.Open(base); err == nil {
		f.Read(head)
		f.Close()
	}
	if binenc.LittleEndian.Uint32(head)&^0xf != 0x184D2A50 {
		t.Errorf("the indexed base starts with %x, not a skippable frame", head)
	}
	jobs, err := Jobs(x, FormatLXC, "cp1", "")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	indexed, err := Run(context.Background(), Config{Doc: doc, Base: base, Out: t.TempDir(), Parallel: 2, Log: slog.New(slog.NewTextHandler(&log, nil))}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("members=1 bytes=%d", 512+len(initrd)); !strings.Contains(log.String(), "passed over the indexed base's frames") || !strings.Contains(log.String(), want) {
		t.Errorf("the log does not say the initrd (%s) was passed over:\n%s", want, log.String())
	}
	a, _ := os.ReadFile(plain[0].Path)
	b, _ := os.ReadFile(indexed[0].Path)
	if !bytes.Equal(a, b) {
		t.Errorf("the indexed base baked another template (%d bytes, %d before)", len(b), len(a))
	}
	_, files := listZstdTar(t, indexed[0].Path)
	if string(files["./var/after-the-kernel"]) != "kept\n" {
		t.Errorf("what follows the kernel is not in the template")
	}

	// Every node at once: one decode fanned out, the initrd passed over
	// for all of them.
	all, err := Jobs(x, FormatLXC, "", "")
	if err != nil || len(all) < 2 {
		t.Fatalf("jobs: %v, %d", err, len(all))
	}
	plainBase := buildBase(t, extra)
	want, err := Run(context.Background(), Config{Doc: doc, Base: plainBase, Out: t.TempDir(), Parallel: len(all)}, all)
	if err != nil {
		t.Fatal(err)
	}
	log.Reset()
	got, err := Run(context.Background(), Config{Doc: doc, Base: base, Out: t.TempDir(), Parallel: len(all), Log: slog.New(slog.NewTextHandler(&log, nil))}, all)
	if err != nil {
		t.Fatal(err)
	}
	for i := range want {
		a, _ := os.ReadFile(want[i].Path)
		b, _ := os.ReadFile(got[i].Path)
		if !bytes.Equal(a, b) {
			t.Errorf("%s: another template from the indexed base in a pass of %d", filepath.Base(got[i].Path), len(all))
		}
	}
	if n := strings.Count(log.String(), "passed over the indexed base's frames"); n != len(all) {
		t.Errorf("%d of %d templates passed the initrd over:\n%s", n, len(all), log.String())
	}
}
