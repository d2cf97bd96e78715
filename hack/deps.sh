#!/usr/bin/env bash
# Install the Debian packages that hardway's tests drive, when missing.
# Runs as root (CI); as another user it only reports what is missing.
set -euo pipefail

PKGS=(
  openssl            # openssl verify of every issued certificate
  systemd            # systemd-analyze verify of generated units
  cloud-init         # cloud-init schema of generated user-data
  haproxy keepalived # haproxy -c / keepalived -t of lb configs
  openssh-server     # sshd -t of the bastion config
  shellcheck         # create-nodes.sh
  xorriso            # reads the generated seed.iso
  genisoimage        # isoinfo, a second reader of seed.iso
  chrony             # chronyd -p of the chrony drop-ins
  ifupdown           # ifquery of the Proxmox host's bridge stanza
  curl procps        # HAProxy through the VIP; sysctl -p
  containerd runc containernetworking-plugins # containerd config dump, the real CNI bridge plugin
  debootstrap zstd systemd-container          # the base rootfs and booting baked templates
  bzip2 xz-utils     # compressed bases in the rootfs tests
  fakeroot dosfstools mtools qemu-utils qemu-system-x86 ovmf # KVM images: build and boot
  e2fsprogs util-linux iproute2 time
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
