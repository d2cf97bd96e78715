#!/usr/bin/env bash
# Install the Debian packages that hardway's tests drive, when missing.
# Runs as root (CI); as another user it only reports what is missing.
set -euo pipefail

# One package a line. The brackets name the commands our code looks up or
# runs from it: hack/depcheck's test holds every command the Go code of this
# repository looks up (exec.Command, exec.LookPath, and our helpers such as
# need(t, ...) and commontest.Tool) against them and hack/tools.sh's pinned
# tools, and checks on an installed machine that the package ships each one.
# A command added to a test without its package fails the quick loop.
PKGS=(
  openssl                     # [openssl] openssl verify of every issued certificate
  systemd                     # [systemd-analyze systemd-tmpfiles systemd-sysext] systemd-analyze verify of generated units; the /dev/kmsg tmpfiles link; merging the sysext images
  systemd-container           # [systemd-nspawn systemd-dissect] booting baked templates; reads the sysext images as systemd-sysext does
  squashfs-tools              # [mksquashfs unsquashfs] the systemd-sysext images of nodes booted by Ignition, and reading them back
  cloud-init                  # [cloud-init] cloud-init schema of generated user-data, its write_files module
  haproxy                     # [haproxy] haproxy -c, and HAProxy through the VIP
  keepalived                  # [keepalived] keepalived -t of lb configs
  openssh-server              # [sshd] sshd -t of the bastion config; the Packer SSH provisioner test's server
  openssh-client              # [ssh-keygen] host and client keys of the SSH tests
  sudo                        # [sudo] the Packer SSH provisioner test logs in as a user allowed sudo
  passwd                      # [useradd userdel] that user, made and removed by the test
  shellcheck                  # [shellcheck] create-nodes.sh
  xorriso                     # [xorriso] reads the generated seed.iso
  genisoimage                 # [isoinfo] a second reader of seed.iso
  chrony                      # [chronyd] chronyd -p of the chrony drop-ins
  ifupdown                    # [ifquery] ifquery of the Proxmox host's bridge stanza
  curl                        # [curl] HAProxy through the VIP
  procps                      # [sysctl] sysctl -p of generated sysctls
  containerd                  # [containerd ctr] containerd config dump, image import
  runc                        # the runtime containerd runs in the worker boot test
  gcc                         # hack/tools.sh runc: cgo (the Go toolchain runs it)
  libseccomp-dev              # hack/tools.sh runc: cgo with libseccomp (seccomp tag), linked statically
  pkg-config                  # hack/tools.sh runc finds libseccomp with it (the command comes from pkgconf)
  containernetworking-plugins # the real CNI bridge plugin (run by path)
  iptables                    # [iptables] kube-proxy's rules in the worker tests
  lxc                         # [lxc-start lxc-info lxc-usernsexec] boots templates as Proxmox does (LXC 5.0, what pct drives)
  debootstrap                 # hack/base.sh: the base rootfs
  zstd                        # [zstd] base tarballs, templates
  bzip2                       # [bzip2] compressed bases in the rootfs tests
  xz-utils                    # compressed bases in the rootfs tests
  dosfstools                  # [mkfs.vfat] the ESP of KVM images
  mtools                      # [mcopy mdir mmd mtype] writes and reads the ESP without a mount
  qemu-utils                  # [qemu-img] qcow2 images
  qemu-system-x86             # [qemu-system-x86_64] booting KVM images (TCG)
  ovmf                        # their UEFI firmware
  e2fsprogs                   # [mke2fs debugfs e2fsck] checks the ext4 root of KVM images (tests), mke2fs -d (bench-bake's baseline)
  fdisk                       # [sfdisk] reads the GPT of KVM images
  util-linux                  # [unshare setpriv blkid nsenter] private mount namespaces, dropping privileges, reads seed.iso; tools/images' pause test joins its PID namespace
  mount                       # [mount umount] mounts in the boot tests
  iproute2                    # [ip ss] network namespaces, veths, bridges; listening sockets
  libc-bin                    # [getent] user look-ups in the SSH test
  locales                     # [update-locale] cloud-init's locale module on our user-data (cloud-init depends on it, as on KVM nodes)
  coreutils                   # [cat chown cp env nproc seq sha256sum sleep timeout] used by tests and benchmarks
  tar                         # [tar] pct's extraction flags, overlay.tar
  bash                        # [bash] scripts under test
  dash                        # [sh] /bin/sh scripts under test
  time                        # /usr/bin/time -v in the benchmarks
)

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "deps.sh: missing Debian packages: ${missing[*]} (run as root: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "deps.sh: installing ${missing[*]}" >&2
# Packages must not start their daemons on the build machine.
policy=/usr/sbin/policy-rc.d
created=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy" && chmod 0755 "$policy" && created=1
fi
trap '[ $created -eq 1 ] && rm -f "$policy"' EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
