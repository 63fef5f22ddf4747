#!/usr/bin/env bash
# Run on the GPU machine (through the device tool, with carry [".gpu"]) after bench/gpu/pack.sh:
# unpacks the bundle, prints nvidia-smi, runs the `cuda` tests (test_cuda), a CLI smoke run on
# --device cuda, the GPU benchmark (bench_gpu) and the PyTorch peer on the same GPU, and writes a
# short table to $OUT/summary.txt (also: the im2col convolution path and a per-op profile) (OUT defaults to .gpu/out). Every step has its own timeout so a
# hang cannot eat the device budget; the table says which steps failed.
# Usage: bench/gpu/device_check.sh [TARBALL]   (env: BATCH=4096 STEPS=50 SMOOTH_N=100000 SMOOTH_IMAGES=10)
set -u
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
OUT=${OUT:-$ROOT/.gpu/out}
mkdir -p "$OUT"
SUMMARY="$OUT/summary.txt"
TARBALL=${1:-}
if [ -z "$TARBALL" ]; then
  for t in "$ROOT/.gpu/mlaudit-gpu-bundle.tar.gz" "$ROOT/.gpu/mlaudit-gpu-bundle.tar.xz"; do
    [ -f "$t" ] && TARBALL=$t && break
  done
fi
BATCH=${BATCH:-4096}
STEPS=${STEPS:-50}
SMOOTH_N=${SMOOTH_N:-100000}
SMOOTH_IMAGES=${SMOOTH_IMAGES:-10}

fail() {
  echo "device_check: $1" | tee "$SUMMARY"
  exit 2
}

command -v nvidia-smi >/dev/null 2>&1 || fail "nvidia-smi not found: this is not a GPU machine. Run this script on the GPU machine through the device tool (after bench/gpu/pack.sh here, with carry [\".gpu\"])."
nvidia-smi -L >/dev/null 2>&1 || fail "nvidia-smi cannot see a GPU (driver not loaded?)"
[ -n "$TARBALL" ] && [ -f "$TARBALL" ] || fail "no bundle found (.gpu/mlaudit-gpu-bundle.tar.gz): run bench/gpu/pack.sh first and carry .gpu"

WORK=$(mktemp -d /tmp/mlaudit-gpu.XXXXXX)
tar -C "$WORK" -xf "$TARBALL" || fail "cannot unpack $TARBALL"
export LD_LIBRARY_PATH="$WORK/lib:/usr/local/cuda/lib64:/usr/local/cuda/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export MLAUDIT_TEST_SOURCE_DIR="$WORK/data"
export MLAUDIT_TEST_EXE="$WORK/bin/mlaudit"
DATA="$WORK/data"
BIN="$WORK/bin"
LOG="$OUT/device_check.log"
: >"$LOG"

