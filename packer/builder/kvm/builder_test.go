package kvm

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	packersdk "github.com/hashicorp/packer-plugin-sdk/packer"

	"github.com/hardway-dev/hardway/packer/internal/plugintest"
)

func base(t *testing.T) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "base.tar.zst")
	if err := os.WriteFile(f, []byte("not read by Prepare"), 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestPrepareValid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	b := base(t)
	for _, tc := range []struct {
		name   string
		raw    map[string]interface{}
		format string
		disk   int64 // bytes; 0 leaves it to bake
	}{
		{"node defaults", map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": b}, FormatQCOW2, 0},
		{"role defaults", map[string]interface{}{"spec": file, "role": "worker", "base_rootfs": b}, FormatQCOW2, 0},
		{"raw in MiB", map[string]interface{}{"spec": file, "node": "w3", "base_rootfs": b, "format": "raw", "disk_size": "4096M"}, FormatRaw, 4096 << 20},
		{"GiB", map[string]interface{}{"spec": file, "node": "w3", "base_rootfs": b, "disk_size": "12G"}, FormatQCOW2, 12 << 30},
		{"GiB spelt out", map[string]interface{}{"spec": file, "node": "w3", "base_rootfs": b, "disk_size": "12GiB"}, FormatQCOW2, 12 << 30},
		{"KiB", map[string]interface{}{"spec": file, "node": "w3", "base_rootfs": b, "disk_size": "1048577K"}, FormatQCOW2, 1048577 << 10},
		{"TiB", map[string]interface{}{"spec": file, "node": "w3", "base_rootfs": b, "disk_size": "1T"}, FormatQCOW2, 1 << 40},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bd Builder
			if _, _, err := bd.Prepare(tc.raw); err != nil {
				t.Fatalf("Prepare: %v", err)
			}
			if bd.config.Format != tc.format || bd.config.diskBytes != tc.disk {
				t.Errorf("format %s, disk %d bytes; want %s, %d bytes", bd.config.Format, bd.config.diskBytes, tc.format, tc.disk)
			}
		})
	}
}

func TestPrepareInvalid(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	b := base(t)
	for _, tc := range []struct {
		name string
		raw  map[string]interface{}
		want []string
	}{
		{"nothing", map[string]interface{}{}, []string{
			"base_rootfs: required", "spec: required", "node: required: set node (one node of target kvm) or role",
		}},
		{"lxc node, bad format and size", map[string]interface{}{"spec": file, "node": "cp1", "base_rootfs": b, "format": "vmdk", "disk_size": "10X"}, []string{
			"node cp1 has target lxc; a KVM image is for target kvm nodes",
			`format: "vmdk": want qcow2 or raw`,
			`disk_size: bad size "10X"`,
		}},
		{"too small", map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": b, "disk_size": "512M"}, []string{
			`disk_size: "512M" is smaller than 1024 MiB`,
		}},
		{"too small in MiB", map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": b, "disk_size": "1023M"}, []string{
			`disk_size: "1023M" is smaller than 1024 MiB`,
		}},
		{"bare number", map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": b, "disk_size": "4096"}, []string{
			`disk_size: size "4096" has no unit: add one, as in 4096M (MiB)`,
		}},
		{"role without kvm node", map[string]interface{}{"spec": file, "role": "etcd", "base_rootfs": b}, []string{
			"role: " + file + `: no node of target kvm booted by cloud-init has role "etcd" (their roles: worker)`,
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bd Builder
			_, _, err := bd.Prepare(tc.raw)
			merr, ok := err.(*packersdk.MultiError)
			if !ok {
				t.Fatalf("Prepare returned %T %v, want a *packer.MultiError", err, err)
			}
			if len(merr.Errors) != len(tc.want) {
				t.Fatalf("%d errors, want %d:\n%v", len(merr.Errors), len(tc.want), err)
			}
			for i, w := range tc.want {
				if got := merr.Errors[i].Error(); !strings.Contains(got, w) {
					t.Errorf("error %d: %q does not contain %q", i, got, w)
				}
			}
		})
	}
}

// TestRunBase checks that Run bakes with hardway's bake library: on a
// base that cannot boot (the synthetic one, with no kernel), it fails with
// the library's message about the base, before writing any image.
func TestRunBase(t *testing.T) {
	file := plugintest.Write(t, plugintest.Cluster)
	out := t.TempDir()
	var bd Builder
	if _, _, err := bd.Prepare(map[string]interface{}{"spec": file, "node": "w2", "base_rootfs": plugintest.Base(t), "output_directory": out}); err != nil {
		t.Fatal(err)
	}
	a, err := bd.Run(context.Background(), packersdk.TestUi(t), nil)
	if a != nil || err == nil || !strings.Contains(err.Error(), "no kernel") {
		t.Fatalf("Run = %v, %v; want the bake's error about the base's kernel", a, err)
	}
	images, _ := filepath.Glob(filepath.Join(out, "pkrtest", "bake", "*.qcow2"))
	if len(images) > 0 {
		t.Errorf("Run left %q", images)
	}
}
