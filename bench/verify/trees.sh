#!/usr/bin/env bash
# Exact tree-ensemble verification (verify/trees.h) on the credit test rows of xgb_binary and
# lgbm_binary (tests/fixtures/trees), side by side with the Kantchelian MILP of
# tools/trees_verify_goldens.py (HiGHS via scipy) when the repo-local .venv has scipy.
# Prints, per model and eps: time per query, verdict counts, the share the clique bound decided
# (Chen et al. 2019) and the MILP's time per query; then the ratio MILP / mlaudit; and the
# minimal-distance search (--minimal-distance) per row.
#
#   bench/verify/trees.sh BUILD_DIR [ROWS] [EPS_LIST]      (defaults: build 200 0.01,0.05,0.2)
# PEER=0 skips the MILP; MILP_ROWS=N times the MILP on the first N rows only (default ROWS; it takes
# about a second per query), and its verdicts are compared with mlaudit's on those rows. Benchmarks never fail: problems are printed and the script exits 0.
set -u
BUILD=${1:-build}
ROWS=${2:-200}
EPS=${3:-0.01,0.05,0.2}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
OUT=${OUT:-$(mktemp -d /tmp/mlaudit-bench-trees-XXXXXX)}
FIX=$ROOT/tests/fixtures/trees
if [ ! -x "$BUILD/mlaudit" ]; then
  echo "trees bench: $BUILD/mlaudit not built; skipped"
  exit 0
fi
for m in xgb_binary lgbm_binary; do
  "$BUILD/mlaudit" --threads 1 verify --model "$FIX/$m.onnx" --data "$FIX/credit_x.npy" --limit "$ROWS" --eps "$EPS" \
    --clip-min=-inf --clip-max=inf --out "$OUT/$m.json" -q || echo "trees bench: mlaudit failed on $m"
  "$BUILD/mlaudit" --threads 1 verify --model "$FIX/$m.onnx" --data "$FIX/credit_x.npy" --limit "$ROWS" --eps 0 \
    --clip-min=-inf --clip-max=inf --minimal-distance --out "$OUT/${m}_min.json" -q || echo "trees bench: mlaudit failed on $m"
done
MILP_LOG=$OUT/milp.txt
: > "$MILP_LOG"
if [ "${PEER:-1}" != 0 ] && "$PY" -c "import scipy.optimize, onnxruntime, onnx" 2>/dev/null; then
  "$PY" "$ROOT/tools/trees_verify_goldens.py" --bench --rows "${MILP_ROWS:-$ROWS}" --eps "$EPS" > "$MILP_LOG" 2>&1 || echo "trees bench: MILP peer failed"
else
  echo "trees bench: no scipy/onnxruntime in $PY: MILP peer skipped"
fi
python3 - "$OUT" "$MILP_LOG" <<'PY'
import json, re, sys
out, milp_log = sys.argv[1], sys.argv[2]
milp = {}
for line in open(milp_log):
    m = re.match(r"milp (\S+) eps (\S+): (\d+) rows, falsified (\d+), ([\d.]+) ms/query", line)
    if m:
        milp[(m.group(1), float(m.group(2)))] = (int(m.group(3)), int(m.group(4)), float(m.group(5)))
print(f"{'model':12} {'eps':>6} {'rows':>5} {'verified':>8} {'falsified':>9} {'other':>5} {'by bound':>8} {'ms/query':>9} {'MILP ms':>9} {'MILP/mlaudit':>12}")
for model in ("xgb_binary", "lgbm_binary"):
    j = json.load(open(f"{out}/{model}.json"))
    for e in j["by_eps"]:
        ms = e["mean_seconds_per_sample"] * 1e3
        peer = milp.get((model, e["eps"]))
        agree = ""
        if peer is not None:
            mine = sum(1 for s in j["per_sample"] if s["eps"] == e["eps"] and s["index"] < peer[0] and s["verdict"] == "falsified")
            agree = f"  (first {peer[0]} rows: MILP falsified {peer[1]}, mlaudit {mine}{'' if mine == peer[1] else ': DISAGREES'})"
            peer = (peer[1], peer[2])
        print(f"{model:12} {e['eps']:>6g} {e['samples']:>5} {e['verified']:>8} {e['falsified']:>9} {e['unknown'] + e['timeout']:>5} "
              f"{e['decided_by_clique_bound']:>8} {ms:>9.3f} {peer[1] if peer else float('nan'):>9.2f} "
              f"{(peer[1] / ms) if peer and ms > 0 else float('nan'):>12.0f}{agree}")
    md = json.load(open(f"{out}/{model}_min.json"))["minimal_distance"]
    t = sorted(r["seconds"] for r in md)
    d = sorted(r["distance"] for r in md if r["status"] == "found")
    q = sum(r["exact_queries"] for r in md) / len(md)
    print(f"{model:12} minimal distance: {len(d)}/{len(md)} found, median {d[len(d) // 2]:.4g}; "
          f"{sum(t) / len(t) * 1e3:.2f} ms/row mean, {t[len(t) // 2] * 1e3:.2f} ms median, {q:.1f} exact queries/row")
PY
echo "(results in $OUT)"
exit 0
