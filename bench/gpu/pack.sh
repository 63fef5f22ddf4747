#!/usr/bin/env bash
# Build mlaudit with the CUDA backend here (no GPU needed) and pack what the GPU machine needs
# into one compressed tarball under the ignored folder .gpu/ (carry it to the device with the
# device tool's `carry: [".gpu"]`, under 64 MiB):
#   bin/   mlaudit, test_cuda, bench_gpu
#   lib/   every shared library they load per ldd that is not in the GPU machine's base
#          Ubuntu 24.04 glibc / gcc-13 runtime and not under /usr/local/cuda (cuBLAS, cuRAND are there)
#   data/  models, demo data and engine fixtures at their repository paths (the tests' source tree)
#   peer/  bench/gpu/peer_torch.py and the CNN weights as .npz (the device has no onnx package)
# Usage: bench/gpu/pack.sh [BUILD_DIR=build-gpu] [extra cmake args, e.g. -DMLAUDIT_ONLY="engine;cuda"]
# Then on the GPU machine: bench/gpu/device_check.sh (see there).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${1:-build-gpu}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
shift || true
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUTDIR="$ROOT/.gpu"
STAGE="$OUTDIR/bundle"
TARBALL="$OUTDIR/mlaudit-gpu-bundle.tar.gz"
LIMIT=$((60 * 1024 * 1024))  # below the device tool's 64 MiB carry limit

command -v nvcc >/dev/null || [ -x /usr/local/cuda/bin/nvcc ] || { echo "pack: nvcc not found (needs /usr/local/cuda)"; exit 2; }
echo "pack: configuring $BUILD (Release, MLAUDIT_WITH_CUDA=ON)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DMLAUDIT_WITH_CUDA=ON "$@" >/dev/null
echo "pack: building mlaudit test_cuda test_verify_gpu bench_gpu (-j${JOBS:-2})"
cmake --build "$BUILD" -j"${JOBS:-2}" --target mlaudit test_cuda test_verify_gpu bench_gpu >/dev/null

rm -rf "$STAGE"
mkdir -p "$STAGE/bin" "$STAGE/lib" "$STAGE/data" "$STAGE/peer"
cp "$BUILD/mlaudit" "$BUILD/tests/cuda/test_cuda" "$BUILD/tests/verify/test_verify_gpu" "$BUILD/bench/gpu/bench_gpu" "$STAGE/bin/"

# Libraries of the base system (glibc, gcc-13 runtime, zlib) stay; CUDA libraries come from
# /usr/local/cuda on the device; everything else is packed.
is_system() {
  case "$(basename "$1")" in
    linux-vdso.so*|ld-linux*|libc.so*|libm.so*|libstdc++.so*|libgcc_s.so*|libpthread.so*|libdl.so*|librt.so*|libz.so*) return 0 ;;
  esac
  case "$1" in /usr/local/cuda*) return 0 ;; esac
  return 1
}
for exe in "$STAGE"/bin/*; do
  if ldd "$exe" | grep -q "not found"; then echo "pack: $exe has unresolved libraries:"; ldd "$exe" | grep "not found"; exit 2; fi
  ldd "$exe" | awk '/=> \// { print $3 }' | while read -r lib; do
    is_system "$lib" || cp -L -n "$lib" "$STAGE/lib/"
  done
done

for rel in models/fmnist_cnn.onnx models/credit_mlp.onnx datasets/demo/fmnist_x.npy datasets/demo/fmnist_y.npy tests/fixtures/engine; do
  mkdir -p "$STAGE/data/$(dirname "$rel")"
  cp -r "$ROOT/$rel" "$STAGE/data/$rel"
done
cp "$HERE/peer_torch.py" "$STAGE/peer/"
"$PY" "$HERE/peer_torch.py" --export-weights "$STAGE/peer/fmnist_cnn_weights.npz" >/dev/null

{
  echo "built: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(hostname)"
  echo "commit: $(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown) (plus uncommitted changes)"
  echo "nvcc: $( (nvcc --version 2>/dev/null || /usr/local/cuda/bin/nvcc --version) | tail -1)"
  echo "packed libraries:"; ls -1 "$STAGE/lib"
} >"$STAGE/MANIFEST"

rm -f "$TARBALL"
tar -C "$STAGE" -czf "$TARBALL" .
SIZE=$(stat -c %s "$TARBALL")
if [ "$SIZE" -gt "$LIMIT" ]; then
  echo "pack: gzip gives $SIZE bytes, over $LIMIT; trying xz -9"
  TARBALL_XZ="$OUTDIR/mlaudit-gpu-bundle.tar.xz"
  tar -C "$STAGE" -cf - . | xz -9 -T2 >"$TARBALL_XZ"
  rm -f "$TARBALL"
  TARBALL=$TARBALL_XZ
  SIZE=$(stat -c %s "$TARBALL")
  [ "$SIZE" -le "$LIMIT" ] || { echo "pack: $TARBALL is $SIZE bytes, over the limit"; exit 2; }
fi
rm -rf "$STAGE"
echo "pack: wrote $TARBALL ($((SIZE / 1024 / 1024)) MiB, $SIZE bytes)"
echo "pack: on the GPU machine run: bench/gpu/device_check.sh   (device tool: carry [\".gpu\"])"
