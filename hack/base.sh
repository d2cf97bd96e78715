#!/usr/bin/env bash
# Build a Debian bookworm base root filesystem for `hardway bake`, cached.
#
# Usage:
#   hack/base.sh             the full base: what every role and target needs
#   hack/base.sh --small     a small base for fast tests: minbase + systemd, iptables
#   hack/base.sh --kvm       a small base that boots as a KVM disk image: minbase +
#                            systemd, linux-image-amd64 initramfs-tools systemd-boot
#                            cloud-init (role images take their node from a seed),
#                            qemu-guest-agent, iptables conntrack (workers), and the
#                            distribution's pieces of binaries.mode packaged: containerd,
#                            runc, containernetworking-plugins, etcd-server
#   hack/base.sh path [--small|--kvm]
#                            print the cached tarball's path without building;
#                            prints nothing and exits 1 when it is not built
#   hack/base.sh --force ... rebuild even when the tarball is cached
#
# The full base is written indexed (`hardway base index`: the same tar stream
# as independent zstd frames after an index of the paths each holds, still a
# .tar.zst for every tool), so that LXC bakes pass over its kernel undecoded;
# a cached full base written before is indexed in place. The hardway binary
# is $HARDWAY, else this checkout's bin/hardway (make build).
#
# A tarball is cached with the package list it was built from (<tarball>.pkgs);
# when this script's list changes, the next run rebuilds it.
#
# Output (zstd-compressed tar, numeric owners, xattrs, entries sorted by name;
# the full base indexed):
#   ${HARDWAY_CACHE:-$HOME/.cache/hardway}/base/debian-12-base.tar.zst    (full)
#   ${HARDWAY_CACHE:-$HOME/.cache/hardway}/base/debian-12-small.tar.zst   (--small)
#   ${HARDWAY_CACHE:-$HOME/.cache/hardway}/base/debian-12-kvm.tar.zst     (--kvm)
#
# Needs root (debootstrap chroots and creates device nodes), debootstrap, tar
# and zstd, and the Debian mirror of this machine's APT sources (override with
# HARDWAY_MIRROR=http://...). Safe to run in parallel: a lock serialises builds
# of one variant, the tarball is written to a temp file and renamed into place.
#
# What the full base holds, and why (the README's "What a base must contain"):
#   systemd systemd-sysv dbus     init; hardway's units; systemd-networkd (in systemd)
#   iproute2                      ip, for operators and the network units
#   openssh-server                root's authorized_keys and the gateway's bastion
#   ca-certificates               TLS trust for tools in the node
#   linux-image-amd64             a kernel and initrd for KVM disk images
#   systemd-boot                  the UEFI boot loader of KVM disk images
#   cloud-init                    KVM nodes booted by NoCloud (bake disables it in LXC templates)
#   conntrack socat ipset iptables  kube-proxy and the kubelet on workers
#   haproxy keepalived            the lb role (packaged: hardway writes their configs)
#   chrony                        time sync on KVM nodes (LXC nodes use the host's clock)
#   qemu-guest-agent              qm's `agent: enabled=1` (create-nodes.sh sets it on VMs):
#                                 shutdown, fs-freeze for backups, addresses in the GUI
# Not included: systemd-resolved (in bookworm, but it turns /etc/resolv.conf into
# its stub link, which Proxmox writes for containers), systemd-timesyncd (chrony
# replaces it). The small base is minbase + systemd systemd-sysv dbus iproute2
# iptables conntrack: enough to boot a container with systemd-nspawn and run
# etcd, the control plane or a worker from upstream binaries, about a third
# of the full base's size.
set -euo pipefail

readonly SUITE=bookworm
# python3-cffi-backend is cloud-init's (through python3-cryptography), named
# here because debootstrap does not resolve the virtual packages it provides.
readonly FULL_PKGS=(systemd systemd-sysv dbus iproute2 openssh-server ca-certificates
  linux-image-amd64 systemd-boot cloud-init python3-cffi-backend conntrack socat ipset
  iptables haproxy keepalived chrony qemu-guest-agent)
