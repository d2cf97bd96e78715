package emit

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// seedFiles are the three NoCloud files, one empty and one spanning sectors.
func seedFiles() map[string][]byte {
	return map[string][]byte{
		"user-data":      []byte("#cloud-config\n" + strings.Repeat("# padding to cross a sector\n", 200)),
		"meta-data":      []byte("instance-id: w1-0123456789ab\nlocal-hostname: w1\n"),
		"network-config": {},
	}
}

// writeSeed writes SeedISO(files) at the Unix epoch to a temporary file.
func writeSeed(t *testing.T, files map[string][]byte) string {
	t.Helper()
	iso, err := SeedISO(files, time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(iso)%2048 != 0 {
		t.Fatalf("image size %d is not a multiple of 2048", len(iso))
	}
	p := filepath.Join(t.TempDir(), "seed.iso")
	if err := os.WriteFile(p, iso, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSeedISODeterministic(t *testing.T) {
	a, err := SeedISO(seedFiles(), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := SeedISO(seedFiles(), time.Unix(0, 0))
	if !bytes.Equal(a, b) {
		t.Fatal("two images of the same files differ")
	}
	c, _ := SeedISO(seedFiles(), time.Unix(1700000000, 0))
	if bytes.Equal(a, c) {
		t.Error("the time given does not reach the timestamps")
	}
}

func TestSeedISORejectsBadNames(t *testing.T) {
	for _, name := range []string{"", "a/b", "a:b", strings.Repeat("x", 65)} {
		if _, err := SeedISO(map[string][]byte{name: nil}, time.Unix(0, 0)); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if _, err := SeedISO(map[string][]byte{"user-data": nil, "user_data": nil}, time.Unix(0, 0)); err == nil {
		t.Error("two names with the same ISO 9660 name accepted")
	}
}

// TestSeedISOXorriso lists and extracts the image with libisofs (xorriso):
// long names, identical bytes.
func TestSeedISOXorriso(t *testing.T) {
	xorriso := tool(t, "xorriso")
	files := seedFiles()
	iso := writeSeed(t, files)
	out := run(t, xorriso, "-indev", iso, "-find", "/", "-type", "f")
	var listed []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "'/") {
			listed = append(listed, strings.Trim(l, "'/"))
		}
	}
	sort.Strings(listed)
	if strings.Join(listed, " ") != "meta-data network-config user-data" {
		t.Errorf("xorriso lists %q", listed)
	}
	dir := filepath.Join(t.TempDir(), "x")
	run(t, xorriso, "-osirrox", "on", "-indev", iso, "-extract", "/", dir)
	checkFiles(t, dir, files)
}

// TestSeedISOIsoinfo reads the descriptors with isoinfo (genisoimage):
// volume id, Joliet level 3, both directory listings.
func TestSeedISOIsoinfo(t *testing.T) {
	isoinfo := tool(t, "isoinfo")
	iso := writeSeed(t, seedFiles())
	d := string(run(t, isoinfo, "-d", "-i", iso))
	for _, s := range []string{"Volume id: cidata", "Logical block size is: 2048", "Joliet with UCS level 3 found"} {
		if !strings.Contains(d, s) {
			t.Errorf("isoinfo -d lacks %q:\n%s", s, d)
		}
	}
	joliet := string(run(t, isoinfo, "-J", "-l", "-i", iso))
	primary := string(run(t, isoinfo, "-l", "-i", iso))
	for _, s := range []string{" meta-data", " network-config", " user-data"} {
		if !strings.Contains(joliet, s) {
			t.Errorf("Joliet listing lacks %q:\n%s", s, joliet)
		}
	}
	for _, s := range []string{" META_DAT.;1", " NETWORK_.;1", " USER_DAT.;1"} {
		if !strings.Contains(primary, s) {
			t.Errorf("ISO 9660 listing lacks %q:\n%s", s, primary)
		}
	}
	got := run(t, isoinfo, "-J", "-x", "/user-data", "-i", iso)
	if !bytes.Equal(got, seedFiles()["user-data"]) {
		t.Error("isoinfo -x /user-data returns other bytes")
	}
}

func TestSeedISOBlkidLabel(t *testing.T) {
	blkid := tool(t, "blkid")
	iso := writeSeed(t, seedFiles())
	label := strings.TrimSpace(string(run(t, blkid, "-p", "-o", "value", "-s", "LABEL", iso)))
	if label != "cidata" {
		t.Errorf("blkid LABEL = %q, want cidata", label)
	}
}

// TestSeedISOMount mounts the image with the kernel's isofs, as the guest
// does. It needs root, loop devices and isofs in the running kernel, and
// skips (saying which is missing) otherwise.
func TestSeedISOMount(t *testing.T) {
	mount := tool(t, "mount")
	if !isRoot() {
		t.Skip("mounting needs root")
	}
	fss, _ := os.ReadFile("/proc/filesystems")
	if !bytes.Contains(fss, []byte("\tiso9660\n")) {
		t.Skip("the running kernel has no iso9660 file system (isofs not built in, no module)")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		t.Skip("no loop devices")
	}
	files := seedFiles()
	iso := writeSeed(t, files)
	dir := t.TempDir()
	run(t, mount, "-o", "loop,ro", "-t", "iso9660", iso, dir)
	defer exec.Command("umount", dir).Run()
	checkFiles(t, dir, files)
}

// checkFiles compares the regular files of dir with files.
func checkFiles(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != len(files) {
		t.Errorf("%d files in %s, want %d", len(ents), dir, len(files))
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, data) {
			t.Errorf("%s: %v, content equal %v", name, err, bytes.Equal(got, data))
		}
	}
}
