#!/usr/bin/env bash
# TreeSHAP benchmark: mlaudit's exact TreeSHAP vs shap.TreeExplainer on 10,000 rows of UCI Adult
# (five numeric columns) with a 500-tree depth-6 XGBoost model (bench/explain/tree_shap_peer.py
# trains and exports it), path-dependent and interventional (100 background rows).
# Prints wall and CPU seconds (all threads) of the timed call for both and the ratios shap/mlaudit, plus the
# largest difference between the two tools' values where they explain the same game.
#   path-dependent: shap.TreeExplainer(model).shap_values(X), which hands XGBoost models to
#     XGBoost's C++ pred_contribs (THREADS threads, XGBoost's hessian covers); and shap's own C++
#     tree_shap on the same trees with covers counted from adult.data, as mlaudit's (single thread:
#     shap has no thread option there), whose values must equal mlaudit's;
#   interventional: shap's C++ dense_independent (single thread, no thread option);
#   interaction values (path-dependent, first 1,000 rows): shap's C++, same covers as mlaudit's.
# mlaudit runs with THREADS threads (default 2). One timed call per tool after a warm-up.
# Usage: bench/explain/tree_shap.sh BUILD_DIR [THREADS]. Never fails the build.
set -u
BUILD=$(cd "${1:-build}" 2>/dev/null && pwd || echo "${1:-build}")
THREADS=${2:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
cmake --build "$BUILD" --target bench_tree_shap -j2 >/dev/null 2>&1
BENCH="$BUILD/bench/explain/bench_tree_shap"
if [ ! -x "$BENCH" ]; then echo "bench/explain/tree_shap: $BENCH not built"; exit 0; fi
if ! "$PY" "$ROOT/bench/explain/tree_shap_peer.py" prep "$TMP" >/dev/null 2>&1; then
  echo "bench/explain/tree_shap: could not train/export the model (needs xgboost, onnxmltools, shap)"; exit 0
fi

# "wall cpu" of the timed call, as the command prints them (its first two fields)
timed() {
  "$@" 2>/dev/null | head -1 | awk '{print $1, $2}'  # shap's progress bar is on stderr
}
compare() {  # max |a - b| over two saved value arrays
  "$PY" -c "
import numpy as np,sys
a=np.load(sys.argv[1]).reshape(-1); b=np.load(sys.argv[2]).reshape(-1)
print('%.3g' % np.abs(a-b).max() if a.shape==b.shape else 'shape mismatch')" "$1" "$2" 2>/dev/null || echo nan
}
report() {  # title, "ml_wall ml_cpu", "peer_wall peer_cpu", peer name
  read -r mw mc <<<"$2"
  read -r pw pc <<<"$3"
  echo "$1:"
  echo "  mlaudit ($THREADS threads)  ${mw} s   (CPU ${mc} s)"
  echo "  $4  ${pw} s   (CPU ${pc} s)"
  if [ -n "$pw" ] && [ -n "$mw" ] && [ "$mw" != "0" ]; then
    echo "  ratio $4/mlaudit: $(echo "scale=1; $pw / $mw" | bc)x wall, $(echo "scale=1; $pc / $mc" | bc)x CPU"
  fi
}

cd "$TMP" || exit 0
ml=$(timed "$BENCH" adult_xgb.onnx x.npy train.npy "$THREADS" tree-path-dependent ml_path.npy)
py=$(timed "$PY" "$ROOT/bench/explain/tree_shap_peer.py" time "$TMP" path "$THREADS")
report "Path-dependent TreeSHAP, 10,000 Adult rows, 500 trees depth 6" "$ml" "$py" "shap->xgboost pred_contribs ($THREADS threads)"
py=$(timed "$PY" "$ROOT/bench/explain/tree_shap_peer.py" time "$TMP" path-shap "$THREADS")
report "Path-dependent TreeSHAP, same rows, shap's own C++ tree_shap with the same covers" "$ml" "$py" "shap C++ (1 thread)"
echo "  max |mlaudit - shap| over the 50,000 values (same covers): $(compare ml_path.npy shap_path-shap.npy)"
ml=$(timed "$BENCH" adult_xgb.onnx x.npy bg.npy "$THREADS" interventional ml_iv.npy)
py=$(timed "$PY" "$ROOT/bench/explain/tree_shap_peer.py" time "$TMP" interventional "$THREADS")
report "Interventional TreeSHAP, 10,000 Adult rows, 100 background rows" "$ml" "$py" "shap C++ (1 thread)"
echo "  max |mlaudit - shap| over the 50,000 values: $(compare ml_iv.npy shap_interventional.npy)"
ml=$(timed "$BENCH" adult_xgb.onnx x.npy train.npy "$THREADS" interactions ml_int.npy)
py=$(timed "$PY" "$ROOT/bench/explain/tree_shap_peer.py" time "$TMP" interactions "$THREADS")
report "SHAP interaction values (path-dependent), first 1,000 rows" "$ml" "$py" "shap C++ (1 thread)"
echo "  max |mlaudit - shap| over the 25,000 values: $(compare ml_int.npy shap_interactions.npy)"
ml1=$(timed "$BENCH" adult_xgb.onnx x.npy bg.npy 1 interventional ml_iv1.npy)
echo "  mlaudit on 1 thread: $(echo "$ml1" | awk '{print $1}') s (CPU $(echo "$ml1" | awk '{print $2}') s)"
ml1=$(timed "$BENCH" adult_xgb.onnx x.npy train.npy 1 tree-path-dependent ml_path1.npy)
echo "Path-dependent, mlaudit on 1 thread: $(echo "$ml1" | awk '{print $1}') s (CPU $(echo "$ml1" | awk '{print $2}') s)"
exit 0
