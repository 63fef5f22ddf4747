#!/usr/bin/env bash
# Runs every benchmark (bench/<module>/run.sh BUILD_DIR); prints figures and ratios.
set -u
BUILD=${1:-build}
for s in "$(dirname "$0")"/*/run.sh; do
  echo "=== $s"
  bash "$s" "$BUILD" || echo "(benchmark $s failed; benchmarks never fail the build)"
done
