#!/usr/bin/env bash
# Builds the fuzz targets with clang's libFuzzer (and ASan + UBSan) and runs
# each for a bounded time. Used by ctest; `SECONDS_PER_TARGET` overrides.
# `RUNS=N` runs each target for N executions instead (`make fuzz-long`),
# `TARGETS="a b"` only those targets, `JOBS=N` that many at once.
#   fuzz_codec: the codecs, fed in read-sized chunks.
#   fuzz_client: scripted calls, cancels, replies and faults against the
#                pipeline and multiplex clients (exactly-once completion).
#   fuzz_address: address text (parse, format, parse again).
#   fuzz_layers: scripted polls, calls, cancels, releases, answers, failures,
#                full and dead endpoints and shutdowns against a limit layer
#                over a balancer (exactly-once completion, reservations).
#   fuzz_redis_keys: any bytes as the Redis command `ctower proxy --shard`
#                    routes by its key (tools/redis_keys.c).
#   fuzz_http: the HTTP/1.1 codec on either side, whole and cut (same
#              frames), every frame read as a view and accepted to send.
#   fuzz_http_filter: any bytes framed as requests, through `ctower proxy
#                     --codec http`'s filter (tools/http_filter.c): one
#                     request still, same method, target and body, no
#                     hop-by-hop field left, framing fields kept.
#   fuzz_http2: bytes from a peer, in chunks of any size, to ct_http2_t's
#               server or client side (every message delivered reads as one
#               whole HTTP/1.1 message; every request completes once).
#   fuzz_tls: a TLS client and server session over in-memory wires, cut
#             and lent in chunks of any size, readers that stop, flipped
#             bytes (exact plaintext or CT_ETLS, never wrong bytes).
set -euo pipefail
src_dir=$1
out_dir=$2
seconds=${SECONDS_PER_TARGET:-10}
command -v clang >/dev/null || { echo "clang is required for the fuzz targets" >&2; exit 1; }
mkdir -p "$out_dir"
flags=(-g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
       -I"$src_dir/include")
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_codec.c" "$src_dir/src/codec/codec.c" \
  "$src_dir/src/codec/length.c" "$src_dir/src/codec/line.c" "$src_dir/src/codec/resp.c" \
  "$src_dir/src/codec/resp_inline.c" \
  -o "$out_dir/fuzz_codec"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_http.c" "$src_dir/src/codec/codec.c" \
  "$src_dir/src/codec/http.c" "$src_dir/src/codec/http_chunked.c" "$src_dir/src/codec/http_message.c" "$src_dir/src/codec/http_context.c" "$src_dir/src/core/context.c" "$src_dir/src/core/buf.c" -lhttp_parser \
  -o "$out_dir/fuzz_http"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_context.c" "$src_dir/src/codec/http_context.c" \
  "$src_dir/src/core/context.c" -o "$out_dir/fuzz_context"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_http_filter.c" "$src_dir/tools/http_filter.c" \
  "$src_dir/tools/filter.c" $(find "$src_dir/src" -name '*.c') $(pkg-config --cflags --libs libuv openssl libnghttp2) \
  -lhttp_parser -lm -o "$out_dir/fuzz_http_filter"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_address.c" "$src_dir/src/transport/address.c" \
  $(pkg-config --cflags --libs libuv) -o "$out_dir/fuzz_address"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_client.c" $(find "$src_dir/src" -name '*.c') \
  $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm -o "$out_dir/fuzz_client"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_layers.c" $(find "$src_dir/src" -name '*.c') \
  $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm -o "$out_dir/fuzz_layers"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_redis_keys.c" "$src_dir/tools/redis_keys.c" \
  $(find "$src_dir/src" -name '*.c') $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm \
  -o "$out_dir/fuzz_redis_keys"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_http2.c" $(find "$src_dir/src" -name '*.c') \
  $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm -o "$out_dir/fuzz_http2"
clang "${flags[@]}" "$src_dir/tests/fuzz/fuzz_tls.c" "$src_dir/src/transport/tls.c" \
  "$src_dir/src/core/error.c" $(pkg-config --cflags --libs libuv openssl libnghttp2) -lhttp_parser -lm -o "$out_dir/fuzz_tls"

targets=${TARGETS:-fuzz_codec fuzz_http fuzz_context fuzz_http_filter fuzz_http2 fuzz_client fuzz_address fuzz_layers fuzz_redis_keys fuzz_tls}
if [ -n "${RUNS:-}" ]; then limit=(-runs="$RUNS"); else limit=(-max_total_time="$seconds"); fi

run_target() {
  local target=$1 status=0
  mkdir -p "$out_dir/corpus-$target"
  # the repository's seeds (if any) start the search where the formats are
  local seeds=()
  [ -d "$src_dir/tests/fuzz/seeds/$target" ] && seeds=("$src_dir/tests/fuzz/seeds/$target")
  "$out_dir/$target" "${limit[@]}" -print_final_stats=1 \
    -artifact_prefix="$out_dir/$target-" "$out_dir/corpus-$target" "${seeds[@]}" \
    >"$out_dir/$target.log" 2>&1 || status=$?
  echo "$target: $(grep -E '^stat::number_of_executed_units' "$out_dir/$target.log") $(grep -E '^stat::average_exec_per_sec' "$out_dir/$target.log")"
  if [ "$status" -ne 0 ]; then
    tail -n 40 "$out_dir/$target.log" >&2
    echo "$target failed (exit $status)" >&2
    return "$status"
  fi
}

# Up to JOBS targets at once; the first failure is the script's.
status=0
pids=()
for target in $targets; do
  run_target "$target" &
  pids+=($!)
  if [ "${#pids[@]}" -ge "${JOBS:-1}" ]; then
    wait "${pids[0]}" || status=$?
    pids=("${pids[@]:1}")
    [ "$status" -ne 0 ] && break
  fi
done
for pid in "${pids[@]}"; do wait "$pid" || { [ "$status" -eq 0 ] && status=$?; }; done
exit "$status"
