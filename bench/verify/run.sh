#!/usr/bin/env bash
# A VNN-COMP 2022 benchmark with mlaudit verify, side by side with Marabou when
# maraboupy is installed in $PYTHON (default: the repo-local .venv). Prints solved (sat/unsat), wrong
# answers, total and median time for each tool on the same instances, and mlaudit's VNN-COMP 2022
# score (10 per correct answer, -150 per wrong one; the speed bonus left out) beside the 2022
# tools' published score shares on that benchmark (../shared/datasets/SOURCES.md).
#
#   [BENCH=acasxu|rl_benchmarks|reach_prob_density|collins_rul_cnn|oval21] bench/verify/run.sh BUILD_DIR [FILTER_REGEX] [TIMEOUT_S]
#
# BENCH picks the benchmark folder under vnncomp2022/ (default acasxu);
# FILTER_REGEX selects instances by "onnx,vnnlib" (default: all);
# TIMEOUT_S caps each instance's timeout (default: none, each instance's own VNN-COMP limit).
# STRIDE=N (environment) keeps every N-th instance of instances.csv (a
# representative subset: it walks all networks and properties in order);
# OFFSET=K (with STRIDE) starts at the K-th instance instead of the first, for a disjoint subset;
# PEER=0 skips the Marabou run.
# Example (a subset that fits an interactive session):
#   bench/verify/run.sh build '_[1-5]_[1-3]_batch' 30
# Benchmarks never fail: problems are printed and the script exits 0.
set -u
BUILD=${1:-build}
FILTER=${2:-.}
TIMEOUT=${3:-100000}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
BENCH=${BENCH:-acasxu}
SHARED=${MLAUDIT_SHARED_DATASETS:-$ROOT/../shared/datasets}
ACAS=$SHARED/vnncomp2022/$BENCH
THREADS=${THREADS:-2}
OUT=${OUT:-$(mktemp -d /tmp/mlaudit-bench-verify-XXXXXX)}
mkdir -p "$OUT"

if [ ! -f "$ACAS/instances.csv" ]; then
  echo "verify bench: $BENCH not found at $ACAS; skipped"
  exit 0
fi
if [ ! -x "$BUILD/mlaudit" ]; then
  echo "verify bench: $BUILD/mlaudit not built; skipped"
  exit 0
fi

STRIDE=${STRIDE:-1}
if [ "$STRIDE" -gt 1 ]; then
  # Regex of every STRIDE-th "onnx,vnnlib" pair (file names, as --filter matches them).
  FILTER=$(awk -F, -v s="$STRIDE" -v o="${OFFSET:-0}" 'NF >= 2 && (NR - 1) % s == o {
      n = split($1, a, "/"); m = split($2, b, "/"); r = r (r ? "|" : "") "^" a[n] "," b[m] "$" }
      END { gsub(/\./, "\\.", r); print r }' "$ACAS/instances.csv")
fi
echo "verify bench: $BENCH instances matching '${FILTER:0:80}', timeout cap ${TIMEOUT}s, $THREADS threads, results in $OUT"
"$BUILD/mlaudit" --threads "$THREADS" verify --benchmark "$ACAS" --filter "$FILTER" \
  --timeout-override "$TIMEOUT" --out "$OUT/mlaudit.csv" 2>"$OUT/mlaudit.log" | sed 's/^/mlaudit: /'

# The VNN-COMP 2022 score of this run, and the 2022 tools' shares on the benchmark (organisers' table).
awk -F, 'NR > 1 { if ($5 == "yes") ok++; else if ($5 == "no") bad++ }
  END { printf "mlaudit: VNN-COMP 2022 score %d (%d correct x 10, %d wrong x -150; no speed bonus)\n", 10 * ok - 150 * bad, ok, bad }' "$OUT/mlaudit.csv"
[ "$BENCH" != acasxu ] && grep "^| vnncomp2022/$BENCH/ " "$SHARED/SOURCES.md" 2>/dev/null | awk -F'|' '{ gsub(/^ +| +$/, "", $6); print "2022 tools (score share, their hardware): " $6 }'

if [ "${PEER:-1}" = 0 ]; then
  echo "marabou: skipped (PEER=0)"
elif "$PY" -c "import maraboupy" 2>/dev/null; then
  # Marabou's C++ core prints progress on stdout; keep only the summary line.
  "$PY" "$HERE/marabou_peer.py" "$ACAS" "$FILTER" "$TIMEOUT" "$THREADS" "$OUT/marabou.csv" 2>"$OUT/marabou.log" |
    grep '^instances' | sed 's/^/marabou: /'
  "$PY" - "$OUT/mlaudit.csv" "$OUT/marabou.csv" <<'EOF'
import csv, sys
def load(p):
    with open(p) as f:
        return {(r["onnx"], r["vnnlib"]): r for r in csv.DictReader(f)}
a, b = load(sys.argv[1]), load(sys.argv[2])
common = sorted(set(a) & set(b))
ta = sum(float(a[k]["seconds"]) for k in common)
tb = sum(float(b[k]["seconds"]) for k in common)
print(f"same {len(common)} instances: mlaudit {ta:.1f} s, marabou {tb:.1f} s, ratio marabou/mlaudit {tb / max(ta, 1e-9):.2f}")
EOF
else
  echo "marabou: maraboupy is not installed in $PY (pip install maraboupy); no peer comparison"
fi
exit 0
