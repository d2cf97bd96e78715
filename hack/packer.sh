#!/usr/bin/env bash
# Build the pinned Packer tools from the Go module proxy and cache them by version.
#
# Usage:
#   hack/packer.sh TOOL...        build (if needed) and print each tool's bin dir
#   hack/packer.sh path TOOL      print TOOL's cached bin dir without building;
#                                 prints nothing and exits 1 when it is not built
#   hack/packer.sh generate       regenerate the plugin's checked-in files with
#                                 the pinned packer-sdc: go generate in packer/
#                                 (*.hcl2spec.go, docs-partials/), then the
#                                 rendered docs in packer/.web-docs/
#
# TOOL is one of: packer packer-sdc all
#
#   packer      Packer core (github.com/hashicorp/packer), which the acceptance
#               tests of the packer/ module drive (packer validate, build,
#               plugins install)
#   packer-sdc  packer-plugin-sdk's generator (HCL2 specs, docs partials,
#               plugin-check)
#
# The conventions are those of hack/tools.sh: each tool has its own Go module
# under tools/<tool>/ whose go.mod pins the exact version (the module proxy
# here refuses @latest, so `go install pkg@v` does not work). The binary lands
# in
#   ${HARDWAY_CACHE:-$HOME/.cache/hardway}/bin/<tool>-<version>/<tool>
# and a rerun with the binary present does no Go work at all. A per-tool lock
# (flock, when present) serialises concurrent builds, and every build goes to
# a temp dir that is renamed into place only once complete and verified.
set -euo pipefail

readonly TOOLS_ALL=(packer packer-sdc)

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
CACHE_BIN="${HARDWAY_CACHE:-${HOME}/.cache/hardway}/bin"
readonly CACHE_BIN

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

log() { printf 'packer.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  cat >&2 <<'EOF'
usage: hack/packer.sh TOOL...      build (if needed) and print the bin dir of each tool
       hack/packer.sh path TOOL    print the cached bin dir of TOOL (exit 1 if not built)
       hack/packer.sh generate     regenerate packer/'s HCL2 specs and docs with packer-sdc
tools: packer packer-sdc all
EOF
  exit 2
}

# tool_config TOOL sets, for TOOL:
#   MODULE   module whose required version (in tools/TOOL/go.mod) names the cache dir
#   PKG      main package
#   VERCMD   arguments that make the binary print its version
tool_config() {
  case "$1" in
    packer)
      MODULE=github.com/hashicorp/packer
      PKG=github.com/hashicorp/packer
      VERCMD=(version)
      ;;
    packer-sdc)
      MODULE=github.com/hashicorp/packer-plugin-sdk
      PKG=github.com/hashicorp/packer-plugin-sdk/cmd/packer-sdc
      VERCMD=(--version)
      ;;
    *)
      die "unknown tool '$1' (want one of: ${TOOLS_ALL[*]} all)"
      ;;
  esac
}

# module_version TOOL prints the version of MODULE required by tools/TOOL/go.mod.
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

# tool_dir TOOL: configure TOOL and set VERSION and DEST.
tool_dir() {
  tool_config "$1"
  VERSION="$(module_version "$1")"
  DEST="${CACHE_BIN}/$1-${VERSION}"
}

# check_version TOOL BIN: the built binary runs and reports VERSION.
check_version() {
  local out want="${VERSION#v}"
  if ! out="$("$2" "${VERCMD[@]}" 2>&1)"; then
    printf '%s\n' "${out}" >&2
    die "built $1 does not run: $2 ${VERCMD[*]}"
  fi
  if [[ "${out}" != *"${want}"* ]]; then
    printf '%s\n' "${out}" >&2
    die "built $1 does not report version ${want}"
  fi
}

