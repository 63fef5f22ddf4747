#!/usr/bin/env bash
# Run every libFuzzer target (built by `make fuzz` into build-fuzz) for SECONDS each, on its
# committed seeds (fuzz/corpus/<format>) plus a working corpus (build-fuzz/corpus/<format>),
# and print executions, coverage, corpus size and crashes per target. Reproducers land in
# build-fuzz/artifacts/<format>/; commit one under tests/fixtures/fuzz/<format>/ with its fix.
#   scripts/fuzz.sh SECONDS [FORMAT...]     (formats: onnx npy csv idx vnnlib yaml json merge branches)
# FUZZ_RUNS=N makes a run reproducible (CI's smoke run): N inputs per target from the seeds alone
# with libFuzzer's -seed=${FUZZ_SEED:-1} and no working corpus, SECONDS only a cap.
# Limits (issue #25): > 5 s on one input is a timeout; > 2 GB of memory is a blow-up.
set -uo pipefail
seconds=${1:?usage: scripts/fuzz.sh SECONDS [FORMAT...]}
shift
formats=("$@")
[ ${#formats[@]} -eq 0 ] && formats=(onnx npy csv idx vnnlib yaml json merge branches)
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FUZZ_BUILD:-$root/build-fuzz}
status=0
printf '%-8s %12s %8s %8s %8s %8s  %s\n' target execs exec/s cov ft corpus crashes
for f in "${formats[@]}"; do
  bin=$build/fuzz/fuzz_$f
  [ -x "$bin" ] || { echo "fuzz.sh: $bin not built (run 'make fuzz')" >&2; exit 2; }
  work=$build/corpus/$f art=$build/artifacts/$f log=$build/logs/$f.log
  mkdir -p "$work" "$art" "$(dirname "$log")"
  touch "$log.start"
  dict=()
  [ -f "$root/fuzz/dict/$f.dict" ] && dict=(-dict="$root/fuzz/dict/$f.dict")
  corpora=("$work" "$root/fuzz/corpus/$f")
  repro=()
  if [ -n "${FUZZ_RUNS:-}" ]; then
    work=$(mktemp -d)  # a fresh working corpus: the run depends on the committed seeds only
    corpora=("$work" "$root/fuzz/corpus/$f")
    repro=(-runs="$FUZZ_RUNS" -seed="${FUZZ_SEED:-1}")
  fi
  ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=print_stacktrace=1 \
    "$bin" "${corpora[@]}" "${dict[@]}" "${repro[@]}" -max_total_time="$seconds" -timeout=5 -rss_limit_mb=2048 \
    -malloc_limit_mb=2048 -max_len=65536 -artifact_prefix="$art/" -print_final_stats=1 >"$log" 2>&1
  rc=$?
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  last=$(grep -E '^#[0-9]+' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  ft=$(grep -o 'ft: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  corp=$(grep -o 'corp: [0-9]*' <<<"$last" | grep -o '[0-9]*')
  crashes=$(find "$art" -maxdepth 1 -type f -newer "$log.start" 2>/dev/null | wc -l)
  printf '%-8s %12s %8s %8s %8s %8s  %s\n' "$f" "${execs:-?}" "${speed:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
    "$( [ $rc -eq 0 ] && echo 0 || echo "$crashes: $(ls -t "$art" | head -1) (exit $rc, see $log)")"
  [ $rc -eq 0 ] || status=1
done
exit $status
