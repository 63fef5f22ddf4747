#!/usr/bin/env bash
# Privacy benchmark: loss/confidence membership inference on 10,000 members + 10,000
# non-members of the bundled Fashion-MNIST CNN, and Neural Cleanse over its 10 classes,
# mlaudit vs PyTorch CPU (torch + scikit-learn for the same MIA method, ART's
# MembershipInferenceBlackBoxRuleBased, and a PyTorch port of the reference Neural Cleanse
# loop: ART's NeuralCleanse accepts only Keras models). 2 threads on both sides.
# Usage: bench/privacy/run.sh BUILD_DIR [NC_EPOCHS]. Prints times and ratios; never fails.
set -u
BUILD=${1:-build}
NC_EPOCHS=${2:-${NC_EPOCHS:-20}}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
MLAUDIT="$BUILD/mlaudit"
PY=${PYTHON:-$ROOT/.venv/bin/python}
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ ! -x "$MLAUDIT" ]; then echo "bench/privacy: $MLAUDIT not built"; exit 0; fi
"$PY" "$ROOT/bench/privacy/peer.py" prepare "$TMP" || { echo "bench/privacy: data preparation failed"; exit 0; }
secs() { "$PY" -c "import json,sys; print('%.3f' % json.load(open(sys.argv[1]))['timing']['seconds'])" "$1"; }
ratio() { "$PY" -c "import sys; a,b=float(sys.argv[1]),float(sys.argv[2]); print('%.2fx' % (a/b) if b>0 else 'n/a')" "$1" "$2"; }

"$MLAUDIT" --threads 2 --quiet privacy --model "$ROOT/models/fmnist_cnn.onnx" --members "$TMP/xm.npy" --member-labels "$TMP/ym.npy" \
  --non-members "$TMP/xn.npy" --non-member-labels "$TMP/yn.npy" --attacks loss,confidence --out "$TMP/p.json" \
  || { echo "mlaudit privacy failed"; exit 0; }
ml=$(secs "$TMP/p.json")
peer=$("$PY" "$ROOT/bench/privacy/peer.py" mia "$TMP" 2>/dev/null)
pt=$(echo "$peer" | awk '$1=="torch_loss_confidence"{print $2}')
art=$(echo "$peer" | awk '$1=="art_rule_based"{print $2}')
echo "Membership inference (loss + confidence, fmnist CNN, 10,000 members + 10,000 non-members, 2 threads):"
echo "  mlaudit              ${ml} s   (AUC loss $("$PY" -c "import json;print('%.4f'%json.load(open('$TMP/p.json'))['attacks'][0]['auc'])"))"
echo "  torch+sklearn        ${pt:-nan} s   ratio torch/mlaudit = $(ratio "${pt:-0}" "$ml")"
echo "  ART rule-based       ${art:-nan} s   ratio ART/mlaudit = $(ratio "${art:-0}" "$ml")  (forward pass + correctness rule only)"
echo "$peer" | grep '^#' | sed 's/^# /  note: /'

"$MLAUDIT" --threads 2 --quiet backdoor --model "$ROOT/models/fmnist_cnn.onnx" --clean "$ROOT/datasets/demo/fmnist_x.npy" \
  --epochs "$NC_EPOCHS" --out "$TMP/b.json" || { echo "mlaudit backdoor failed"; exit 0; }
ml=$(secs "$TMP/b.json")
peer=$("$PY" "$ROOT/bench/privacy/peer.py" nc "$ROOT/datasets/demo/fmnist_x.npy" "$NC_EPOCHS" 2>/dev/null)
pt=$(echo "$peer" | awk '$1=="torch_neural_cleanse"{print $2}')
echo "Neural Cleanse (fmnist CNN, 10 classes, 200 clean images, $NC_EPOCHS epochs x 7 batches of 32, 2 threads):"
echo "  mlaudit              ${ml} s   (mask L1 $("$PY" -c "import json;print(' '.join('%.1f'%c['l1_norm'] for c in json.load(open('$TMP/b.json'))['neural_cleanse']['classes']))"))"
echo "  torch (reference loop) ${pt:-nan} s   ratio torch/mlaudit = $(ratio "${pt:-0}" "$ml")"
echo "$peer" | grep '^#' | sed 's/^# /  note: /'
