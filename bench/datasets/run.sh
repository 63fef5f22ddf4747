#!/usr/bin/env bash
# Datasets benchmark: .npy read/write of a [10000,1,28,28] float32 array (31 MB),
# a 1,000,000 x 5 CSV to a float32 matrix, Fashion-MNIST t10k/train from the
# Debian package; mlaudit vs numpy / pandas (single-threaded on both sides).
# Usage: bench/datasets/run.sh BUILD_DIR   (peers need the repo-local .venv or PYTHON=...)
set -u
BUILD=${1:-build}
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
PY=${PYTHON:-$ROOT/.venv/bin/python}
WORK=$(mktemp -d /tmp/mlaudit-bench-datasets-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cmake --build "$BUILD" --target bench_datasets -j2 >/dev/null
if ! "$PY" -c "import numpy" 2>/dev/null; then
  echo "numpy not available in $PY: cannot make the inputs; skipped"
  exit 0
fi
"$PY" - "$WORK" <<'PYEOF'
import sys, numpy as np
work = sys.argv[1]
rng = np.random.default_rng(0)
np.save(f"{work}/images.npy", rng.random((10000, 1, 28, 28), dtype=np.float32))
n = 1000000
with open(f"{work}/table.csv", "w") as f:
    f.write("a,b,c,d,label\n")
    a = rng.integers(18, 90, n); b = rng.random(n) * 1000; c = rng.normal(size=n); d = rng.integers(0, 2, n)
    lab = np.where(rng.random(n) < 0.5, "yes", "no")
    for row in zip(a, np.round(b, 3), np.round(c, 5), d, lab):
        f.write("%d,%s,%s,%d,%s\n" % row)
PYEOF
OURS=$("$BUILD/bench/datasets/bench_datasets" "$WORK")
PEER=$("$PY" "$HERE/peer.py" "$WORK")
echo "$OURS"
echo "$PEER"
echo
printf "%-14s %12s %12s %8s\n" task mlaudit_ms peer_ms peer/us
for task in npy_read npy_write csv_read fmnist_t10k fmnist_train; do
  o=$(echo "$OURS" | grep "task=$task " | sed 's/.*ms=//')
  p=$(echo "$PEER" | grep "task=$task " | sed 's/.*ms=//')
  awk -v t=$task -v o="$o" -v p="$p" 'BEGIN {
    r = (p != "" && o > 0) ? sprintf("%.2fx", p / o) : "-";
    printf "%-14s %12s %12s %8s\n", t, (o == "" ? "-" : o), (p == "" ? "-" : p), r }'
done
echo "(ratio > 1 means mlaudit is faster)"
