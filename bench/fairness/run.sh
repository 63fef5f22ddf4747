#!/usr/bin/env bash
# bench/fairness: 1,000,000 rows, two protected attributes (sex, race) and their
# intersection, every group metric and disparity with 1000 bootstrap resamples:
# `mlaudit fairness` vs Fairlearn's MetricFrame(n_boot=...). Prints times and ratios; never fails.
#
# Fairlearn needs tens of seconds per resample at this size, so it runs with PY_BOOT
# resamples (default 2) and its time for 1000 is extrapolated as
# T_PY_BOOT * 1001 / (PY_BOOT + 1): MetricFrame evaluates the full frame once plus once
# per resample, all the same work (a difference T_PY_BOOT - T_0 is too noisy on a busy
# machine). The no-bootstrap time T_0 is printed for reference; the extrapolated figure
# is labelled as such. Set PY_BOOT=1000 for a measured (hours-long) run.
# Usage: bench/fairness/run.sh BUILD_DIR [ROWS]
set -u
BUILD=${1:-build}
ROWS=${2:-1000000}
BOOT=1000
PY_BOOT=${PY_BOOT:-2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
EXE="$BUILD/mlaudit"
[ -x "$EXE" ] || { echo "bench/fairness: $EXE not built"; exit 0; }
TMP=$(mktemp -d /tmp/mlaudit-bench-fairness-XXXXXX)
trap 'rm -rf "$TMP"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 MKL_NUM_THREADS=2

"$PY" "$HERE/make_data.py" "$TMP/t.npy" "$ROWS" || { echo "bench/fairness: could not make data (numpy?)"; exit 0; }

run_mlaudit() {  # $1 = extra decision args, $2 = label
  local t0 t1
  t0=$(date +%s.%N)
  "$EXE" --threads 2 --quiet fairness --data "$TMP/t.npy" --columns y,yhat,score,sex,race --label y --protected sex,race \
    $1 --bootstrap $BOOT --seed 1 --out "$TMP/F.json" || { echo "mlaudit failed"; return 1; }
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}

echo "bench/fairness: $ROWS rows, attributes sex (2) x race (5) + intersection, $BOOT bootstrap resamples, 2 threads"
M_PRED=$(run_mlaudit "--prediction yhat" pred)
M_SCORE=$(run_mlaudit "--prediction yhat --score score" score)
echo "  mlaudit fairness (decisions only; multinomial cell resampling): ${M_PRED} s"
echo "  mlaudit fairness (+ AUC/Brier/ECE; row resampling):             ${M_SCORE} s"

peer() {  # $1 = extra args, $2 = label; prints the extrapolated seconds
  local t
  t=$("$PY" "$HERE/fairlearn_bench.py" "$TMP/t.npy" "$PY_BOOT" $1) || return 1
  set -- $t "$2"
  local est
  est=$(echo "$2 * ($BOOT + 1) / ($PY_BOOT + 1)" | bc -l)
  printf "  fairlearn MetricFrame (%s): no bootstrap %.1f s, n_boot=%s %.1f s measured -> %.0f s extrapolated to n_boot=%s\n" \
    "$3" "$1" "$PY_BOOT" "$2" "$est" "$BOOT" >&2
  echo "$est"
}
S_PRED=$(peer "" decisions) || { echo "  fairlearn: not available"; exit 0; }
S_SCORE=$(peer "--scores" "+scores") || exit 0
printf "  speedup (decisions): %.0fx   speedup (+scores): %.0fx   (target >= 20x)\n" \
  "$(echo "$S_PRED / $M_PRED" | bc -l)" "$(echo "$S_SCORE / $M_SCORE" | bc -l)"
exit 0
