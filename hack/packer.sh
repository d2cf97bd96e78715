#!/usr/bin/env bash
# The Packer plugin's tools and generated files.
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
# TOOL is one of: packer packer-sdc all. hack/tools.sh builds and caches
# them, as every pinned tool (tools/<tool>/go.mod pins the version).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
readonly ROOT
readonly TOOLS_ALL=(packer packer-sdc)

log() { printf 'packer.sh: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

usage() {
  sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2
  exit 2
}

# generate runs the plugin's go:generate lines with the pinned packer-sdc.
# `packer-sdc struct-markdown` finds the plugin's root by walking up from the
# source file to a directory named packer-plugin-*, and gives up silently at
# one named packer (Packer's own repository), which is this module's
# directory. So the generators run in the module seen through a symlink
# named packer-plugin-hardway: the go command takes the logical working
# directory from PWD, and the files land in packer/ all the same.
GEN_TMP=""
generate() {
  local sdc
  sdc="$("${ROOT}/hack/tools.sh" packer-sdc)"
  GEN_TMP="$(mktemp -d)"
  trap 'rm -rf -- "${GEN_TMP}"' EXIT
  ln -s "${ROOT}/packer" "${GEN_TMP}/packer-plugin-hardway"
  (
    cd "${GEN_TMP}/packer-plugin-hardway"
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
  local -a tools=()
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
      exec "${ROOT}/hack/tools.sh" path "$2"
      ;;
  esac
  for t in "$@"; do
    if [[ "${t}" == all ]]; then
      tools+=("${TOOLS_ALL[@]}")
    else
      [[ " ${TOOLS_ALL[*]} " == *" ${t} "* ]] || die "unknown tool '${t}' (want one of: ${TOOLS_ALL[*]} all)"
      tools+=("${t}")
    fi
  done
  exec "${ROOT}/hack/tools.sh" "${tools[@]}"
}

main "$@"
