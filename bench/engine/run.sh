#!/usr/bin/env bash
# Engine benchmark: bundled CNN forward and forward+input-gradient at batch 1 and
# 256, mlaudit vs PyTorch (CPU) and onnxruntime (forward), same thread count.
# Then the model panel (panel.sh: ResNet-18, MobileNetV2, EfficientNet-B0, a transformer, a tabular
# MLP, a random forest, ...); MLAUDIT_BENCH_PANEL=0 skips it. Then `mlaudit run` on 10,000 images
# against PyTorch's loop (run_stream.py); MLAUDIT_BENCH_RUN=0 skips it.
# Usage: bench/engine/run.sh BUILD_DIR [THREADS]   (peers: $PYTHON, else the repository's .venv)
set -u
BUILD=${1:-build}
T=${2:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
MODEL=$ROOT/models/fmnist_cnn.onnx
nice cmake --build "$BUILD" --target bench_engine mlaudit stream_bandwidth -j2 >/dev/null
# The machine's memory bandwidth: a batch-1 forward streams every weight (docs/dev/performance.md).
OMP_NUM_THREADS=$T "$BUILD/bench/engine/stream_bandwidth" || true
OURS=$("$BUILD/bench/engine/bench_engine" "$MODEL" "$T" 1 256)
echo "$OURS"
if ! "$PY" -c "import torch, onnxruntime" 2>/dev/null; then
  echo "peer tools (torch, onnxruntime) not available in $PY; mlaudit figures only"
else
  PEER=$(OMP_NUM_THREADS=$T "$PY" "$HERE/peer.py" --model "$MODEL" "$T")
  echo "$PEER"
  echo
  printf "%-8s %-6s %10s %10s %10s %8s %8s\n" mode batch mlaudit_ms torch_ms ort_ms torch/us ort/us
  for mode in fwd fwdgrad; do
    for b in 1 256; do
      o=$(echo "$OURS" | grep "mode=$mode batch=$b " | sed 's/.*ms=//')
      t=$(echo "$PEER" | grep "peer=torch mode=$mode batch=$b " | sed 's/.*ms=//')
      r=$(echo "$PEER" | grep "peer=ort mode=$mode batch=$b " | sed 's/.*ms=//')
      awk -v m=$mode -v b=$b -v o="$o" -v t="$t" -v r="$r" 'BEGIN {
        rt = (t != "" && o > 0) ? sprintf("%.2fx", t / o) : "-";
        rr = (r != "" && o > 0) ? sprintf("%.2fx", r / o) : "-";
        printf "%-8s %-6s %10s %10s %10s %8s %8s\n", m, b, o, (t == "" ? "-" : t), (r == "" ? "-" : r), rt, rr }'
    done
  done
  echo "(ratio > 1 means mlaudit is faster)"
fi
if [ "${MLAUDIT_BENCH_PANEL:-1}" != 0 ]; then
  echo
  bash "$HERE/panel.sh" "$BUILD" "$T"
fi
if [ "${MLAUDIT_BENCH_RUN:-1}" != 0 ] && "$PY" -c "import torch, onnx" 2>/dev/null; then
  echo
  # `mlaudit run` on 10,000 images against PyTorch's in-process loop, with peak RSS (issue #20)
  OMP_NUM_THREADS=$T "$PY" "$HERE/run_stream.py" "$BUILD/mlaudit" --threads "$T" 2>/dev/null | grep -v '^\[torch' \
    || echo "(run_stream.py failed; benchmarks never fail the build)"
fi
