#!/usr/bin/env bash
# Smoke test of bench/compare, bench/compare-side, bench/cpu-split,
# bench/compare-redis, bench/compare-proxy and bench/proxy-cost: one short
# cell (per mode) each, a ratio (or CPU split, or count) printed, and no
# server left running.
set -uo pipefail
src=$1
build=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
export DURATION=0.3 ROUNDS=1 MODES="pipeline multiplex" CONNS=1 DEPTHS=4
for script in compare "compare-side server" "compare-side client"; do
  # shellcheck disable=SC2086 # the side is the script's first argument
  out=$("$src/bench/"$script "$build" 2>&1) || fail "bench/$script exited $?: $out"
  for mode in pipeline multiplex; do
    echo "$out" | grep -Eq "^$mode +1 +4 +[0-9]+ +[0-9]+ +[0-9]+\.[0-9]+" ||
      fail "bench/$script printed no $mode ratio: $out"
  done
done
# cpu-split prints a line per program and run: req/s, then user, sys and
# total ns per request, the total being user + sys.
for mode in pipeline multiplex; do
  out=$(MODE=$mode CONNS=2 DEPTH=4 "$src/bench/cpu-split" "$build" 2>&1) ||
    fail "bench/cpu-split exited $?: $out"
  for prog in baseline ctower; do
    echo "$out" | awk -v p=$prog '$1 == p && $2 > 0 && $3 >= 0 && $4 >= 0 &&
      ($5 - $3 - $4) ^ 2 < 0.05 { ok = 1 } END { exit !ok }' ||
      fail "bench/cpu-split printed no $mode line for $prog: $out"
  done
done
ROUNDS=x "$src/bench/cpu-split" "$build" >/dev/null 2>&1 && fail "cpu-split took ROUNDS=x"
# compare-redis: redis-benchmark and ctower bench against one redis-server,
# which is stopped at the end.
out=$(CONNS=1 DEPTHS=4 DURATION=0.2 "$src/bench/compare-redis" "$build" 2>&1) ||
  fail "bench/compare-redis exited $?: $out"
echo "$out" | grep -Eq "^ +1 +4 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+\.[0-9]+ " ||
  fail "bench/compare-redis printed no ratio: $out"
pgrep -f "compare-redis.sock" >/dev/null && fail "compare-redis left its redis-server running"
# compare-proxy: twemproxy and ctower proxy in front of one redis-server,
# all three stopped at the end.
out=$(CONNS=1 DEPTHS=4 TESTS=get DURATION=0.2 "$src/bench/compare-proxy" "$build" 2>&1) ||
  fail "bench/compare-proxy exited $?: $out"
echo "$out" | grep -Eq "^get +1 +4 +[0-9]+ +[0-9]+ +[0-9]+ +[0-9]+\.[0-9]+ " ||
  fail "bench/compare-proxy printed no ratio: $out"
pgrep -f "ctower-proxy.sock|twemproxy.yml" >/dev/null && fail "compare-proxy left a server running"
# proxy-cost: a count per stack. (Valgrind cannot run an ASan build: that
# is said, and the plain run of this test covers the counts.)
if [[ $(ldd "$build/ctower" 2>/dev/null) == *libasan* ]]; then # (not grep -q: pipefail)
  out=$("$src/bench/proxy-cost" "$build" 2>&1) && fail "bench/proxy-cost ran an ASan build"
  echo "$out" | grep -q "AddressSanitizer" || fail "bench/proxy-cost did not say why: $out"
else
  out=$(REQUESTS=3000 "$src/bench/proxy-cost" "$build" 2>&1) || fail "bench/proxy-cost exited $?: $out"
  for stack in "1 backend" "1 backend, --retry" "2 backends" "2 backends, --retry"; do
    echo "$out" | grep -Eq "^$stack +[1-9][0-9]*$" ||
      fail "bench/proxy-cost printed no count for $stack: $out"
  done
fi
REQUESTS=x "$src/bench/proxy-cost" "$build" >/dev/null 2>&1 && fail "proxy-cost took REQUESTS=x"
pgrep -f "proxy-cost|serve1.sock|serve2.sock" >/dev/null && fail "proxy-cost left a server running"
# share_bench: three paths, each with calls/s and a ratio to direct (1.00).
out=$("$build/share_bench" 0.05 1 16 2>&1) || fail "share_bench exited $?: $out"
for path in direct "same loop" "other thread"; do
  echo "$out" | grep -Eq "^$path +[1-9][0-9]* +[0-9]+\.[0-9]{2}$" ||
    fail "share_bench printed no figure for $path: $out"
done
echo "$out" | grep -Eq "^direct +[0-9]+ +1\.00$" || fail "share_bench's direct ratio is not 1: $out"
"$build/share_bench" 0 >/dev/null 2>&1 && fail "share_bench took 0 seconds"
# The baseline's multiplex client tags its requests and matches the answers
# by tag: against the echo servers, every request is answered.
out=$("$build/baseline" --mode multiplex --connections 2 --depth 8 --duration 0.3 --json) ||
  fail "baseline --mode multiplex exited $?"
echo "$out" | grep -Eq '"requests": [1-9]' || fail "baseline --mode multiplex made no requests: $out"
"$build/baseline" --mode multiplex --size 3 >/dev/null 2>&1 && fail "a multiplex payload too small for its tag was accepted"
"$build/baseline" --mode nosuch >/dev/null 2>&1 && fail "an unknown baseline mode was accepted"
ROUNDS=0 "$src/bench/compare" "$build" >/dev/null 2>&1 && fail "ROUNDS=0 was accepted"
"$src/bench/compare-side" "$build" >/dev/null 2>&1 && fail "compare-side ran without a side"
pgrep -f "$build/baseline --serve" >/dev/null && fail "a baseline server was left running"
# (only the servers compare-side starts, `serve tcp://127.0.0.1:0 --mode M
# --codec length`: tool_cli may run beside this test with servers of its own)
pgrep -f "$build/ctower serve tcp://127.0.0.1:0 --mode [a-z]* --codec length" >/dev/null &&
  fail "a ctower server was left running"
echo "bench scripts: all checks passed"
