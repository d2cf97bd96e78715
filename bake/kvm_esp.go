package bake

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"time"

	"github.com/hardway-dev/hardway/emit"
	"github.com/hardway-dev/hardway/templates"
)

// espBytes is the size of the EFI system partition: FAT32 (at least 65525
// clusters) with room for two kernels and initrds of a Debian base.
const espBytes = 256 * mib

// fatEpoch is 1980-01-02 00:00 UTC, the earliest FAT date in any time zone.
const fatEpoch = 315619200

// makeESP writes work/esp.img: a FAT32 file system (mkfs.vfat, then mtools,
// no mount) holding systemd-boot as the removable-media boot loader
// EFI/BOOT/BOOTX64.EFI, the kernel and initrd of the root file system
// (read by open, which follows symlinks inside it), and a loader entry
// that boots them with the root partition's PARTUUID, every time epoch's
// (at least FAT's earliest).
func makeESP(ctx context.Context, disk *kvmDisk, j Job, work string, epoch emit.Epoch, open func(string) (io.Reader, error)) error {
	fatTime := time.Unix(max(epoch.Unix, fatEpoch), 0)
	// Every file goes to work first, dated fatTime: mcopy -m keeps a
	// file's mtime, which must not be now.
	put := func(name string, r io.Reader) (string, error) {
		host := filepath.Join(work, name)
		out, err := os.Create(host)
		if err != nil {
			return "", err
		}
		if _, err := io.Copy(out, r); err != nil {
			out.Close()
			return "", err
		}
		if err := out.Close(); err != nil {
			return "", err
		}
		return host, os.Chtimes(host, fatTime, fatTime)
	}
	var boot []string
	for _, f := range []struct{ what, p string }{{"systemd-boot", SystemdBootEFI}, {"kernel", kernelLink}, {"initrd", initrdLink}} {
		r, err := open(f.p)
		if err == nil {
			var host string
			host, err = put(path.Base(f.p), r)
			boot = append(boot, host)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", f.what, err)
		}
	}
	loader, kernel, initrd := boot[0], boot[1], boot[2]
	for n, data := range map[string][]byte{
		"loader.conf":  templates.MustRender("bake/loader.conf", nil),
		"hardway.conf": templates.MustRender("bake/hardway.conf", map[string]any{"Subject": j.Subject, "Roles": j.Roles, "Options": kernelCmdline(disk)}),
	} {
		if _, err := put(n, bytes.NewReader(data)); err != nil {
			return err
		}
	}
	esp := filepath.Join(work, "esp.img")
	if err := os.WriteFile(esp, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(esp, espBytes); err != nil {
		return err
	}
	// mkfs.vfat --invariant fixes the boot sector's times (the -i after it
	// sets the volume ID); mtools dates the directories it makes
	// SOURCE_DATE_EPOCH, at least 1980-01-02 (FAT's epoch), in UTC.
	env := []string{"MTOOLS_SKIP_CHECK=1", "TZ=UTC", emit.EpochEnv + "=" + strconv.FormatInt(fatTime.Unix(), 10)}
	steps := [][]string{
		{"mkfs.vfat", "-F", "32", "-n", "ESP", "--invariant", "-i", disk.espID, esp},
		{"mmd", "-i", esp, "::/EFI", "::/EFI/BOOT", "::/loader", "::/loader/entries"},
		{"mcopy", "-m", "-i", esp, loader, "::/EFI/BOOT/BOOTX64.EFI"},
		{"mcopy", "-m", "-i", esp, kernel, "::/vmlinuz"},
		{"mcopy", "-m", "-i", esp, initrd, "::/initrd.img"},
		{"mcopy", "-m", "-i", esp, filepath.Join(work, "loader.conf"), "::/loader/loader.conf"},
		{"mcopy", "-m", "-i", esp, filepath.Join(work, "hardway.conf"), "::/loader/entries/hardway.conf"},
	}
	for _, s := range steps {
		if err := runTool(ctx, nil, env, s[0], s[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// kernelCmdline is the loader entry's options: the root partition by its
// PARTUUID (the GPT entry's GUID, known at bake time, whatever the disk's
// device name: virtio, SCSI or SATA), mounted read-write (systemd does not
// remount it: fstab has it rw too), the kernel and systemd's console on the
// first serial port (Proxmox serial0, qemu -serial; `qm terminal`), and
// the kernel's eth0 naming, as in the LXC nodes (the network file matches
// the NIC by MAC anyway, so the name is for operators).
func kernelCmdline(d *kvmDisk) string {
	return "root=PARTUUID=" + d.rootPartUUID + " rw console=ttyS0 net.ifnames=0"
}
