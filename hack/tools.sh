#!/usr/bin/env bash
# Build pinned helper binaries from the Go module proxy and cache them by version.
#
# Usage:
#   hack/tools.sh GROUP...        build (if needed) and print each group's bin dir
#   hack/tools.sh path GROUP      print GROUP's cached bin dir without building;
#                                 prints nothing and exits 1 when it is not built
#
# GROUP is one of: k8s etcd cfssl packer packer-sdc containerd runc cni crictl
# coredns all runtime ("all": k8s etcd cfssl packer packer-sdc, what the tests
# drive; "runtime": containerd runc cni crictl, make runtime)
#
#   k8s         kube-apiserver, -controller-manager, -scheduler, kubelet,
#               kube-proxy, kubeadm, kubectl
#   etcd        etcd, etcdctl
#   cfssl       cfssl, cfssljson
#   packer      Packer core, which the packer/ module's acceptance tests drive
#   packer-sdc  packer-plugin-sdk's generator (HCL2 specs, docs, plugin-check);
#               hack/packer.sh generate runs it over packer/
#   containerd  containerd, containerd-shim-runc-v2, ctr   (a worker's runtime)
#   runc        runc: cgo, libseccomp linked in statically (libseccomp-dev and
#               pkg-config, see hack/deps.sh)
#   cni         the CNI plugins the worker's network configuration uses:
#               bridge, host-local, loopback, portmap
#   crictl      crictl (cri-tools), an operator's CRI client on workers
#   coredns     coredns, the binary of the CoreDNS image that `make images`
#               packs (tools/images); not a host tool, so not part of "all"
#
# Each group has its own Go module under tools/<group>/ whose go.mod pins the
# exact version (the module proxy here refuses @latest, so `go install pkg@v`
# does not work). Binaries land in
#   ${HARDWAY_CACHE:-$HOME/.cache/hardway}/bin/<group>-<version>/<binary>
# and a rerun with the binaries present does no Go work at all.
#
# Safe to run in parallel: a per-group lock (flock, when present) serialises
# builds of the same group, and every build goes to a temp dir next to the
# destination that is renamed into place only once complete and verified.
set -euo pipefail

# "all" is what the test suite drives; "runtime" is a worker's pinned runtime,
# which no test boots yet (issue 11): it adds about 13 CPU-minutes to a fresh
# machine, so make test does not build it until a test needs it.
readonly GROUPS_ALL=(k8s etcd cfssl packer packer-sdc)
readonly GROUPS_RUNTIME=(containerd runc cni crictl)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
CACHE_BIN="${HARDWAY_CACHE:-${HOME}/.cache/hardway}/bin"
readonly CACHE_BIN