echo "== bundle"; cat "$WORK/MANIFEST" | head -5
echo "== nvidia-smi"; nvidia-smi | tee -a "$LOG"
for exe in "$BIN"/*; do
  if ldd "$exe" | grep -q "not found"; then
    echo "== unresolved libraries for $exe:"; ldd "$exe" | grep "not found"
  fi
done

status_of() { [ "$1" -eq 0 ] && echo ok || { [ "$1" -eq 124 ] && echo "TIMEOUT" || echo "FAILED (exit $1)"; }; }

echo "== test_cuda"
timeout 300 "$BIN/test_cuda" --durations yes >"$OUT/test_cuda.txt" 2>&1
TEST_RC=$?
tail -40 "$OUT/test_cuda.txt"
TEST_LINE=$(grep -E "^(All tests passed|test cases:)" "$OUT/test_cuda.txt" | tail -1)
SKIPPED=$(grep -c "no CUDA device: skipped" "$OUT/test_cuda.txt")

echo "== CLI smoke: mlaudit --device cuda run"
timeout 30 "$BIN/mlaudit" --device cuda run --model "$DATA/models/fmnist_cnn.onnx" --input "$DATA/datasets/demo/fmnist_x.npy" \
  --output-dir "$OUT/run_cuda" >"$OUT/cli.txt" 2>&1
CLI_RC=$?
timeout 30 "$BIN/mlaudit" --device auto run --model "$DATA/models/fmnist_cnn.onnx" --input "$DATA/datasets/demo/fmnist_x.npy" \
  --output-dir "$OUT/run_auto" >>"$OUT/cli.txt" 2>&1
AUTO_RC=$?
timeout 90 "$BIN/mlaudit" --device cuda attack --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --attack apgd-ce --eps 0.03 --out "$OUT/attack_cuda.json" >>"$OUT/cli.txt" 2>&1
ATTACK_RC=$?
timeout 90 "$BIN/mlaudit" --device cuda attack --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --attack pgd --eps 0.03 --steps 50 --out "$OUT/attack_pgd_cuda.json" >>"$OUT/cli.txt" 2>&1
PGD_CLI_RC=$?
timeout 90 "$BIN/mlaudit" --device cuda attack --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --attack apgd-t --eps 0.03 --out "$OUT/attack_apgdt_cuda.json" >>"$OUT/cli.txt" 2>&1
APGDT_CLI_RC=$?
timeout 90 "$BIN/mlaudit" --device cuda attack --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --attack square --eps 0.03 --out "$OUT/attack_square_cuda.json" >>"$OUT/cli.txt" 2>&1
SQUARE_CLI_RC=$?
# AutoAttack standard on 100 images: APGD-CE, APGD-T and Square as device loops, FAB-T per step.
timeout 150 "$BIN/mlaudit" --device cuda attack --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --attack autoattack --eps 0.03 --limit 100 --out "$OUT/attack_aa_cuda.json" >>"$OUT/cli.txt" 2>&1
AA_CLI_RC=$?
timeout 90 "$BIN/mlaudit" --device cuda certify --model "$DATA/models/fmnist_cnn.onnx" --data "$DATA/datasets/demo/fmnist_x.npy" \
  --labels "$DATA/datasets/demo/fmnist_y.npy" --sigma 0.25 --n 10000 --out "$OUT/certify_cuda.json" >>"$OUT/cli.txt" 2>&1
CERTIFY_RC=$?
cat "$OUT/cli.txt"

echo "== bench_gpu (mlaudit)"
timeout 150 "$BIN/bench_gpu" "$DATA/models/fmnist_cnn.onnx" "$DATA/datasets/demo/fmnist_x.npy" "$DATA/datasets/demo/fmnist_y.npy" \
  "$BATCH" "$STEPS" "$SMOOTH_N" "$SMOOTH_IMAGES" >"$OUT/bench_mlaudit.txt" 2>&1
BENCH_RC=$?
cat "$OUT/bench_mlaudit.txt"

echo "== bench_gpu with MLAUDIT_CUDA_CONV=im2col (the im2col + cuBLAS convolution path, for comparison)"
MLAUDIT_CUDA_CONV=im2col BENCH_GPU_MODES=none timeout 120 "$BIN/bench_gpu" "$DATA/models/fmnist_cnn.onnx" "$DATA/datasets/demo/fmnist_x.npy" \
  "$DATA/datasets/demo/fmnist_y.npy" "$BATCH" "$STEPS" "$SMOOTH_N" 2 >"$OUT/bench_im2col.txt" 2>&1
cat "$OUT/bench_im2col.txt"

echo "== per-op profile (MLAUDIT_CUDA_PROFILE=1: PGD-5 and one smoothing image, nodes timed one by one)"
MLAUDIT_CUDA_PROFILE=1 BENCH_GPU_MODES=none timeout 120 "$BIN/bench_gpu" "$DATA/models/fmnist_cnn.onnx" "$DATA/datasets/demo/fmnist_x.npy" \
  "$DATA/datasets/demo/fmnist_y.npy" "$BATCH" 5 "$SMOOTH_N" 1 >"$OUT/profile.txt" 2>&1
cat "$OUT/profile.txt"

echo "== verify: CROWN bound products on the GPU (bench/verify/gpu_bounds.sh)"
LIMIT=3 timeout 420 bash "$ROOT/bench/verify/gpu_bounds.sh" "$BIN" "$DATA" >"$OUT/gpu_bounds.txt" 2>&1
GPU_BOUNDS_RC=$?
cat "$OUT/gpu_bounds.txt"

echo "== PyTorch peer"
PY=""
for p in ${PYTHON:-} python3 python /opt/conda/bin/python /usr/bin/python3; do
  if [ -n "$p" ] && command -v "$p" >/dev/null 2>&1 && "$p" -c "import torch, numpy" >/dev/null 2>&1; then PY=$p; break; fi
done
if [ -n "$PY" ]; then
  timeout 240 "$PY" "$WORK/peer/peer_torch.py" --weights "$WORK/peer/fmnist_cnn_weights.npz" --x "$DATA/datasets/demo/fmnist_x.npy" \
    --y "$DATA/datasets/demo/fmnist_y.npy" --batch "$BATCH" --steps "$STEPS" --smooth-n "$SMOOTH_N" --smooth-images "$SMOOTH_IMAGES" \
    >"$OUT/bench_torch.txt" 2>&1
  PEER_RC=$?
else
  echo "no python with torch found" >"$OUT/bench_torch.txt"
  PEER_RC=127
fi
cat "$OUT/bench_torch.txt"

field() { grep "mode=$2" "$1" 2>/dev/null | head -1 | tr ' ' '\n' | grep "^$3=" | cut -d= -f2; }
M_PGD=$(field "$OUT/bench_mlaudit.txt" pgd images_per_s)
T_PGD=$(field "$OUT/bench_torch.txt" pgd images_per_s)
M_AP=$(field "$OUT/bench_mlaudit.txt" apgd images_per_s)
T_AP=$(field "$OUT/bench_torch.txt" apgd images_per_s)
M_AT=$(field "$OUT/bench_mlaudit.txt" tapgd images_per_s)
T_AT=$(field "$OUT/bench_torch.txt" tapgd images_per_s)
M_SQ=$(field "$OUT/bench_mlaudit.txt" square images_per_s)
T_SQ=$(field "$OUT/bench_torch.txt" square images_per_s)
M_SM=$(field "$OUT/bench_mlaudit.txt" smoothing ms_per_image)
T_SM=$(field "$OUT/bench_torch.txt" smoothing ms_per_image)
M_SPS=$(field "$OUT/bench_mlaudit.txt" smoothing samples_per_s)
T_SPS=$(field "$OUT/bench_torch.txt" smoothing samples_per_s)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (a == "" || b == "" || b + 0 == 0) print "-"; else printf "%.2fx", a / b }'; }
{
  echo "mlaudit CUDA device check — $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | head -1)"
  echo "bundle: $(sed -n 2p "$WORK/MANIFEST")"
  printf "%-34s %s\n" "test_cuda" "$(status_of $TEST_RC): ${TEST_LINE:-no summary} (skipped-for-no-device: $SKIPPED)"
  printf "%-34s %s\n" "mlaudit --device cuda run" "$(status_of $CLI_RC)"
  printf "%-34s %s\n" "mlaudit --device auto run" "$(status_of $AUTO_RC) ($(grep -o 'running on [a-z]*' "$OUT/cli.txt" | head -1))"
  printf "%-34s %s\n" "mlaudit --device cuda attack apgd-ce" "$(status_of $ATTACK_RC) ($(grep -o '"robust_accuracy": *[0-9.]*' "$OUT/attack_cuda.json" 2>/dev/null | head -1))"
  printf "%-34s %s\n" "mlaudit --device cuda attack pgd" "$(status_of $PGD_CLI_RC) ($(grep -o '"robust_accuracy": *[0-9.]*' "$OUT/attack_pgd_cuda.json" 2>/dev/null | head -1); $(grep -o '"execution": *"[^"]*' "$OUT/attack_pgd_cuda.json" 2>/dev/null | head -1 | cut -c1-80))"
  printf "%-34s %s\n" "mlaudit --device cuda attack apgd-t" "$(status_of $APGDT_CLI_RC) ($(grep -o '"robust_accuracy": *[0-9.]*' "$OUT/attack_apgdt_cuda.json" 2>/dev/null | head -1); $(grep -o 'apgd-t ran as the fused device loop' "$OUT/attack_apgdt_cuda.json" 2>/dev/null | head -1))"
  printf "%-34s %s\n" "mlaudit --device cuda attack square" "$(status_of $SQUARE_CLI_RC) ($(grep -o '"robust_accuracy": *[0-9.]*' "$OUT/attack_square_cuda.json" 2>/dev/null | head -1); $(grep -o 'square ran as the fused device loop' "$OUT/attack_square_cuda.json" 2>/dev/null | head -1))"
  printf "%-34s %s\n" "mlaudit --device cuda autoattack" "$(status_of $AA_CLI_RC) (100 images; $(grep -o '"robust_accuracy": *[0-9.]*' "$OUT/attack_aa_cuda.json" 2>/dev/null | head -1); device loops: $(grep -o '[a-z-]* ran as the fused device loop' "$OUT/attack_aa_cuda.json" 2>/dev/null | cut -d' ' -f1 | sort -u | tr '\n' ' '))"
  printf "%-34s %s\n" "mlaudit --device cuda certify" "$(status_of $CERTIFY_RC) ($(grep -o '"sampler": *"[^"]*' "$OUT/certify_cuda.json" 2>/dev/null | head -1 | cut -c1-60))"
  printf "%-34s %s\n" "bench_gpu" "$(status_of $BENCH_RC)"
  printf "%-34s %s\n" "verify gpu_bounds.sh" "$(status_of $GPU_BOUNDS_RC) ($(grep -o '^test_verify_gpu: .*' "$OUT/gpu_bounds.txt" | head -1))"
  printf "%-34s %s\n" "peer_torch" "$(status_of $PEER_RC) (python: ${PY:-none})"
  echo
  printf "%-28s %14s %14s %10s\n" "measure" "mlaudit" "torch" "ratio"
  printf "%-28s %14s %14s %10s\n" "PGD-$STEPS images/s (b=$BATCH)" "${M_PGD:--}" "${T_PGD:--}" "$(ratio "$M_PGD" "$T_PGD")"
  printf "%-28s %14s %14s %10s\n" "APGD-CE-100 images/s" "${M_AP:--}" "${T_AP:--}" "$(ratio "$M_AP" "$T_AP")"
  printf "%-28s %14s %14s %10s\n" "APGD-T 9x100 images/s" "${M_AT:--}" "${T_AT:--}" "$(ratio "$M_AT" "$T_AT")"
  printf "%-28s %14s %14s %10s\n" "Square-5000 images/s" "${M_SQ:--}" "${T_SQ:--}" "$(ratio "$M_SQ" "$T_SQ")"
  printf "%-28s %14s %14s %10s\n" "smoothing ms/image (N=$SMOOTH_N)" "${M_SM:--}" "${T_SM:--}" "$(ratio "$T_SM" "$M_SM")"
  printf "%-28s %14s %14s %10s\n" "PGD-$STEPS im2col path" "$(field "$OUT/bench_im2col.txt" pgd images_per_s)" "${T_PGD:--}" "$(ratio "$(field "$OUT/bench_im2col.txt" pgd images_per_s)" "$T_PGD")"
  printf "%-28s %14s %14s %10s\n" "smoothing ms/image im2col" "$(field "$OUT/bench_im2col.txt" smoothing ms_per_image)" "${T_SM:--}" "$(ratio "$T_SM" "$(field "$OUT/bench_im2col.txt" smoothing ms_per_image)")"
  printf "%-28s %14s %14s %10s\n" "smoothing samples/s" "${M_SPS:--}" "${T_SPS:--}" "$(ratio "$M_SPS" "$T_SPS")"
  echo "(ratio > 1: mlaudit faster; targets: PGD >= 3x torch, smoothing < 10 ms/image)"
  echo "mlaudit PGD: fp32-peak fraction $(field "$OUT/bench_mlaudit.txt" pgd frac_fp32_peak), HBM fraction (estimate) $(field "$OUT/bench_mlaudit.txt" pgd frac_hbm_bw), CUDA graph $(field "$OUT/bench_mlaudit.txt" pgd cuda_graph)"
  echo "robust accuracy, PGD eps 0.1: mlaudit $(field "$OUT/bench_mlaudit.txt" pgd robust_acc), torch $(field "$OUT/bench_torch.txt" pgd robust_acc); APGD-CE eps 0.03: mlaudit $(field "$OUT/bench_mlaudit.txt" apgd robust_acc), torch $(field "$OUT/bench_torch.txt" apgd robust_acc)"
  echo "robust accuracy, eps 0.03: APGD-T mlaudit $(field "$OUT/bench_mlaudit.txt" tapgd robust_acc), torch $(field "$OUT/bench_torch.txt" tapgd robust_acc); Square mlaudit $(field "$OUT/bench_mlaudit.txt" square robust_acc) (mean queries $(field "$OUT/bench_mlaudit.txt" square mean_queries)), torch $(field "$OUT/bench_torch.txt" square robust_acc)"
} >"$SUMMARY"
echo "== summary ($SUMMARY)"
cat "$SUMMARY"
rm -rf "$WORK"
[ $TEST_RC -eq 0 ] || exit 1
exit 0
