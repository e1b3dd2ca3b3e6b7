#!/usr/bin/env bash
# Builds the codec fuzz target with clang's libFuzzer (and ASan + UBSan) and
# runs it for a bounded time. Used by ctest; `SECONDS_PER_TARGET` overrides.
set -euo pipefail
src_dir=$1
out_dir=$2
seconds=${SECONDS_PER_TARGET:-10}
command -v clang >/dev/null || { echo "clang is required for the fuzz targets" >&2; exit 1; }
mkdir -p "$out_dir/corpus"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
  -I"$src_dir/include" \
  "$src_dir/tests/fuzz/fuzz_codec.c" "$src_dir/src/codec/codec.c" \
  "$src_dir/src/codec/length.c" "$src_dir/src/codec/line.c" \
  -o "$out_dir/fuzz_codec"
status=0
"$out_dir/fuzz_codec" -max_total_time="$seconds" -print_final_stats=1 "$out_dir/corpus" \
  >"$out_dir/fuzz.log" 2>&1 || status=$?
grep -E "^(stat::number_of_executed_units|Done)|ERROR|runtime error|SUMMARY" "$out_dir/fuzz.log" || true
if [ "$status" -ne 0 ]; then
  tail -n 40 "$out_dir/fuzz.log" >&2
  echo "fuzz_codec failed (exit $status)" >&2
fi
exit "$status"
