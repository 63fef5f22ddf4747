#!/usr/bin/env bash
# VNN-COMP 2022 tool interface: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULT_FILE TIMEOUT
# Runs mlaudit verify on one instance and writes RESULT_FILE in the competition's format: the
# first line sat, unsat, timeout, unknown or error; after sat, the counterexample as
# ((X_0 v) ... (Y_0 v) ...), re-checked by mlaudit's forward pass before it is written. unsat
# rests on outward-rounded bound propagation, branch and bound and Z3 (docs/verify.md).
# mlaudit stops itself at TIMEOUT seconds; a guard kills it 5 s later if it has not, and the
# result is then 'timeout'. Threads: all cores (MLAUDIT_THREADS=N to choose).
set -uo pipefail
source "$(dirname "$0")/common.sh"
[[ $# -eq 6 ]] || die "usage: run_instance.sh v1 CATEGORY ONNX VNNLIB RESULT_FILE TIMEOUT"
check_version "$1"
category=$2 onnx=$3 vnnlib=$4 result=$5 timeout=$6
[[ $timeout =~ ^[0-9]+([.][0-9]+)?$ ]] || die "TIMEOUT must be seconds, got '$timeout'"
[[ -n $mlaudit && -x $mlaudit ]] || die "no mlaudit (run install_tool.sh v1, or set MLAUDIT)"
unzip_if_needed "$onnx"
unzip_if_needed "$vnnlib"
rm -f "$result"
tmp=$result.tmp.$$
guard=$(awk -v t="$timeout" 'BEGIN { printf "%d", t + 5.999 }')
mkdir -p "$state_dir"
timeout -k 2 "$guard" "$mlaudit" --quiet --threads "${MLAUDIT_THREADS:-0}" verify --model "$onnx" --vnnlib "$vnnlib" \
  --result "$tmp" --timeout "$timeout" > /dev/null &
guard_pid=$!
# the mlaudit under timeout, for prepare_instance.sh of the next instance
sleep 0.05
pgrep -P "$guard_pid" -x mlaudit > "$pid_file" 2> /dev/null || true
wait "$guard_pid"
rc=$?
rm -f "$pid_file"
if [[ -s $tmp ]]; then
  mv "$tmp" "$result"
elif [[ $rc == 124 || $rc == 137 ]]; then
  echo timeout > "$result"
else
  rm -f "$tmp"
  echo error > "$result"
fi
echo "$category $(basename "$onnx") $(basename "$vnnlib"): $(head -1 "$result")"