build_tool() {
  local tool="$1" lock_fd="" tmp start
  tool_dir "${tool}"
  if [[ -x "${DEST}/${tool}" ]]; then
    return 0
  fi
  command -v go >/dev/null 2>&1 || die "go not found in PATH; needed to build ${tool} ${VERSION}"
  mkdir -p "${CACHE_BIN}"

  if command -v flock >/dev/null 2>&1; then
    exec {lock_fd}>"${CACHE_BIN}/.${tool}-${VERSION}.lock"
    if ! flock -n "${lock_fd}"; then
      log "waiting for another build of ${tool} ${VERSION}"
      flock "${lock_fd}"
    fi
    if [[ -x "${DEST}/${tool}" ]]; then
      exec {lock_fd}>&-
      return 0
    fi
  fi

  tmp="$(mktemp -d "${CACHE_BIN}/.${tool}-${VERSION}.tmp.XXXXXX")"
  CLEANUP+=("${tmp}")
  chmod 0755 "${tmp}"
  log "building ${tool} ${VERSION} into ${DEST}"
  start="${SECONDS}"
  if ! (
    cd "${ROOT}/tools/${tool}"
    export GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" CGO_ENABLED=0
    go build -trimpath -ldflags="-s -w" -o "${tmp}/${tool}" "${PKG}"
  ); then
    die "building ${tool} ${VERSION} failed (go build in tools/${tool}; see the errors above)"
  fi
  check_version "${tool}" "${tmp}/${tool}"

  if [[ -e "${DEST}" && ! -x "${DEST}/${tool}" ]]; then
    rm -rf -- "${DEST}"
  fi
  if ! mv -T -- "${tmp}" "${DEST}" 2>/dev/null; then
    [[ -x "${DEST}/${tool}" ]] || die "could not move ${tmp} to ${DEST}"
  fi
  log "built ${tool} ${VERSION} in $((SECONDS - start))s"
  if [[ -n "${lock_fd}" ]]; then
    exec {lock_fd}>&-
  fi
}

# generate runs the plugin's go:generate lines with the pinned packer-sdc.
# `packer-sdc struct-markdown` finds the plugin's root by walking up from the
# source file to a directory named packer-plugin-*, and gives up silently at
# one named packer (Packer's own repository), which is this module's
# directory. So the generators run in the module seen through a symlink
# named packer-plugin-hardway: the go command takes the logical working
# directory from PWD, and the files land in packer/ all the same.
generate() {
  local sdc tmp
  build_tool packer-sdc
  sdc="${DEST}"
  tmp="$(mktemp -d)"
  CLEANUP+=("${tmp}")
  ln -s "${ROOT}/packer" "${tmp}/packer-plugin-hardway"
  (
    cd "${tmp}/packer-plugin-hardway"
    export PATH="${sdc}:${PATH}" GOWORK=off GOFLAGS="-mod=mod -buildvcs=false"
    rm -rf docs-partials .web-docs
    find . -name '*.hcl2spec.go' -delete
    go generate ./...
    packer-sdc renderdocs -src docs -partials docs-partials -dst .web-docs
  ) || die "generating packer/ failed (see the errors above)"
  log "regenerated packer/: *.hcl2spec.go, docs-partials/, .web-docs/"
}

main() {
  local t
  local -a tools=() dirs=()
  [[ $# -ge 1 ]] || usage
  case "$1" in
    -h | --help | help) usage ;;
    generate)
      [[ $# -eq 1 ]] || usage
      generate
      return 0
      ;;
    path)
      [[ $# -eq 2 && "$2" != all ]] || usage
      tool_dir "$2"
      [[ -x "${DEST}/$2" ]] || exit 1
      printf '%s\n' "${DEST}"
      return 0
      ;;
  esac
  for t in "$@"; do
    if [[ "${t}" == all ]]; then
      tools+=("${TOOLS_ALL[@]}")
    else
      tools+=("${t}")
    fi
  done
  for t in "${tools[@]}"; do
    tool_config "${t}" # validate every name before building anything
  done
  for t in "${tools[@]}"; do
    build_tool "${t}"
    dirs+=("${DEST}")
  done
  printf '%s\n' "${dirs[@]}"
}

main "$@"
