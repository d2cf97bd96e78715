package verify

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The boot of a baked KVM image the way Proxmox VE 8 starts a VM: qemu with
// the devices qemu-server's config_to_command makes of the node's
// proxmox.conf (the `qm create` options: q35, OVMF with a 4 MiB variable
// store and no enrolled keys, the image as scsi0 behind its own virtio-scsi
// controller, the NoCloud seed as the ide2 CD-ROM, net0's MAC on virtio-net,
// the guest agent's virtio-serial port), its NIC a tap on the run's bridge.
// What this machine cannot do as a Proxmox host does is applied visibly and
// printed, never in a generated file.

// OVMF, the UEFI firmware of `bios: ovmf` with `efitype=4m` (Debian's ovmf;
// Proxmox's pve-edk2-firmware ships the same builds). The variable store
// has no Secure Boot keys, as `pre-enrolled-keys=0` asks.
const (
	OVMFCode = "/usr/share/OVMF/OVMF_CODE_4M.fd"
	OVMFVars = "/usr/share/OVMF/OVMF_VARS_4M.fd"
)

// vmHost is what of this machine changes a VM's command line.
type vmHost struct {
	kvm      bool   // /dev/kvm is usable; else TCG, software emulation
	cpus     int    // the host's CPUs: a VM gets no more
	vms      int    // the VMs this run boots at once
	upScript string // attaches the tap to the bridge (Proxmox: qemu-server's pve-bridge)
}

// qemuFiles are the per-VM files of a command line.
type qemuFiles struct {
	image, seed   string // the disk image; the NoCloud seed ("" for none)
	vars          string // the VM's copy of the UEFI variable store
	serial, agent string // the console log; the guest agent's socket
}

