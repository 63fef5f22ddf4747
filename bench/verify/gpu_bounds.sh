#!/usr/bin/env bash
# CROWN bounds of the bundled CNN (models/fmnist_cnn.onnx, 18,880 ReLUs) with the verifier's
# bound products on the CPU and on the GPU (`--device cuda`), side by side:
#   1. test_verify_gpu's timing case: crown_bounds and alpha_crown_objective (one margin) on 2
#      images x eps 0.005 / 0.01 / 0.02, CPU then GPU (same process), with the test's GPU/CPU
#      agreement and soundness checks;
#   2. the CLI: `mlaudit verify --data` on LIMIT=5 images at eps 0.005 (--timeout TIMEOUT=10) with
#      --device cpu and cuda (whole verification: falsifier, CROWN, alpha-CROWN, BaB).
# Usage: bench/verify/gpu_bounds.sh [--cpu] DIR [DATA_ROOT]
#   DIR        a build folder (DIR/tests/verify/test_verify_gpu, DIR/mlaudit) or the GPU bundle's
#              bin/ (DIR/test_verify_gpu, DIR/mlaudit)
#   DATA_ROOT  folder holding models/ and datasets/demo/ (default: this repository)
#   --cpu      no GPU here: time the CPU side only
# Prints a table; a benchmark never fails (exit 0 unless the arguments are wrong).
set -u
CPU_ONLY=0
if [ "${1:-}" = "--cpu" ]; then CPU_ONLY=1; shift; fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DIR=${1:-}
[ -n "$DIR" ] && [ -d "$DIR" ] || { echo "usage: $0 [--cpu] BUILD_DIR|BUNDLE_BIN [DATA_ROOT]"; exit 2; }
DIR=$(cd "$DIR" && pwd)
DATA=${2:-$ROOT}
TEST=""
for t in "$DIR/tests/verify/test_verify_gpu" "$DIR/test_verify_gpu"; do [ -x "$t" ] && TEST=$t && break; done
EXE=""
for e in "$DIR/mlaudit" "$DIR/bin/mlaudit"; do [ -x "$e" ] && EXE=$e && break; done
THREADS=${THREADS:-$(nproc)}
LIMIT=${LIMIT:-5}      # images of the CLI comparison
TIMEOUT=${TIMEOUT:-10} # --timeout per image
GPU_NAME=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1)
[ $CPU_ONLY = 1 ] && GPU_NAME="CPU only"
echo "gpu_bounds: dir $DIR, data $DATA, threads $THREADS, ${GPU_NAME:-no GPU visible}"

# 1. crown_bounds timings from the test binary.
if [ -n "$TEST" ]; then
  LOG=$(mktemp)
  # With a GPU: every case of the test (the small CNN with all products on the device, the
  # bundled CNN with timings, the CLI); --cpu: the timing case alone, CPU side.
  CASE=""
  [ $CPU_ONLY = 1 ] && CASE="*timings*"
  MLAUDIT_TEST_SOURCE_DIR="$DATA" MLAUDIT_TEST_EXE="${EXE:-}" MLAUDIT_GPU_BOUNDS_CPU_ONLY=$CPU_ONLY \
    timeout 240 "$TEST" ${CASE:+"$CASE"} >"$LOG" 2>&1
  RC=$?
  echo "test_verify_gpu: exit $RC, $(grep -E '^(All tests passed|test cases:)' "$LOG" | tail -1)"
  [ $RC -eq 0 ] || grep -B2 -A8 "FAILED" "$LOG" | head -60
  grep -q "no CUDA device: skipped" "$LOG" && echo "  (no CUDA device: skipped; use --cpu to time the CPU side)"
  printf "%-5s %-6s %8s | %9s %9s %7s | %9s %9s %7s | %8s %8s\n" image eps unstable crown_cpu crown_gpu speedup \
    alpha_cpu alpha_gpu speedup dev_prod declined
  # Catch prints each WARN over two lines; join them, then pick the key=value fields.
  tr '\n' ' ' <"$LOG" | sed 's/  */ /g' | grep -o "gpu_bounds: fmnist_cnn image [^:]*" | while read -r line; do
    get() { echo "$line" | tr ' ' '\n' | grep "^$1=" | head -1 | cut -d= -f2 | cut -c1-8; }
    printf "%-5s %-6s %8s | %9s %9s %7s | %9s %9s %7s | %8s %8s\n" "$(echo "$line" | awk '{print $4}')" \
      "$(echo "$line" | awk '{print $6}')" "$(echo "$line" | awk '{print $8}')" "$(get cpu_s)" "$(get gpu_s)" "$(get speedup)" \
      "$(get cpu_alpha_s)" "$(get gpu_alpha_s)" "$(get alpha_speedup)" "$(get device_products)" "$(get declined)"
  done
  rm -f "$LOG"
else
  echo "test_verify_gpu not found under $DIR (build it: cmake --build BUILD --target test_verify_gpu)"
fi

# 2. The CLI, whole verification (falsification, CROWN, alpha-CROWN, BaB) per image.
if [ -n "$EXE" ]; then
  run_cli() {
    local device=$1 out
    out=$(mktemp -d)
    local t0=$(date +%s.%N)
    timeout $((LIMIT * (TIMEOUT + 10) + 30)) "$EXE" --threads "$THREADS" --device "$device" verify --model "$DATA/models/fmnist_cnn.onnx" \
      --data "$DATA/datasets/demo/fmnist_x.npy" --labels "$DATA/datasets/demo/fmnist_y.npy" --eps 0.005 --limit "$LIMIT" \
      --clip-min 0 --clip-max 1 --timeout "$TIMEOUT" --out "$out/v.json" >"$out/log" 2>&1
    local rc=$? t1=$(date +%s.%N)
    printf "mlaudit --device %-5s verify (%s images, eps 0.005, --timeout %s): exit %d, %.2f s wall; %s\n" "$device" "$LIMIT" "$TIMEOUT" $rc \
      "$(echo "$t1 - $t0" | bc)" "$(grep -o 'verified [0-9]*/[0-9]*.*' "$out/log" | head -1)"
    rm -rf "$out"
  }
  run_cli cpu
  [ $CPU_ONLY = 1 ] || run_cli cuda
else
  echo "mlaudit not found under $DIR"
fi
exit 0