# The small base boots etcd, the control plane and a worker (kube-proxy needs
# iptables and conntrack) in systemd-nspawn.
readonly SMALL_PKGS=(systemd systemd-sysv dbus iproute2 iptables conntrack)
# The kvm base: init plus what `hardway bake --format kvm` needs from a base
# (a kernel, its initrd, the UEFI boot loader; cloud-init for role images),
# the guest agent VMs are created with, and what a worker needs from a base
# (iptables, conntrack), for the boot tests of an etcd node and a worker;
# and what binaries.mode packaged takes from the distribution (the seed's KVM
# cluster, examples/seed-kvm.yaml): containerd 1.6 (with its shim and ctr),
# runc, the CNI plugins under /usr/lib/cni and etcd 3.4. Kubernetes itself
# Debian does not package: bake adds the pinned release binaries.
readonly KVM_PKGS=(systemd systemd-sysv dbus iproute2 linux-image-amd64 initramfs-tools systemd-boot cloud-init python3-cffi-backend
  qemu-guest-agent iptables conntrack containerd runc containernetworking-plugins etcd-server)
# The services packages enable that are a role's, not every node's: a node's
# tree enables them where its roles run them (etcd.service and its own unit on
# etcd members, containerd.service on packaged workers). Left enabled, every
# node of the base would start a stray etcd on 127.0.0.1:2379.
readonly ROLE_UNITS=(etcd.service containerd.service)

CACHE_BASE="${HARDWAY_CACHE:-${HOME}/.cache/hardway}/base"
readonly CACHE_BASE

log() { printf 'base.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,23p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# Work dirs to remove on exit. A chroot may still have /proc or /sys mounted
# when debootstrap fails half-way: unmount first, and never cross a file system.
CLEANUP=()
cleanup() {
  local d m
  for d in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do
    [[ -n "${d}" && -e "${d}" ]] || continue
    # Deepest mount points first.
    while read -r m; do
      umount -l -- "${m}" 2>/dev/null || true
    done < <(awk -v d="${d}" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    rm -rf --one-file-system -- "${d}"
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# mirror prints the Debian mirror: HARDWAY_MIRROR, else the first URI of this
# machine's APT sources that serves the suite (deb822 or one-line format).
mirror() {
  local f uri
  if [[ -n "${HARDWAY_MIRROR:-}" ]]; then
    printf '%s\n' "${HARDWAY_MIRROR}"
    return
  fi
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f "${f}" ]] || continue
    uri="$(awk -v s="${SUITE}" '
      /^URIs:/ { u = $2 }
      /^Suites:/ { for (i = 2; i <= NF; i++) if ($i == s) found = 1 }
      /^$/ { if (found && u != "") { print u; exit } u = ""; found = 0 }
      END { if (found && u != "") print u }' "${f}" | head -n1)"
    [[ -n "${uri}" ]] && { printf '%s\n' "${uri}"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f "${f}" ]] || continue
    uri="$(awk -v s="${SUITE}" '$1 == "deb" {
      for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i ~ /:\/\//) { if ($(i + 1) == s) { print $i; exit } break } }' "${f}")"
    [[ -n "${uri}" ]] && { printf '%s\n' "${uri}"; return; }
  done
  die "no APT source for ${SUITE} in /etc/apt; set HARDWAY_MIRROR"
}