// qemuArgs returns qemu's arguments for the VM c describes, with the
// differences this host forces, each a line to print. An option it does
// not know is refused rather than left out.
func qemuArgs(vmid string, c *PctConf, f qemuFiles, h vmHost) ([]string, []string, error) {
	var args, diffs []string
	add := func(a ...string) { args = append(args, a...) }
	handled := map[string]bool{}
	opt := func(k string) string { handled[k] = true; return c.Options[k] }

	add("-name", cmp.Or(opt("name"), "VM"+vmid), "-nodefaults", "-display", "none", "-monitor", "none")
	if m := cmp.Or(opt("machine"), "pc"); m != "q35" {
		return nil, nil, fmt.Errorf("machine %s: only q35 is booted here", m)
	}
	add("-machine", "q35")
	if h.kvm {
		add("-accel", "kvm", "-cpu", "host")
	} else {
		add("-accel", "tcg")
		diffs = append(diffs, "no usable KVM (/dev/kvm and the CPU's vmx or svm): software emulation (TCG), much slower than the host's KVM")
	}
	cores, err := strconv.Atoi(cmp.Or(opt("cores"), "1"))
	if err != nil || cores < 1 {
		return nil, nil, fmt.Errorf("cores %q", c.Options["cores"])
	}
	vms := max(1, h.vms)
	switch share := max(1, h.cpus/vms); {
	case !h.kvm && cores > share:
		// Emulated vCPUs are host threads; more of them than the host has
		// CPUs leave a guest's vCPUs waiting for each other, and its
		// kernel reports soft lockups and stalls instead of booting.
		diffs = append(diffs, fmt.Sprintf("cores %d: %d under software emulation, this host's %d CPUs shared by its %d VMs", cores, share, h.cpus, vms))
		cores = share
	case cores > h.cpus:
		diffs = append(diffs, fmt.Sprintf("cores %d: %d, the CPUs of this host", cores, h.cpus))
		cores = h.cpus
	}
	add("-smp", fmt.Sprintf("%d,sockets=1,cores=%d", cores, cores))
	add("-m", cmp.Or(opt("memory"), "512"))

	if b := opt("bios"); b != "ovmf" {
		return nil, nil, fmt.Errorf("bios %q: only ovmf (UEFI) is booted here", b)
	}
	efi := netOptions(opt("efidisk0"))
	if efi["efitype"] != "4m" || efi["pre-enrolled-keys"] == "1" {
		return nil, nil, fmt.Errorf("efidisk0 %q: only efitype=4m without enrolled keys is booted here", c.Options["efidisk0"])
	}
	add("-drive", "if=pflash,unit=0,format=raw,readonly=on,file="+OVMFCode,
		"-drive", "if=pflash,unit=1,format=raw,file="+f.vars)
	diffs = append(diffs, "efidisk0: a copy of "+OVMFVars+" in the run's directory")

	if s := opt("scsihw"); s != "virtio-scsi-single" {
		return nil, nil, fmt.Errorf("scsihw %q: only virtio-scsi-single is booted here", s)
	}
	handled["scsi0"] = true
	format := "raw"
	if strings.HasSuffix(f.image, ".qcow2") {
		format = "qcow2"
	}
	add("-device", "virtio-scsi-pci,id=virtioscsi0",
		"-drive", "file="+f.image+",if=none,id=drive-scsi0,format="+format+",snapshot=on,cache=unsafe",
		"-device", "scsi-hd,bus=virtioscsi0.0,channel=0,scsi-id=0,lun=0,drive=drive-scsi0,id=scsi0,bootindex=100")
	diffs = append(diffs, "scsi0: "+filepath.Base(f.image)+" itself, not imported into a storage nor grown to the node's disk size; writes go to a snapshot that is dropped at the end")
	if b := opt("boot"); b != "" && b != "order=scsi0" {
		return nil, nil, fmt.Errorf("boot %q: only order=scsi0 is booted here", b)
	}

	if v := opt("ide2"); v != "" {
		if !strings.HasSuffix(v, ":cloudinit") || f.seed == "" {
			return nil, nil, fmt.Errorf("ide2 %q: only a cloudinit drive with the node's seed.iso is booted here", v)
		}
		opt("cicustom")
		add("-drive", "file="+f.seed+",if=none,id=drive-ide2,media=cdrom,format=raw,readonly=on",
			"-device", "ide-cd,bus=ide.2,unit=0,drive=drive-ide2,id=ide2")
		diffs = append(diffs, "ide2 cloudinit: the node's seed.iso from generate, which holds the cicustom snippets' user-data, network-config and meta-data")
	}
	for i := 0; i < 10; i++ {
		k := "net" + strconv.Itoa(i)
		v := opt(k)
		if v == "" {
			continue
		}
		d := netOptions(v)
		mac := d["virtio"]
		if mac == "" {
			return nil, nil, fmt.Errorf("%s %q: only virtio NICs are booted here", k, v)
		}
		add("-netdev", fmt.Sprintf("type=tap,id=%s,ifname=tap%si%d,script=%s,downscript=no", k, vmid, i, h.upScript),
			"-device", fmt.Sprintf("virtio-net-pci,mac=%s,netdev=%s,id=%s", mac, k, k))
		diffs = append(diffs, fmt.Sprintf("%s: bridge %s is the run's bridge br0, in the hub namespace", k, d["bridge"]))
	}
	if s := opt("serial0"); s != "" {
		if s != "socket" {
			return nil, nil, fmt.Errorf("serial0 %q: only socket is booted here", s)
		}
		add("-serial", "file:"+f.serial)
		diffs = append(diffs, "serial0: the console goes to "+f.serial+" (Proxmox: a socket for qm terminal)")
	}
	if a := netOptions(opt("agent")); a["enabled"] == "1" || a[""] == "1" {
		add("-chardev", "socket,path="+f.agent+",server=on,wait=off,id=qga0",
			"-device", "virtio-serial,id=qga0",
			"-device", "virtserialport,chardev=qga0,name=org.qemu.guest_agent.0")
	}
	// l26: qemu-server derives only defaults from it; the others are
	// Proxmox's own records of the guest.
	for _, k := range []string{"ostype", "description", "tags"} {
		opt(k)
	}
	if opt("onboot") == "1" {
		diffs = append(diffs, "onboot: started by verify once the control plane is up")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Options)) {
		if !handled[k] {
			return nil, nil, fmt.Errorf("option %s: not booted here", k)
		}
	}
	if len(c.Raw) > 0 {
		return nil, nil, fmt.Errorf("raw %s: a VM has no lxc.* keys", c.Raw[0][0])
	}
	return args, diffs, nil
}