# Temp dirs to remove if we exit early (build failure, signal).
CLEANUP=()
cleanup() {
  local d
  for d in "${CLEANUP[@]+"${CLEANUP[@]}"}"; do
    [[ -n "${d}" ]] && rm -rf -- "${d}"
  done
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() { printf 'tools.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: hack/tools.sh GROUP...      build (if needed) and print the bin dir of each group
       hack/tools.sh path GROUP    print the cached bin dir of GROUP (exit 1 if not built)
groups: k8s etcd cfssl packer packer-sdc containerd runc cni crictl coredns all runtime
EOF
  exit 2
}

# group_config GROUP sets, for GROUP:
#   MODULE   module whose required version (in tools/GROUP/go.mod) names the cache dir
#   PKGS     main packages, built in one `go build` so they share the compile cache
#   BINS     final binary names, in the same order as PKGS
#   TAGS     build tags
#   CGO      CGO_ENABLED for the build (0: static pure-Go binaries)
#   BUILDFLAGS  extra `go build` flags
#   CHECK_ALSO  text every binary's version output must contain besides VERSION
# group_ldflags sets LDFLAGS (version stamping) and check_version runs each
# binary's version command.
group_config() {
  TAGS=""
  LDFLAGS=""
  CGO=0
  BUILDFLAGS=()
  CHECK_ALSO=""
  case "$1" in
    k8s)
      MODULE=k8s.io/kubernetes
      PKGS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl)
      PKGS=("${PKGS[@]/#/k8s.io/kubernetes/cmd/}")
      BINS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubeadm kubectl)
      # Same tags as upstream hack/lib/golang.sh for non-debug builds.
      TAGS=selinux,notest,grpcnotrace
      ;;
    etcd)
      MODULE=go.etcd.io/etcd/server/v3
      PKGS=(go.etcd.io/etcd/server/v3 go.etcd.io/etcd/etcdctl/v3)
      BINS=(etcd etcdctl)
      ;;
    cfssl)
      MODULE=github.com/cloudflare/cfssl
      PKGS=(github.com/cloudflare/cfssl/cmd/cfssl github.com/cloudflare/cfssl/cmd/cfssljson)
      BINS=(cfssl cfssljson)
      ;;
    packer)
      MODULE=github.com/hashicorp/packer
      PKGS=(github.com/hashicorp/packer)
      BINS=(packer)
      ;;
    packer-sdc)
      MODULE=github.com/hashicorp/packer-plugin-sdk
      PKGS=(github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc)
      BINS=(packer-sdc)
      ;;
    containerd)
      MODULE=github.com/containerd/containerd/v2
      BINS=(containerd containerd-shim-runc-v2 ctr)
      PKGS=("${BINS[@]/#/${MODULE}/cmd/}")
      # Upstream's Makefile tags. CGO off, as upstream builds the shim: the
      # only cgo part is the btrfs snapshotter, which a worker does not use.
      TAGS=urfave_cli_no_docs
      ;;
    runc)
      MODULE=github.com/opencontainers/runc
      PKGS=(github.com/opencontainers/runc)
      BINS=(runc)
      # Upstream's `make static`: nsenter and libseccomp need cgo; a static
      # PIE runs on any worker base, with or without libseccomp2.
      CGO=1
      TAGS=seccomp,urfave_cli_no_docs,netgo,osusergo
      BUILDFLAGS=(-buildmode=pie)
      CHECK_ALSO="libseccomp: "
      ;;
    cni)
      MODULE=github.com/containernetworking/plugins
      BINS=(bridge host-local loopback portmap)
      PKGS=(main/bridge ipam/host-local main/loopback meta/portmap)
      PKGS=("${PKGS[@]/#/${MODULE}/plugins/}")
      ;;
    crictl)
      MODULE=sigs.k8s.io/cri-tools
      PKGS=(sigs.k8s.io/cri-tools/cmd/crictl)
      BINS=(crictl)
      ;;
    coredns)
      MODULE=github.com/coredns/coredns
      PKGS=(github.com/coredns/coredns)
      BINS=(coredns)
      ;;
    *)
      die "unknown tool group '$1' (want one of: ${GROUPS_ALL[*]} ${GROUPS_RUNTIME[*]} coredns all runtime)"
      ;;
  esac
}

# Linker flags; needs VERSION.
group_ldflags() {
  case "$1" in
    k8s)
      local major minor rest pkg key val
      rest="${VERSION#v}"
      major="${rest%%.*}"
      rest="${rest#*.}"
      minor="${rest%%.*}"
      for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
        for key in gitVersion gitMajor gitMinor; do
          case "${key}" in
            gitVersion) val="${VERSION}" ;;
            gitMajor) val="${major}" ;;
            gitMinor) val="${minor}" ;;
          esac
          LDFLAGS+=" -X ${pkg}.${key}=${val}"
        done
      done
      ;;
    etcd)
      # Version itself is a constant in etcd; GitSHA is the only stamped var.
      LDFLAGS="-X go.etcd.io/etcd/api/v3/version.GitSHA=${VERSION}"
      ;;
    cfssl)
      LDFLAGS="-X github.com/cloudflare/cfssl/cli/version.version=${VERSION#v}"
      ;;
    containerd)
      LDFLAGS="-X ${MODULE}/version.Version=${VERSION} -X ${MODULE}/version.Package=${MODULE}"
      ;;
    runc)
      # runc embeds its VERSION file; the link is static (see group_config).
      LDFLAGS="-linkmode external -extldflags -static-pie"
      ;;
    cni)
      LDFLAGS="-X ${MODULE}/pkg/utils/buildversion.BuildVersion=${VERSION}"
      ;;
    crictl)
      LDFLAGS="-X ${MODULE}/pkg/version.Version=${VERSION#v}"
      ;;
    coredns)
      # CoreVersion is a constant; GitCommit is the only stamped var.
      LDFLAGS="-X ${MODULE}/coremain.GitCommit=${VERSION}"
      ;;
  esac
}

