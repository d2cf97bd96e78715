#!/usr/bin/env bash
# Install the Debian packages that hardway's tests drive, when missing.
# Runs as root (CI); as another user it only reports what is missing.
set -euo pipefail

# hack/deps.list names each package and the commands our code runs from it.
PKGS=()
while IFS= read -r line; do
  line=${line%%#*}
  pkg=${line%%:*}
  pkg=${pkg//[[:space:]]/}
  [ -n "$pkg" ] && PKGS+=("$pkg")
done < "$(dirname "${BASH_SOURCE[0]}")/deps.list"

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