// kvmHost reads what this machine offers the vms VMs of a run.
func kvmHost(upScript string, vms int) vmHost {
	return vmHost{kvm: kvmUsable(), cpus: runtime.NumCPU(), vms: vms, upScript: upScript}
}

// kvmUsable reports whether qemu can use KVM: /dev/kvm opens, and the CPU
// has virtualisation extensions. Some build VMs have a /dev/kvm without
// them (no vmx or svm flag), where a guest dies at its first instruction or
// qemu at its first MSR: they get TCG.
func kvmUsable() bool {
	if unix.Access("/dev/kvm", unix.R_OK|unix.W_OK) != nil {
		return false
	}
	data, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return false
	}
	for _, l := range strings.Split(string(data), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "flags" {
			f := strings.Fields(v)
			return slices.Contains(f, "vmx") || slices.Contains(f, "svm")
		}
	}
	return false
}

// vm is one booted VM; qemu is its process.
type vm struct {
	booted
	agent  qga
	serial string // the console log
}

// enter: a VM has no shell from the host but its console's log and SSH
// (the spec's authorized keys) from the hub.
func (m *vm) enter() string {
	return fmt.Sprintf("ssh from the hub (a key of spec.ssh.authorizedKeys); console log %s; guest agent socket %s", m.serial, string(m.agent))
}

// journal is the tail of a unit's journal in the VM, read through the
// guest agent; without an agent answering, the tail of the console.
func (m *vm) journal(ctx context.Context, unit string, lines int) string {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, code, err := m.agent.exec(ctx, "journalctl", "--no-pager", "-o", "short-monotonic", "-n", strconv.Itoa(lines), "-u", unit)
	switch {
	case err != nil:
		return fmt.Sprintf("(journal of %s: %v; the console's last lines:)\n%s", unit, err, Tail(m.serial, lines))
	case code != 0:
		return fmt.Sprintf("(journalctl exited %d: %s)", code, lastLine(out))
	}
	return strings.TrimRight(out, "\n")
}

// peakMemory is qemu's peak resident set (VmHWM): the guest's memory as
// the host paid for it.
func (m *vm) peakMemory() (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", m.proc.PID))
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kib, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib << 10, err
		}
	}
	return 0, fmt.Errorf("%s: no VmHWM for qemu (pid %d)", m.name, m.proc.PID)
}

// run runs a command in the VM through the guest agent.
func (m *vm) run(ctx context.Context, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, code, err := m.agent.exec(ctx, argv...)
	if err == nil && code != 0 {
		err = fmt.Errorf("%s: exit status %d: %s", strings.Join(argv, " "), code, lastLine(out))
	}
	return out, err
}

// poweroff asks the guest agent to power the VM off (what `qm shutdown`
// does with the agent enabled) and waits for qemu to exit; after timeout,
// or with no agent answering, it kills qemu by its PID.
func (m *vm) poweroff(timeout time.Duration) error {
	if done, _ := m.proc.Exited(); done {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	err := m.agent.call(ctx, "guest-shutdown", map[string]any{"mode": "powerdown"}, nil)
	cancel()
	if err == nil {
		select {
		case <-m.proc.done:
			return nil
		case <-time.After(timeout):
			err = fmt.Errorf("not off within %s", timeout)
		}
	}
	_ = unix.Kill(m.proc.PID, unix.SIGKILL)
	select {
	case <-m.proc.done:
	case <-time.After(15 * time.Second):
		return fmt.Errorf("%s: qemu (pid %d) still runs after SIGKILL", m.name, m.proc.PID)
	}
	return fmt.Errorf("%s: the guest agent's power-off: %v: qemu (pid %d) was killed", m.name, err, m.proc.PID)
}