# check_version GROUP BIN_PATH: run the binary's version command and make sure
# it reports VERSION.
check_version() {
  local group="$1" bin="$2" want out
  local -a cmd
  case "${group}:${bin##*/}" in
    *:kubectl) cmd=("${bin}" version --client) ;;
    *:kubeadm) cmd=("${bin}" version -o short) ;;
    *:etcdctl | *:cfssl | *:packer) cmd=("${bin}" version) ;;
    *:cfssljson | *:coredns) cmd=("${bin}" -version) ;;
    *:containerd-shim-runc-v2) cmd=("${bin}" -v) ;;
    # A CNI plugin run without CNI_COMMAND prints "CNI <name> plugin <version>".
    cni:*) cmd=("${bin}") ;;
    *) cmd=("${bin}" --version) ;;
  esac
  case "${group}" in
    k8s) want="${VERSION}" ;;
    *) want="${VERSION#v}" ;;
  esac
  if ! out="$("${cmd[@]}" 2>&1)"; then
    printf '%s\n' "${out}" >&2
    die "built ${bin##*/} does not run: ${cmd[*]}"
  fi
  if [[ "${out}" != *"${want}"* ]]; then
    printf '%s\n' "${out}" >&2
    die "built ${bin##*/} does not report version ${want}"
  fi
  if [[ -n "${CHECK_ALSO}" && "${out}" != *"${CHECK_ALSO}"* ]]; then
    printf '%s\n' "${out}" >&2
    die "built ${bin##*/} does not report '${CHECK_ALSO}'"
  fi
}

# module_version GROUP prints the version of MODULE required by tools/GROUP/go.mod.
module_version() {
  local gomod="${ROOT}/tools/$1/go.mod" v
  [[ -f "${gomod}" ]] || die "missing ${gomod}"
  v="$(awk -v m="${MODULE}" '
    $1 == "require" && $2 == m { print $3; exit }
    $1 == m && $2 ~ /^v/ { print $2; exit }
  ' "${gomod}")"
  [[ -n "${v}" ]] || die "${gomod} does not require ${MODULE}"
  printf '%s\n' "${v}"
}

# complete DIR: every binary of the group is present and executable.
complete() {
  local b
  [[ -d "$1" ]] || return 1
  for b in "${BINS[@]}"; do
    [[ -x "$1/${b}" ]] || return 1
  done
}

# group_dir GROUP: configure GROUP and set VERSION and DEST.
group_dir() {
  group_config "$1"
  VERSION="$(module_version "$1")"
  DEST="${CACHE_BIN}/$1-${VERSION}"
}

