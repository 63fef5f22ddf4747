#!/usr/bin/env bash
# VNN-COMP 2022 tool interface: install_tool.sh v1
# Installs the Debian packages mlaudit needs and builds it (CPU; CUDA too when nvcc is found).
set -euo pipefail
source "$(dirname "$0")/common.sh"
[[ $# -eq 1 ]] || die "usage: install_tool.sh v1"
check_version "$1"
cd "$repo"
make deps
make build
"$repo/build/mlaudit" --version
