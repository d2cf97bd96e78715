package bake

import (
	"archive/tar"
	"bytes"
	"context"
	"log/slog"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardway-dev/hardway/spec"
)

// lateLink is a base's /etc/systemd that is a link to etc2/systemd, coming
// after etc2/systemd/system/unit: the node's unit lands on that file through
// the link, which the start of the base did not say.
func lateLink(unit string) (members []member, without []string) {
	d := func(n string) member { return member{Header: tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755}} }
	return []member{
		d("./etc2/"), d("./etc2/systemd/"), d("./etc2/systemd/system/"),
		{Header: tar.Header{Typeflag: tar.TypeReg, Name: "./etc2/systemd/system/" + unit, Mode: 0o644}, data: "[Unit]\nDescription=old\n"},
		{Header: tar.Header{Typeflag: tar.TypeSymlink, Name: "./etc/systemd", Linkname: "../etc2/systemd", Mode: 0o777}},
	}, []string{"./etc/systemd/", "./etc/systemd/system/"}
}

// TestBakeReplan: a base whose end moves a layer entry onto a member its
// start had already let through (rootfs.ErrReplan) is read a second time,
// and the template and the image are what the plan of the whole base
// gives: the node's unit in place of the base's, through the link.
func TestBakeReplan(t *testing.T) {
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	t.Run("lxc", func(t *testing.T) {
		logs.Reset()
		doc := testSpec(t, spec.ModeUpstream, fakeBins(t, controllerBins...), nil)
		x, _ := generated(t, doc)
		late, without := lateLink("etcd.service")
		jobs, err := Jobs(x, FormatLXC, "cp1", "")
		if err != nil {
			t.Fatal(err)
		}
		res, err := Run(context.Background(), Config{Doc: doc, Base: buildBase(t, late, without...), Out: t.TempDir(), Log: log}, jobs)
		if err != nil {
			t.Fatal(err)
		}
		list := run(t, "tar", "-x", "--zstd", "-O", "-f", res[0].Path, "./etc2/systemd/system/etcd.service")
		if strings.Contains(list, "Description=old") || !strings.Contains(list, "etcd") {
			t.Errorf("etcd.service through the link:\n%s", list)
		}
		if !strings.Contains(logs.String(), "reading it again") {
			t.Errorf("no second read:\n%s", logs.String())
		}
	})
	t.Run("kvm", func(t *testing.T) {
		if testing.Short() {
			t.Skip("runs a KVM bake")
		}
		logs.Reset()
		late, without := lateLink("kubelet.service")
		_, part := bakeW2Root(t, buildBase(t, append(kernelMembers(0), late...), without...), log)
		out, err := exec.Command("debugfs", "-R", "cat /etc2/systemd/system/kubelet.service", part).Output()
		if err != nil || bytes.Contains(out, []byte("Description=old")) || !bytes.Contains(out, []byte("kubelet")) {
			t.Errorf("kubelet.service through the link: %v\n%s", err, out)
		}
		if !strings.Contains(logs.String(), "reading it again") {
			t.Errorf("no second read:\n%s", logs.String())
		}
	})
}

// bakeW2Root bakes w2's raw KVM image (packaged mode, a 1 GiB disk) from
// base and returns its results and its root file system, extracted.
func bakeW2Root(t *testing.T, base string, log *slog.Logger) ([]Result, string) {
	t.Helper()
	need(t, "debugfs", "mkfs.vfat", "mcopy", "mmd")
	doc, jobs := w2Image(t)
	res, err := RunKVM(context.Background(), Config{Doc: doc, Base: base, Out: t.TempDir(), Log: log},
		KVMOptions{DiskSize: 1 << 30, Formats: []string{ImageRaw}}, jobs)
	if err != nil {
		t.Fatal(err)
	}
	disk, err := newDisk(doc, jobs[0], 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	part := filepath.Join(t.TempDir(), "root.img")
	extract(t, res[0].Path, part, disk.rootOffset, disk.rootBytes)
	return res, part
}
