#!/usr/bin/env bash
# .ci/run, after `make package`: install the .deb with apt as a user would, check the installed
# /usr/bin/mlaudit (--version, info, a small audit, man page, completions: the checks of
# tests/packaging/check_deb.sh, run on the installed files), then remove the package again
# when it was not installed before, so the machine ends as it began. Needs root or sudo
# without a password; otherwise it says so and exits 0 (the extracted-package test still ran).
#   usage: scripts/check_installed_deb.sh [BUILD_DIR]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$(cd "${1:-$root/build}" && pwd)  # absolute: apt reads a path with a slash as a file
deb=$(ls "$build"/mlaudit_*_amd64.deb 2>/dev/null | head -1)
[[ -n $deb ]] || { echo "check_installed_deb: no $build/mlaudit_*_amd64.deb (run 'make package')" >&2; exit 1; }
SUDO=()
if [[ $(id -u) -ne 0 ]]; then
  if sudo -n true 2>/dev/null; then SUDO=(sudo -n); else
    echo "check_installed_deb: skipped, installing needs root or passwordless sudo"; exit 0
  fi
fi
version=$(dpkg-deb --field "$deb" Version)
before=$(dpkg-query -W -f='${Status} ${Version}' mlaudit 2>/dev/null || true)
cleanup() {
  if [[ $before != "install ok installed"* ]] && dpkg-query -W -f='${Status}' mlaudit 2> /dev/null | grep -q "ok installed"; then
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq mlaudit > /dev/null && echo "check_installed_deb: removed mlaudit again"
  fi
}
trap cleanup EXIT
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$deb" > /dev/null
echo "check_installed_deb: installed $(command -v mlaudit) from $(basename "$deb")"
[[ $(command -v mlaudit) == /usr/bin/mlaudit ]] || echo "note: another mlaudit comes first on PATH: $(command -v mlaudit)"
MLAUDIT_DEB_ROOT=/ MLAUDIT_REQUIRE_DEB=1 bash "$root/tests/packaging/check_deb.sh" "$deb" "$version" "$build/mlaudit" "$root"
