package bake

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
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
// EFI/BOOT/BOOTX64.EFI, the kernel and initrd of the merged tree, and a
// loader entry that boots them with the root partition's PARTUUID, every
// time epoch's (at least FAT's earliest).
func makeESP(ctx context.Context, disk *kvmDisk, j Job, work string, epoch emit.Epoch) error {
	root := filepath.Join(work, "root")
	kernel, err := inRoot(root, kernelLink)
	if err != nil {
		return fmt.Errorf("kernel: %w", err)
	}
	initrd, err := inRoot(root, initrdLink)
	if err != nil {
		return fmt.Errorf("initrd: %w", err)
	}
	loader, err := inRoot(root, SystemdBootEFI)
	if err != nil {
		return fmt.Errorf("systemd-boot: %w", err)
	}
	esp := filepath.Join(work, "esp.img")
	if err := os.WriteFile(esp, nil, 0o644); err != nil {
		return err
	}
	if err := os.Truncate(esp, espBytes); err != nil {
		return err
	}
	files := map[string][]byte{
		"loader.conf":  templates.MustRender("bake/loader.conf", nil),
		"hardway.conf": templates.MustRender("bake/hardway.conf", map[string]any{"Subject": j.Subject, "Roles": j.Roles, "Options": kernelCmdline(disk)}),
	}
	fatTime := time.Unix(max(epoch.Unix, fatEpoch), 0)
	for n, data := range files {
		if err := os.WriteFile(filepath.Join(work, n), data, 0o644); err != nil {
			return err
		}
		// mcopy -m keeps the file's mtime, which must not be now.
		if err := os.Chtimes(filepath.Join(work, n), fatTime, fatTime); err != nil {
			return err
		}
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

// inRoot returns the host path of p inside the extracted tree root,
// following its symlinks inside root.
func inRoot(root, p string) (string, error) {
	cur := "/"
	rest := strings.Split(strings.TrimPrefix(p, "/"), "/")
	for hops := 0; len(rest) > 0; {
		c := rest[0]
		rest = rest[1:]
		if c == "" || c == "." {
			continue
		}
		if c == ".." {
			cur = path.Dir(cur)
			continue
		}
		next := path.Join(cur, c)
		st, err := os.Lstat(filepath.Join(root, next))
		if err != nil {
			return "", fmt.Errorf("%s is not in the image", p)
		}
		if st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		if hops++; hops > 40 {
			return "", fmt.Errorf("%s: too many symbolic links", p)
		}
		t, err := os.Readlink(filepath.Join(root, next))
		if err != nil {
			return "", err
		}
		if strings.HasPrefix(t, "/") {
			cur = "/"
		}
		rest = append(strings.Split(t, "/"), rest...)
	}
	host := filepath.Join(root, cur)
	st, err := os.Stat(host)
	if err != nil || !st.Mode().IsRegular() {
		return "", fmt.Errorf("%s (%s) is not a regular file in the image", p, cur)
	}
	return host, nil
}