build_group() {
  local group="$1" lock_fd="" tmp old start elapsed i src
  group_dir "${group}"
  if complete "${DEST}"; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go not found in PATH; needed to build ${group} ${VERSION}"
  if [[ "${CGO}" == 1 ]]; then
    command -v gcc >/dev/null 2>&1 || die "gcc not found in PATH; ${group} needs cgo"
  fi
  if [[ ",${TAGS}," == *,seccomp,* ]] && ! pkg-config --exists libseccomp 2>/dev/null; then
    die "${group} links libseccomp: install libseccomp-dev and pkg-config (make deps)"
  fi
  mkdir -p "${CACHE_BIN}"

  # Serialise concurrent builds of the same group; whoever waited re-checks.
  if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"${CACHE_BIN}/.${group}-${VERSION}.lock"
    if ! flock -n "${lock_fd}"; then
      log "waiting for another build of ${group} ${VERSION}"
      flock "${lock_fd}"
    fi
    if complete "${DEST}"; then
      exec {lock_fd}>&-
      return 0
    fi
  fi

  group_ldflags "${group}"
  tmp="$(mktemp -d "${CACHE_BIN}/.${group}-${VERSION}.tmp.XXXXXX")"
  CLEANUP+=("${tmp}")
  chmod 0755 "${tmp}" # mktemp makes it 0700; the published dir should be readable
  log "building ${group} ${VERSION} (${BINS[*]}) into ${DEST}"
  start="${SECONDS}"
  mkdir -p "${tmp}/out"
  if ! (
    cd "${ROOT}/tools/${group}"
    export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED="${CGO}"
    go build -trimpath "${BUILDFLAGS[@]+"${BUILDFLAGS[@]}"}" -tags="${TAGS}" -ldflags="-s -w ${LDFLAGS}" -o "${tmp}/out/" "${PKGS[@]}"
  ); then
    die "building ${group} ${VERSION} failed (go build in tools/${group}; see the errors above)"
  fi

  # `go build -o DIR` names each binary after the last element of its package
  # path, or the one before a major version suffix (etcd's server main package
  # is go.etcd.io/etcd/server/v3, so it comes out as "server").
  for i in "${!PKGS[@]}"; do
    src="${PKGS[i]##*/}"
    if [[ "${src}" =~ ^v[0-9]+$ ]]; then
      src="${PKGS[i]%/*}"
      src="${src##*/}"
    fi
    [[ -x "${tmp}/out/${src}" ]] || die "go build did not produce ${src} for ${PKGS[i]}"
    mv -f -- "${tmp}/out/${src}" "${tmp}/${BINS[i]}"
  done
  rmdir -- "${tmp}/out"
  for i in "${BINS[@]}"; do
    check_version "${group}" "${tmp}/${i}"
  done

  # Publish atomically. A stale incomplete DEST (e.g. the group gained a
  # binary) is moved aside first; a complete one from a racing run wins.
  if [[ -e "${DEST}" ]] && ! complete "${DEST}"; then
    old="$(mktemp -d "${CACHE_BIN}/.${group}-${VERSION}.old.XXXXXX")"
    CLEANUP+=("${old}")
    mv -- "${DEST}" "${old}/" 2>/dev/null || true
  fi
  if ! mv -T -- "${tmp}" "${DEST}" 2>/dev/null; then
    complete "${DEST}" || die "could not move ${tmp} to ${DEST}"
  fi
  elapsed=$((SECONDS - start))
  log "built ${group} ${VERSION} in ${elapsed}s"
  if [[ -n "${lock_fd}" ]]; then
    exec {lock_fd}>&-
  fi
}

expand_groups() {
  local g
  for g in "$@"; do
    if [[ "${g}" == all ]]; then
      printf '%s\n' "${GROUPS_ALL[@]}"
    elif [[ "${g}" == runtime ]]; then
      printf '%s\n' "${GROUPS_RUNTIME[@]}"
    else
      printf '%s\n' "${g}"
    fi
  done
}

main() {
  local g
  local -a groups dirs=()
  [[ $# -ge 1 ]] || usage
  case "$1" in
    -h | --help | help) usage ;;
    path)
      [[ $# -eq 2 && "$2" != all ]] || usage
      group_dir "$2"
      complete "${DEST}" || exit 1
      printf '%s\n' "${DEST}"
      return 0
      ;;
  esac
  mapfile -t groups < <(expand_groups "$@")
  for g in "${groups[@]}"; do
    group_config "${g}" # validate every name before building anything
  done
  for g in "${groups[@]}"; do
    build_group "${g}"
    dirs+=("${DEST}")
  done
  printf '%s\n' "${dirs[@]}"
}

main "$@"
