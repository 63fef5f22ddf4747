#!/usr/bin/env bash
# VNN-COMP 2022 tool interface: prepare_instance.sh v1 CATEGORY ONNX VNNLIB
# Before the timed run: stops the mlaudit run_instance.sh left from an earlier instance, unzips the
# instance's files when only .gz copies exist, and checks that the model loads and the property
# parses (exit 0), so that run_instance.sh's time is spent verifying. A model or property
# mlaudit cannot handle exits 1 with mlaudit's one-line reason (the instance is then scored
# as not run, never as a wrong answer).
set -uo pipefail
source "$(dirname "$0")/common.sh"
[[ $# -eq 4 ]] || die "usage: prepare_instance.sh v1 CATEGORY ONNX VNNLIB"
check_version "$1"
category=$2 onnx=$3 vnnlib=$4
[[ -n $mlaudit && -x $mlaudit ]] || die "no mlaudit (run install_tool.sh v1, or set MLAUDIT)"
# a run left from an earlier instance (its pid, recorded by run_instance.sh, if it is still mlaudit)
if [[ -f $pid_file ]]; then
  pid=$(cat "$pid_file" 2> /dev/null)
  if [[ $pid =~ ^[0-9]+$ ]] && [[ $(ps -o comm= -p "$pid" 2> /dev/null) == mlaudit ]]; then kill "$pid" 2> /dev/null || true; fi
  rm -f "$pid_file"
fi
unzip_if_needed "$onnx"
unzip_if_needed "$vnnlib"
# A 10 ms run checks the model, the property and their agreement (input and output counts)
# and stops almost at once: its answer is 'timeout' or a quick one, never an error.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
if ! "$mlaudit" --quiet verify --model "$onnx" --vnnlib "$vnnlib" --result "$tmp" --timeout 0.01 > /dev/null; then
  die "category $category: mlaudit cannot run $onnx with $vnnlib (see the message above)"
fi
echo "prepared $category: $(basename "$onnx") $(basename "$vnnlib")"
