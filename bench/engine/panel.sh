#!/usr/bin/env bash
# Engine benchmark panel (bench/engine/panel.py): CNN, MLP, torchvision ResNet-18 / MobileNetV2 /
# EfficientNet-B0, a transformer encoder, a tabular MLP and a random forest; mlaudit vs onnxruntime
# (forward) and PyTorch (forward, forward + input gradient) at the same thread count.
# Usage: bench/engine/panel.sh BUILD_DIR [THREADS] [panel.py options, e.g. --only resnet18]
# Python: $PYTHON, else the repository's .venv (torch, torchvision, onnxruntime, scikit-learn, skl2onnx).
# A benchmark: prints figures and ratios, always exits 0.
set -u
BUILD=${1:-build}
T=${2:-2}
shift $(( $# < 2 ? $# : 2 ))
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
if ! nice cmake --build "$BUILD" --target bench_engine -j2 >/dev/null; then
  echo "panel: bench_engine did not build in $BUILD; no panel"
  exit 0
fi
if ! "$PY" -c "import torch, torchvision, onnxruntime, sklearn, skl2onnx" 2>/dev/null; then
  echo "panel: peer tools (torch, torchvision, onnxruntime, scikit-learn, skl2onnx) not available in $PY; no panel"
  exit 0
fi
OMP_NUM_THREADS=$T "$PY" "$HERE/panel.py" --bench "$BUILD/bench/engine/bench_engine" "$T" "$@" \
  || echo "(panel.py failed; benchmarks never fail the build)"
exit 0
