#!/usr/bin/env bash
# Residual-network verification, mlaudit vs auto_LiRPA, on the same ResNet and the same queries.
#
#   bench/verify/residual/run.sh [BUILD_DIR] [TIMEOUT_S]
#
# A small ResNet (tools/make_residual_bench.py: stride-2 stem, two identity blocks, one downsampling
# block with a 1x1 projection, Linear 784-100-10; BN folded) trained on Fashion-MNIST, made once
# into $CACHE (default /tmp/mlaudit-bench-residual; kept between runs). For the first 20 test images
# and L-inf radii 0.004, 0.01, 0.02 (boxes clipped to [0, 1]):
#   mlaudit verify --data   complete verification, TIMEOUT_S per query (default 10), 2 threads
#   auto_LiRPA 0.3          CROWN and alpha-CROWN (incomplete), 2 threads; alpha-CROWN stops after the
#                           iteration that passes PEER_ALPHA_TIMEOUT s (default 5; 0 = its 20 iterations)
# and prints, per eps, mlaudit's verified/falsified/unknown/timeout and seconds beside the peer's
# verified counts and seconds, with the time ratios peer / mlaudit.
# Environment: PYTHON (default .venv/bin/python), LIRPA (auto_LiRPA's folder, default .lirpa),
# CACHE, PEER=0 (skip the peer), PEER_ALPHA_TIMEOUT. Paths are taken from the repository root.
# Benchmarks never fail the build: every problem is printed and the script exits 0.
set -euo pipefail
trap 'echo "residual bench: a step failed (line $LINENO); benchmarks never fail the build"; exit 0' ERR

