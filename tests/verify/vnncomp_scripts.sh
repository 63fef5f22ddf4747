#!/usr/bin/env bash
# scripts/vnncomp/*.sh, the VNN-COMP 2022 tool interface, on real instances: ACAS Xu 1_2 prop_2
# (sat: the result file's counterexample, re-read and checked for the property by mlaudit's own
# forward pass inside run_instance, must parse) and 1_1 prop_1 (unsat), answers against the
# organisers' expected.csv; the repository's small domain MLP (sat and unsat); a gzipped copy
# found from its plain name; bad arguments and a model/property mismatch refused.
# usage: vnncomp_scripts.sh MLAUDIT SOURCE_DIR SHARED_DATASETS      (exit 77: skipped)
set -uo pipefail
export MLAUDIT=$1
src=$2 shared=$3
s=$src/scripts/vnncomp
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fail=0
err() { echo "FAIL: $*" >&2; fail=1; }
expect_first() {  # RESULT_FILE WANT
  local got
  got=$(head -1 "$1" 2> /dev/null)
  [[ $got == "$2" ]] || err "$1: first line '$got', want '$2'"
}

v=$src/tests/fixtures/verify
bash "$s/prepare_instance.sh" v1 test "$v/domain_mlp.onnx" "$v/domain_sat.vnnlib" || err "prepare domain_sat"
bash "$s/run_instance.sh" v1 test "$v/domain_mlp.onnx" "$v/domain_sat.vnnlib" "$tmp/sat.txt" 30
expect_first "$tmp/sat.txt" sat
grep -Eq '^\(\(X_0 -?[0-9.e+-]+\)$' "$tmp/sat.txt" || err "no ((X_0 v) line after sat: $(cat "$tmp/sat.txt")"
grep -Eq '^ \(Y_1 -?[0-9.e+-]+\)$' "$tmp/sat.txt" || err "no (Y_1 v) line after sat"
bash "$s/run_instance.sh" v1 test "$v/domain_mlp.onnx" "$v/domain_unsat.vnnlib" "$tmp/unsat.txt" 30
expect_first "$tmp/unsat.txt" unsat
[[ $(wc -l < "$tmp/unsat.txt") -le 1 ]] || err "unsat with more than one line"

# prepare_instance stops only the run run_instance left, never another mlaudit (other jobs, tests)
"$MLAUDIT" --quiet certify --model "$src/models/fmnist_cnn.onnx" --data "$src/datasets/demo/fmnist_x.npy" \
  --labels "$src/datasets/demo/fmnist_y.npy" --sigma 0.25 --limit 1 --n 1000000000 --out "$tmp/c.json" &
other=$!
sleep 0.5
bash "$s/prepare_instance.sh" v1 test "$v/domain_mlp.onnx" "$v/domain_sat.vnnlib" > /dev/null || err "prepare with another mlaudit running"
kill -0 "$other" 2> /dev/null || err "prepare_instance stopped an unrelated mlaudit"
kill "$other" 2> /dev/null; wait "$other" 2> /dev/null

# a gzipped property named without .gz (as the competition's harness does)
cp "$v/domain_unsat.vnnlib" "$tmp/p.vnnlib" && gzip "$tmp/p.vnnlib"
bash "$s/run_instance.sh" v1 test "$v/domain_mlp.onnx" "$tmp/p.vnnlib" "$tmp/gz.txt" 30
expect_first "$tmp/gz.txt" unsat

# refusals: version, argument count, timeout, missing file, mismatch
bash "$s/run_instance.sh" v2 test "$v/domain_mlp.onnx" "$v/domain_sat.vnnlib" "$tmp/x.txt" 30 2> "$tmp/e1" && err "v2 accepted"
grep -q "interface version v1" "$tmp/e1" || err "v2: $(cat "$tmp/e1")"
bash "$s/run_instance.sh" v1 test "$v/domain_mlp.onnx" 2> "$tmp/e2" && err "3 arguments accepted"
grep -q "usage: run_instance.sh" "$tmp/e2" || err "3 arguments: $(cat "$tmp/e2")"
bash "$s/run_instance.sh" v1 test "$v/domain_mlp.onnx" "$v/domain_sat.vnnlib" "$tmp/x.txt" soon 2> "$tmp/e3" && err "timeout 'soon' accepted"
bash "$s/prepare_instance.sh" v1 test "$v/nope.onnx" "$v/domain_sat.vnnlib" 2> "$tmp/e4" && err "missing onnx accepted"
grep -q "no such file: .*nope.onnx" "$tmp/e4" || err "missing onnx: $(cat "$tmp/e4")"
bash "$s/prepare_instance.sh" v1 test "$src/models/fmnist_cnn.onnx" "$v/domain_sat.vnnlib" 2> "$tmp/e5" && err "mismatch accepted"
grep -q "property has 2 inputs" "$tmp/e5" || err "mismatch: $(cat "$tmp/e5")"

# ACAS Xu from ../shared: one sat and one unsat instance against the organisers' answers
a=$shared/vnncomp2022/acasxu
if [[ -f $a/expected.csv ]]; then
  for inst in "ACASXU_run2a_1_2_batch_2000.onnx prop_2.vnnlib" "ACASXU_run2a_1_1_batch_2000.onnx prop_1.vnnlib"; do
    set -- $inst
    want=$(awk -F, -v o="$1" -v p="$2" '$1 == o && $2 == p { print $4 }' "$a/expected.csv")
    bash "$s/prepare_instance.sh" v1 acasxu "$a/onnx/$1" "$a/vnnlib/$2" > /dev/null || err "prepare $1 $2"
    bash "$s/run_instance.sh" v1 acasxu "$a/onnx/$1" "$a/vnnlib/$2" "$tmp/acas.txt" 116
    expect_first "$tmp/acas.txt" "$want"
  done
else
  echo "(ACAS Xu absent from $shared: only the bundled instances ran)"
fi
[[ $fail == 0 ]] && echo OK
exit $fail
