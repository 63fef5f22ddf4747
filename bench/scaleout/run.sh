#!/usr/bin/env bash
# Scaling numbers of issue #23 (docs/scale-out.md, "Scaling numbers"): per-item times from real
# runs on this machine, then the makespan of static shards, a dynamic queue (mlaudit --mpi) and
# LPT on 8, 64 and 512 workers, simulated by tools/scaleout_sim.py.
#   bash bench/scaleout/run.sh [BUILD=build] [OUT=bench/scaleout/results] [--no-split]
# Items measured (one thread per item, so a worker is one core):
#   certify: the bundled CNN on 100 demo images at n = 10,000 (per_sample seconds); the table
#            models 10,000 images at n = 100,000 (resampled, times x 10: linear in n).
#   autoattack: the bundled CNN, standard Linf eps 0.1, 40 images, each its own --shard i/40
#            process (wall time, start-up included).
#   acasxu: the 186 instances whole (2 threads each), then the same benchmark with
#            --split-after S --split-pieces 64 (an instance still open after S seconds hands its
#            open branches out as 64 pieces, each again split after S: the task tree of every
#            instance is recorded and simulated as --mpi runs it), S = 0.2 (SPLIT_AFTER: one or more).
#   --uniform: also the earlier measurement, the two longest instances (3_3 and 4_2 property 2)
#            cut into 64 equal sub-boxes by tools/split_instance_times.py, their parts' times
#            scaled by (the instance's time in bench/verify/acasxu_all_results.csv / its unsplit
#            time measured beside the parts).
set -euo pipefail
BUILD=${1:-build}
OUT=${2:-bench/scaleout/results}
SPLIT=0
[ "${3:-}" = "--uniform" ] && SPLIT=1
SPLIT_AFTER=${SPLIT_AFTER:-0.2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MLAUDIT="$ROOT/$BUILD/mlaudit"
PY=${PYTHON:-python3}
mkdir -p "$OUT"
CNN="--model models/fmnist_cnn.onnx --data datasets/demo/fmnist_x.npy --labels datasets/demo/fmnist_y.npy"

echo "== certify: per-image times (n = 10,000, 100 images, 1 thread)"
"$MLAUDIT" -q --threads 1 certify $CNN --sigma 0.25 --n 10000 --limit 100 --out "$OUT/certify_cnn_n10000.json"

echo "== autoattack: per-image wall times (40 one-image shards, 1 thread)"
echo "index,seconds" > "$OUT/autoattack_cnn.csv"
for i in $(seq 0 39); do
  t0=$(date +%s.%N)
  "$MLAUDIT" -q --threads 1 attack $CNN --attack autoattack --eps 0.1 --limit 40 --shard "$i/40" --out "$OUT/aa_part.json"
  t1=$(date +%s.%N)
  echo "$i,$(echo "$t1 - $t0" | bc -l)" >> "$OUT/autoattack_cnn.csv"
done
rm -f "$OUT/aa_part.json"

BENCH=../shared/datasets/vnncomp2022/acasxu
echo "== acasxu: 186 instances whole, then split after S s into 64 pieces (2 threads per task)"
"$MLAUDIT" -q --threads 2 verify --benchmark "$BENCH" --out "$OUT/acasxu_whole.json"
for S in $SPLIT_AFTER; do
  "$MLAUDIT" -q --threads 2 verify --benchmark "$BENCH" --split-after "$S" --split-pieces 64 --out "$OUT/acasxu_split_$S.json"
done
# Kept small for the repository: per instance its verdict, seconds and task tree (what the simulator reads).
"$PY" - "$OUT" $SPLIT_AFTER <<'PYEOF'
import json, sys
out = sys.argv[1]
for tag in ["whole"] + ["split_" + s for s in sys.argv[2:]]:
    path = f"{out}/acasxu_{tag}.json"
    j = json.load(open(path))
    rows = []
    for r in j["instances"]:
        row = {k: r[k] for k in ("onnx", "vnnlib", "result", "correct", "seconds")}
        if "split" in r:
            row["split"] = {"tasks": r["split"]["tasks"],
                            "task_tree": [{k: t[k] for k in ("parent", "seconds", "result", "branches_in", "branches_out",
                                                             "falsify") if k in t}
                                          for t in r["split"]["task_tree"]]}
        rows.append(row)
    json.dump({"summary": j["summary"], "instances": rows}, open(path, "w"), separators=(",", ":"))
PYEOF
if [ "$SPLIT" = 1 ]; then
  echo "== acasxu: the two longest instances whole and split into 64 sub-boxes (1 thread)"
  for inst in onnx/ACASXU_run2a_3_3_batch_2000.onnx,vnnlib/prop_2.vnnlib onnx/ACASXU_run2a_4_2_batch_2000.onnx,vnnlib/prop_2.vnnlib; do
    tag=$(basename "${inst%%,*}" .onnx)
    "$PY" tools/split_instance_times.py "$MLAUDIT" "$BENCH" "$inst" 1 --header > "$OUT/split_${tag}_whole.csv"
    "$PY" tools/split_instance_times.py "$MLAUDIT" "$BENCH" "$inst" 64 --header > "$OUT/split_${tag}_64.csv"
  done
fi
# ACAS Xu items with the split instances' parts in place of the whole instances.
[ "$SPLIT" = 1 ] && "$PY" - "$OUT" <<'PYEOF'
import csv, sys
out = sys.argv[1]
rows = list(csv.DictReader(open("bench/verify/acasxu_all_results.csv")))
items = []
for r in rows:
    tag = r["onnx"].replace(".onnx", "")
    try:
        whole = float(next(csv.DictReader(open(f"{out}/split_{tag}_whole.csv")))["seconds"])
        parts = [float(p["seconds"]) for p in csv.DictReader(open(f"{out}/split_{tag}_64.csv"))]
    except (FileNotFoundError, StopIteration):
        items.append(float(r["seconds"]))
        continue
    if r["vnnlib"] != "prop_2.vnnlib":
        items.append(float(r["seconds"]))
        continue
    scale = float(r["seconds"]) / whole
    items += [p * scale for p in parts]
with open(f"{out}/acasxu_split_items.csv", "w") as f:
    f.write("seconds\n" + "".join(f"{t:.4f}\n" for t in items))
PYEOF

echo
SIM="$PY tools/scaleout_sim.py"
$SIM "$OUT/acasxu_whole.json" --label "ACAS Xu, 186 instances" --header
for S in $SPLIT_AFTER; do
  $SIM "$OUT/acasxu_split_$S.json" --ideal-from "$OUT/acasxu_whole.json" --label "ACAS Xu, --split-after $S, 64 pieces" --on-demand
done
if [ "$SPLIT" = 1 ]; then
  $SIM "$OUT/acasxu_split_items.csv" --label "ACAS Xu, 2 longest cut into 64 equal boxes"
fi
$SIM "$OUT/certify_cnn_n10000.json" --label "certify 10,000 images, n = 100,000" --resample 10000 --scale 10
$SIM "$OUT/autoattack_cnn.csv" --label "AutoAttack 10,000 images" --resample 10000