BUILD=${1:-build}
TIMEOUT=${2:-10}
case "$BUILD" in /*) ;; *) BUILD="$PWD/$BUILD" ;; esac
cd "$(dirname "$0")/../../.."
PY=${PYTHON:-.venv/bin/python}
LIRPA=${LIRPA:-.lirpa}
CACHE=${CACHE:-/tmp/mlaudit-bench-residual}
EPS=0.004,0.01,0.02
THREADS=2
ALPHA_TIMEOUT=${PEER_ALPHA_TIMEOUT:-5}
OUT=$(mktemp -d /tmp/mlaudit-bench-residual-run-XXXXXX)
export OMP_NUM_THREADS=$THREADS

if [ ! -x "$BUILD/mlaudit" ]; then echo "residual bench: $BUILD/mlaudit not built; skipped"; exit 0; fi
if ! "$PY" -c "import torch, onnx, numpy" 2>/dev/null; then
  echo "residual bench: $PY lacks torch/onnx/numpy (set PYTHON); skipped"; exit 0
fi

if [ -f "$CACHE/resnet_fmnist.onnx" ] && [ -f "$CACHE/resnet_fmnist.pt" ] && [ -f "$CACHE/x.npy" ] && [ -f "$CACHE/y.npy" ]; then
  echo "residual bench: model and data from $CACHE"
else
  echo "residual bench: training the ResNet into $CACHE (about 2 minutes on 2 cores)"
  if ! PYTHON="$PY" "$PY" tools/make_residual_bench.py "$CACHE" > "$OUT/make.log" 2>&1; then
    echo "residual bench: tools/make_residual_bench.py failed (log $OUT/make.log):"; tail -5 "$OUT/make.log"; exit 0
  fi
  grep -E '^(epoch|test accuracy|wrote)' "$OUT/make.log" | sed 's/^/  /'
fi
"$PY" -c "import json,sys; m=json.load(open(sys.argv[1])); print('  model: test accuracy %.4f, ONNX ops %s, %s' % (m['test_accuracy'], ','.join(m['ops']), m['exporter']))" "$CACHE/meta.json" 2>/dev/null || true

echo "residual bench: mlaudit verify, eps $EPS, ${TIMEOUT}s per query, $THREADS threads, results in $OUT"
t0=$(date +%s.%N)
if "$BUILD/mlaudit" --threads "$THREADS" verify --model "$CACHE/resnet_fmnist.onnx" --data "$CACHE/x.npy" \
     --labels "$CACHE/y.npy" --eps "$EPS" --clip-min 0 --clip-max 1 --timeout "$TIMEOUT" \
     --out "$OUT/mlaudit.json" > "$OUT/mlaudit.log" 2> "$OUT/mlaudit.err"; then
  t1=$(date +%s.%N)
  echo "  mlaudit wall time $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.1f", b - a }') s"
else
  echo "  mlaudit failed (exit $?): $(head -3 "$OUT/mlaudit.err")"
fi

if [ "${PEER:-1}" = 0 ]; then
  echo "peer skipped (PEER=0)"
elif ! PYTHONPATH="$LIRPA" "$PY" -c "import auto_LiRPA" > /dev/null 2>&1; then
  echo "peer skipped (auto_LiRPA is not importable from $LIRPA with $PY; see tools/verify_maxpool_golden.py)"
else
  echo "residual bench: auto_LiRPA CROWN / alpha-CROWN (alpha-CROWN capped at ${ALPHA_TIMEOUT}s per query)"
  if ! PYTHONPATH="$LIRPA" "$PY" bench/verify/residual/peer_lirpa.py "$CACHE" --eps "$EPS" --threads "$THREADS" \
       --alpha-timeout "$ALPHA_TIMEOUT" --json "$OUT/peer.json" > "$OUT/peer.log" 2> "$OUT/peer.err"; then
    echo "peer skipped (peer_lirpa.py failed, log $OUT/peer.err): $(grep -v Warning "$OUT/peer.err" | tail -1)"
  fi
  head -1 "$OUT/peer.log" 2>/dev/null | sed 's/^/  /' || true
fi

"$PY" - "$OUT/mlaudit.json" "$OUT/peer.json" "$TIMEOUT" <<'EOF' || echo "residual bench: table could not be made (results in $OUT)"
import json, os, sys
ml = json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else None
peer = json.load(open(sys.argv[2])) if os.path.exists(sys.argv[2]) else None
eps_list = sorted({r["eps"] for r in (ml or peer)["per_sample"]}) if (ml or peer) else []
def ratio(a, b):
    return f"{a / b:.2f}" if a is not None and b else "n/a"
print()
print(f"{'eps':>6} | {'mlaudit ver/fal/unk/to':>22} {'s':>7} | {'CROWN ver':>9} {'s':>6} | {'aCROWN ver':>10} {'s':>6} | {'CROWN/ml':>8} {'aCROWN/ml':>9}")
print("-" * 96)
for eps in eps_list:
    m = [r for r in ml["per_sample"] if r["eps"] == eps] if ml else []
    p = [r for r in peer["per_sample"] if r["eps"] == eps] if peer else []
    n = len(m or p)
    if m:
        c = {v: sum(r["verdict"] == v for r in m) for v in ("verified", "falsified", "unknown", "timeout")}
        ms = sum(r["seconds"] for r in m)
        mcol = f"{c['verified']:>3}/{c['falsified']}/{c['unknown']}/{c['timeout']} of {n}"
        mcol, mst = f"{mcol:>22}", f"{ms:7.1f}"
    else:
        ms, mcol, mst = None, f"{'n/a':>22}", f"{'n/a':>7}"
    if p:
        cs, als = sum(r["crown_s"] for r in p), sum(r["alpha_s"] for r in p)
        pcol = (f"{sum(r['crown'] for r in p):>5}/{n:<3} {cs:6.1f} | {sum(r['alpha'] for r in p):>6}/{n:<3} {als:6.1f} | "
                f"{ratio(cs, ms):>8} {ratio(als, ms):>9}")
    else:
        pcol = f"{'peer skipped':>17} | {'':>17} | {'':>8} {'':>9}"
    print(f"{eps:>6g} | {mcol} {mst} | {pcol}")
print()
if ml and peer:
    # Like for like: the queries auto_LiRPA's CROWN verifies are ones a single bound pass decides.
    for eps in eps_list:
        ids = {r["index"] for r in peer["per_sample"] if r["eps"] == eps and r["crown"]}
        if not ids:
            continue
        mv = [r for r in ml["per_sample"] if r["eps"] == eps and r["index"] in ids]
        a = sum(r["seconds"] for r in mv)
        b = sum(r["crown_s"] for r in peer["per_sample"] if r["eps"] == eps and r["index"] in ids)
        print(f"eps {eps:g}, the {len(ids)} queries auto_LiRPA CROWN verifies: mlaudit {a:.1f} s "
              f"({sum(r['verdict'] == 'verified' for r in mv)} verified), CROWN {b:.1f} s, ratio CROWN/mlaudit {ratio(b, a)}")
    wrong = [(r["index"], r["eps"]) for r in ml["per_sample"] if r["verdict"] == "falsified"
             for q in peer["per_sample"] if q["index"] == r["index"] and q["eps"] == r["eps"] and (q["crown"] or q["alpha"])]
    print("soundness cross-check: " + ("no query falsified by mlaudit is verified by auto_LiRPA" if not wrong
          else f"CONFLICT: mlaudit falsified, auto_LiRPA verified {wrong}"))
print("ratios: peer seconds / mlaudit seconds over the same queries per eps (sums of per-query times; "
      "mlaudit's include its timeouts, the peer does incomplete verification only)")
EOF
exit 0
