#!/usr/bin/env bash
# A server killed (kill -9) and restarted 300 ms later on its port, under
# `ctower bench --reconnect --retry` with the default settings otherwise:
# with --deadline 2000 (each call may wait 2 s) no call fails; without a
# deadline the calls made while it was away fail (ECONNREFUSED), which is
# asserted too, so that the first assertion cannot pass for want of a
# restart. Loopback only; every process is stopped at the end.
#   restart.sh CTOWER
set -uo pipefail
ctower=$1
tmp=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# serve on port 0 first, to learn a free port; it is the one killed
start_serve() {
  "$ctower" serve "tcp://127.0.0.1:$1" 2>"$tmp/serve$2.log" &
  serve_pid=$!
  pids+=("$serve_pid")
  for _ in $(seq 100); do
    grep -q "echo on tcp" "$tmp/serve$2.log" && return 0
    kill -0 "$serve_pid" 2>/dev/null || break
    sleep 0.02
  done
  fail "ctower serve did not start: $(cat "$tmp/serve$2.log")"
}

# run LABEL [BENCH OPTIONS]: bench for 3 s, kill -9 at 1 s, restart 0.3 s later
run() {
  local label=$1
  shift
  start_serve 0 "$label-a"
  port=$(sed -n 's/.*echo on tcp:\/\/127\.0\.0\.1:\([0-9]*\) .*/\1/p' "$tmp/serve$label-a.log")
  "$ctower" bench --server "tcp://127.0.0.1:$port" --duration 3 --connections 4 --depth 16 \
    --reconnect --retry "$@" >"$tmp/bench-$label.out" 2>&1 &
  bench_pid=$!
  pids+=("$bench_pid")
  sleep 1
  kill -9 "$serve_pid"
  wait "$serve_pid" 2>/dev/null
  sleep 0.3
  start_serve "$port" "$label-b"
  wait "$bench_pid"
  bench_rc=$?
  kill "$serve_pid"
  wait "$serve_pid" 2>/dev/null
  grep -E "^  (requests|errors|retries)" "$tmp/bench-$label.out" | sed "s/^/$label: /"
}

run deadline --deadline 2000
[ "$bench_rc" = 0 ] || fail "with --deadline 2000, calls failed across the restart: $(cat "$tmp/bench-deadline.out")"
grep -q "^  errors         0$" "$tmp/bench-deadline.out" || fail "errors: $(cat "$tmp/bench-deadline.out")"
run none
grep -q "UV_ECONNREFUSED" "$tmp/bench-none.out" ||
  fail "without a deadline no call failed: was the server restarted at all? $(cat "$tmp/bench-none.out")"
if grep -l "Sanitizer\|runtime error" "$tmp"/*.log "$tmp"/*.out >/dev/null 2>&1; then
  cat "$tmp"/*.log "$tmp"/*.out >&2
  fail "a sanitizer's report"
fi
echo "ok: with a deadline no call failed across the restart; without one, some did"
