package bake

import (
	"errors"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	"github.com/hardway-dev/hardway/rootfs"
)

// kvmTools are the programs a KVM bake runs, and their Debian packages.
var kvmTools = map[string]string{
	"mkfs.vfat": "dosfstools", "mcopy": "mtools", "mmd": "mtools",
}

// checkTools reports every program a KVM bake needs and cannot find.
func checkTools(o KVMOptions) error {
	tools := map[string]string{}
	for k, v := range kvmTools {
		tools[k] = v
	}
	if slices.Contains(o.Formats, ImageQCOW2) {
		tools["qemu-img"] = "qemu-utils"
	}
	var missing []string
	for t, pkg := range tools {
		if _, err := exec.LookPath(t); err != nil {
			missing = append(missing, fmt.Sprintf("%s (apt-get install %s)", t, pkg))
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		return fmt.Errorf("a KVM bake needs %s", strings.Join(missing, ", "))
	}
	return nil
}

// checkKVMBase is checkBase plus what a bootable disk needs from the base
// and, for a role image, cloud-init.
func checkKVMBase(name string, info *rootfs.BaseInfo, roleImage bool) error {
	var missing []string
	var be *BaseError
	if err := checkBase(name, info); errors.As(err, &be) {
		missing = be.Missing
	} else if err != nil {
		return err
	}
	if _, ok := info.Link(kernelLink); !ok {
		missing = append(missing, "no kernel (the /vmlinuz link to /boot/vmlinuz-*): install linux-image-amd64 in the base")
	}
	if _, ok := info.Link(initrdLink); !ok {
		missing = append(missing, "no initrd (the /initrd.img link to /boot/initrd.img-*): install initramfs-tools and linux-image-amd64 in the base")
	}
	if !info.Has(SystemdBootEFI) {
		missing = append(missing, "no UEFI boot loader ("+SystemdBootEFI+"): install systemd-boot in the base")
	}
	if roleImage && !info.Has("/usr/bin/cloud-init") {
		missing = append(missing, "no cloud-init (/usr/bin/cloud-init), which gives a role image its node's identity from the NoCloud seed: install cloud-init in the base")
	}
	if len(missing) > 0 {
		return &BaseError{Base: name, Missing: missing}
	}
	return nil
}
