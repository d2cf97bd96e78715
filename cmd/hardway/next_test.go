package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hardway-dev/hardway/output"
)

// openPTY opens a pseudo-terminal pair: the side the test reads and the
// side a command writes to as its terminal.
func openPTY(t *testing.T) (ptm, pts *os.File) {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	if err := unix.IoctlSetPointerInt(int(ptm.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetUint32(int(ptm.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	pts, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ptm.Close(); pts.Close() })
	return ptm, pts
}

// TestNextSteps (issue 16, point 2): on a terminal generate ends with the
// commands that follow it for this spec; into a pipe it prints only its
// result line.
func TestNextSteps(t *testing.T) {
	dir := t.TempDir()
	ptm, pts := openPTY(t)
	cmd := exec.Command(binary, "generate", "-f", seed, "--dir", dir)
	cmd.Stdout = pts
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	pts.Close()
	raw, _ := io.ReadAll(ptm) // ends with EIO once the command's side is closed
	out := strings.ReplaceAll(string(raw), "\r\n", "\n")
	cluster := filepath.Join(dir, "kublxc")
	arts, err := output.ReadManifest(cluster)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("%s: %d files changed in ", cluster, len(arts)),
		"\nNext steps:\n",
		"  hardway certs check -f " + seed + " --dir " + dir + "  ",
		"  hardway pin -f " + seed + " --write  ",
		"  hardway bake -f " + seed + " --dir " + dir + " --base BASE.tar.zst  ",
		"  sudo hardway verify -f " + seed + " --dir " + dir + " --no-generate --bin-dir bin/tools  ",
		"  On the Proxmox host: read " + filepath.Join(cluster, "proxmox", "create-nodes.sh") + ", then run it there.\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("on a terminal, no %q in:\n%s", want, out)
		}
	}
	if strings.Contains(out, "--format kvm") {
		t.Errorf("the seed has no kvm node, yet:\n%s", out)
	}

	piped, _, code := hardwayOut(t, "", "generate", "-f", seed, "--dir", dir)
	if code != 0 || !strings.HasPrefix(piped, cluster+": 0 files changed in ") || strings.Count(piped, "\n") != 1 {
		t.Errorf("into a pipe, more than the result line:\n%s", piped)
	}
}