# tidy removes what debootstrap leaves that belongs to the build machine or to
# APT's caches, so the base holds only the system itself. The machine id and SSH
# host keys are left in place: bake's sysprep removes them (and tests prove it).
tidy() {
  local root="$1"
  rm -rf -- "${root}"/var/cache/apt/archives/*.deb "${root}"/var/cache/apt/*.bin \
    "${root}"/var/lib/apt/lists/* "${root}"/var/log/bootstrap.log "${root}"/var/log/apt/* \
    "${root}"/var/log/dpkg.log "${root}"/var/cache/debconf/*-old "${root}"/var/lib/dpkg/*-old
  # debootstrap copies the build machine's resolver and host name.
  : >"${root}/etc/resolv.conf"
  printf 'localhost\n' >"${root}/etc/hostname"
  local u
  for u in "${ROLE_UNITS[@]}"; do
    if [[ -e "${root}/usr/lib/systemd/system/${u}" ]]; then
      systemctl --root="${root}" --quiet disable "${u}"
    fi
  done
}

# pkglist is what <tarball>.pkgs records: the suite and the packages.
pkglist() { printf '%s:' "${SUITE}"; printf ' %s' "$@"; printf '\n'; }

# cached says whether the tarball out exists, built from the packages given.
cached() {
  local out="$1"
  shift
  [[ -s "${out}" && -f "${out}.pkgs" && "$(cat -- "${out}.pkgs")" == "$(pkglist "$@")" ]]
}

# indexed says whether the tarball starts with the skippable zstd frame
# (magic 0x184D2A5D, little-endian) that holds hardway's index.
indexed() { [[ "$(head -c 4 -- "$1" | od -An -tx1 | tr -d ' \n')" == "5d2a4d18" ]]; }

# index_base rewrites the tarball in place as an indexed base (atomically:
# hardway writes a temp file and renames it).
index_base() {
  local tarball="$1" hw="${HARDWAY:-$(dirname -- "${BASH_SOURCE[0]}")/../bin/hardway}"
  [[ -x "${hw}" ]] || die "${hw} not found: make build first (or set HARDWAY=path/to/hardway), to index the base"
  log "indexing ${tarball}"
  "${hw}" base index "${tarball}" >&2 || die "hardway base index ${tarball} failed"
}

# build writes out from the packages (cached), indexed when index is 1.
build() {
  local out="$1" index="$2" lock_fd tmp work start mirror_uri includes
  shift 2
  local -a pkgs=("$@")
  [[ "$(id -u)" -eq 0 ]] || die "debootstrap needs root"
  command -v debootstrap >/dev/null || die "debootstrap not found (apt-get install debootstrap)"
  command -v zstd >/dev/null || die "zstd not found (apt-get install zstd)"
  mkdir -p "${CACHE_BASE}"
  exec {lock_fd}>"${out}.lock"
  if ! flock -n "${lock_fd}"; then
    log "waiting for another build of ${out}"
    flock "${lock_fd}"
  fi
  if cached "${out}" "${pkgs[@]}"; then
    if [[ "${index}" -eq 1 ]] && ! indexed "${out}"; then
      index_base "${out}"
    fi
    log "${out} is cached"
    printf '%s\n' "${out}"
    return
  fi
  mirror_uri="$(mirror)"
  includes="$(IFS=,; printf '%s' "${pkgs[*]}")"
  work="$(mktemp -d "${CACHE_BASE}/.work.XXXXXX")"
  CLEANUP+=("${work}")
  log "debootstrap --variant=minbase --include=${includes} ${SUITE} from ${mirror_uri}"
  start="${SECONDS}"
  if ! debootstrap --variant=minbase --include="${includes}" "${SUITE}" "${work}/root" "${mirror_uri}" \
    >"${work}/debootstrap.log" 2>&1; then
    tail -n 30 "${work}/debootstrap.log" >&2
    [[ -f "${work}/root/debootstrap/debootstrap.log" ]] && tail -n 30 "${work}/root/debootstrap/debootstrap.log" >&2
    die "debootstrap failed (see above)"
  fi
  log "debootstrap took $((SECONDS - start))s"
  tidy "${work}/root"
  start="${SECONDS}"
  tmp="$(mktemp "${out}.tmp.XXXXXX")"
  CLEANUP+=("${tmp}")
  tar --sort=name --numeric-owner --xattrs --xattrs-include='*' -C "${work}/root" -cf - . |
    zstd -q -T0 -o "${tmp}" -f
  chmod 0644 "${tmp}"
  [[ "${index}" -eq 0 ]] || index_base "${tmp}"
  mv -f -- "${tmp}" "${out}"
  pkglist "${pkgs[@]}" >"${out}.pkgs.tmp" && mv -f -- "${out}.pkgs.tmp" "${out}.pkgs"
  log "packed $(du -h "${out}" | cut -f1) in $((SECONDS - start))s: ${out}"
  printf '%s\n' "${out}"
}

main() {
  local small=0 kvm=0 force=0 path_only=0 out index=1
  while [[ $# -gt 0 ]]; do
    case "$1" in
      --small) small=1 ;;
      --kvm) kvm=1 ;;
      --force) force=1 ;;
      path) path_only=1 ;;
      -h | --help | help) usage ;;
      *) usage ;;
    esac
    shift
  done
  local -a pkgs=("${FULL_PKGS[@]}")
  out="${CACHE_BASE}/debian-12-base.tar.zst"
  [[ "${small}" -eq 1 && "${kvm}" -eq 1 ]] && usage
  if [[ "${small}" -eq 1 ]]; then
    out="${CACHE_BASE}/debian-12-small.tar.zst" pkgs=("${SMALL_PKGS[@]}") index=0
  elif [[ "${kvm}" -eq 1 ]]; then
    out="${CACHE_BASE}/debian-12-kvm.tar.zst" pkgs=("${KVM_PKGS[@]}") index=0
  fi
  if [[ "${path_only}" -eq 1 ]]; then
    cached "${out}" "${pkgs[@]}" || exit 1
    printf '%s\n' "${out}"
    return
  fi
  [[ "${force}" -eq 1 ]] && rm -f -- "${out}" "${out}.pkgs"
  build "${out}" "${index}" "${pkgs[@]}"
}

main "$@"
