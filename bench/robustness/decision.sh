#!/usr/bin/env bash
# Decision-based attacks: mlaudit hsja / boundary vs ART's HopSkipJump and BoundaryAttack and
# Foolbox 3's BoundaryAttack, on the credit rows the XGBoost fixture (tests/fixtures/trees/
# xgb_binary.onnx) classifies correctly among the first N (default 50), domain [0, 250].
#   bash bench/robustness/decision.sh BUILD_DIR [N]
# Same query budget: the peers run their defaults and count the rows they query; mlaudit then runs
# with --queries set to the peer's mean queries per row (a per-row cap; HSJA's defaults spend about
# the same anyway). Prints wall seconds, the ratio peer/mlaudit, median distances and their ratio
# mlaudit/peer (below 1: mlaudit's points are closer). Both sides 2 threads. Never fails the build.
set -u
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-build}
N=${2:-50}
case "$BUILD" in /*) ;; *) BUILD="$ROOT/$BUILD" ;; esac
EXE="$BUILD/mlaudit"
PY=${PYTHON:-$ROOT/.venv/bin/python}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ ! -x "$EXE" ]; then echo "decision bench: $EXE not built"; exit 0; fi
"$PY" "$ROOT/bench/robustness/decision_peer.py" "$ROOT" "$N" "$TMP" > "$TMP/peer.json" 2> "$TMP/peer.err" || { echo "peer failed:"; tail -3 "$TMP/peer.err"; exit 0; }
M="$ROOT/tests/fixtures/trees/xgb_binary.onnx"
q() { "$PY" -c "import json,sys; print(max(1, round(json.loads(open('$TMP/peer.json').read().strip().splitlines()[-1])['$1']['queries_per_row'])))"; }
run() {  # name attack norm peer-key [steps]
  local steps=${5:-0}
  "$EXE" --quiet --threads 2 attack --model "$M" --data "$TMP/x.npy" --labels "$TMP/y.npy" --attack "$2" --norm "$3" \
    --clip-min 0 --clip-max 250 --queries "$(q "$4")" --steps "$steps" --out "$TMP/$1.json" || echo "mlaudit $1 failed"
}
run hsja_l2 hsja l2 art_hsja_l2
run hsja_linf hsja linf art_hsja_linf
run boundary_fb boundary l2 foolbox_boundary_l2
# ART's BoundaryAttack (max_iter 5000, 25 trials per step) spends ~7x Foolbox's queries: give ours
# the steps to spend as many (a Boundary step is 1.1 queries).
run boundary_art boundary l2 art_boundary_l2 $(( $(q art_boundary_l2) * 10 / 11 ))
"$PY" - "$TMP" <<'PYEOF'
import json, os, sys
t = sys.argv[1]
peer = json.loads(open(os.path.join(t, "peer.json")).read().strip().splitlines()[-1])
rows = [("HSJA L2", "hsja_l2", "art_hsja_l2", "ART HopSkipJump"), ("HSJA Linf", "hsja_linf", "art_hsja_linf", "ART HopSkipJump"),
        ("Boundary L2", "boundary_fb", "foolbox_boundary_l2", "Foolbox BoundaryAttack"),
        ("Boundary L2", "boundary_art", "art_boundary_l2", "ART BoundaryAttack")]
print(f"{peer['rows']} rows of credit_x.npy (xgb_binary correct), domain [0, 250]")
print(f"{'attack':<13}{'peer':<24}{'ours s':>8}{'peer s':>9}{'peer/ours':>10}{'ours med':>10}{'peer med':>10}{'ours/peer':>10}{'q/row ours':>12}{'q/row peer':>12}")
for name, ours_f, key, peer_name in rows:
    p = os.path.join(t, ours_f + ".json")
    if not os.path.exists(p):
        continue
    o = json.load(open(p))
    pe = peer[key]
    n = o["n_samples"]
    q_ours = sum(s["queries"] for s in o["per_sample"]) / n
    med = o["minimal_norms"]["median"]
    print(f"{name:<13}{peer_name:<24}{o['seconds']:>8.2f}{pe['seconds']:>9.2f}{pe['seconds'] / o['seconds']:>10.1f}"
          f"{med:>10.4f}{pe['median']:>10.4f}{med / pe['median']:>10.3f}{q_ours:>12.0f}{pe['queries_per_row']:>12.0f}")
print("ours: --queries = the peer's mean queries per row (cap per row); seconds: the attack only (model load excluded on both sides)")
PYEOF
exit 0
