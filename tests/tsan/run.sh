#!/usr/bin/env bash
# Builds the cross-thread stress programs with clang's ThreadSanitizer and
# runs them. Used by ctest (not in the ASan build: the two cannot mix).
#   share_stress: calls and cancels through a ct_share_handle_t to a
#                  service on another thread (every op completes once);
#   stats_stress: stats read (ct_stats_write) while two threads record;
#   share_threads: examples/share_threads.c, four threads calling one
#                  service on the main thread.
set -euo pipefail
src_dir=$1
out_dir=$2
command -v clang >/dev/null || { echo "clang is required for the TSan test" >&2; exit 1; }
mkdir -p "$out_dir"
for program in tests/tsan/share_stress.c tests/tsan/stats_stress.c examples/share_threads.c; do
  name=$(basename "$program" .c)
  # shellcheck disable=SC2046 # pkg-config's flags are several words
  clang -g -O1 -fsanitize=thread -I"$src_dir/include" "$src_dir/$program" \
    $(find "$src_dir/src" -name '*.c') $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm -o "$out_dir/$name"
  TSAN_OPTIONS="halt_on_error=1 exitcode=66" "$out_dir/$name"
done
