#!/usr/bin/env bash
# Smoke test of the ctower tool: usage errors, bench in both modes, serve with
# bench --server and call over a Unix socket, graceful shutdown, a refused
# connection, serve --threads, TLS, HTTP.
set -uo pipefail
ctower=$1
tmp=$(mktemp -d)
server_pid=
server2_pid=
proxy_pid=
cleanup() { # (a server the test stopped with SIGSTOP must be continued to die)
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null && kill -CONT "$server_pid" 2>/dev/null
  [ -n "$server2_pid" ] && kill "$server2_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# SIGTERM to the process whose pid is in the variable named $1, then: it
# must exit 0, having said in the log $2 (if given) that it shut down.
stop() {
  local name=$1 log=${2:-} pid=${!1} status
  kill -TERM "$pid"
  wait "$pid"
  status=$?
  printf -v "$name" '%s' ''
  [ "$status" -eq 0 ] || fail "$name exited $status after SIGTERM"
  [ -z "$log" ] || grep -q "shutting down" "$log" || fail "$name did not shut down gracefully"
}
expect_exit() { # expected command...
  local want=$1; shift
  "$@" >"$tmp/out" 2>"$tmp/err"
  local got=$?
  [ "$got" -eq "$want" ] || { cat "$tmp/out" "$tmp/err" >&2; fail "'$*' exited $got, expected $want"; }
}

expect_exit 0 "$ctower" --help
grep -q "ctower bench" "$tmp/out" || fail "--help shows no usage"
expect_exit 2 "$ctower"
expect_exit 2 "$ctower" frobnicate
grep -q "unknown command 'frobnicate'" "$tmp/err" || fail "an unknown command is not named"
# --version: the library's, as the header says it
version=$(sed -n 's/^#define CT_VERSION_\(MAJOR\|MINOR\|PATCH\) \([0-9]*\)\( .*\)\{0,1\}$/\2/p' \
  "$(dirname "$0")/../../include/ctower/version.h" | paste -sd.)
[ -n "$version" ] || fail "no version in include/ctower/version.h"
expect_exit 0 "$ctower" --version
grep -qx "ctower $version" "$tmp/out" || fail "--version printed '$(cat "$tmp/out")', not $version"
# each command's own help, by --help, -h and `ctower help COMMAND`, exit 0
for cmd in serve bench proxy call; do
  for form in "$cmd --help" "$cmd -h" "help $cmd"; do
    # shellcheck disable=SC2086 # $form is the words of the command line
    expect_exit 0 "$ctower" $form
    grep -q "^  ctower $cmd " "$tmp/out" || fail "'ctower $form' shows no usage of $cmd"
    for other in serve bench proxy call; do
      [ "$other" = "$cmd" ] || ! grep -q "^  ctower $other " "$tmp/out" ||
        fail "'ctower $form' shows $other's usage too"
    done
  done
done
expect_exit 0 "$ctower" serve tcp://127.0.0.1:1 --help # after other arguments too
grep -q "^  ctower serve " "$tmp/out" || fail "serve ADDR --help shows no usage"
expect_exit 0 "$ctower" help
grep -q "ctower proxy" "$tmp/out" || fail "'ctower help' shows no usage"
expect_exit 2 "$ctower" help frobnicate
grep -q "unknown command" "$tmp/err" || fail "'ctower help frobnicate' is not refused"
expect_exit 2 "$ctower" bench --depth 0
grep -q "depth" "$tmp/err" || fail "a bad --depth is not explained"
expect_exit 2 "$ctower" bench --mode multiplex --codec line
grep -q "length codec" "$tmp/err" || fail "multiplex + line is not explained"
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --mode multiplex --codec line
grep -q "length codec" "$tmp/err" || fail "serve: multiplex + line is not explained"
expect_exit 2 "$ctower" bench --bogus
grep -q "not an option of bench" "$tmp/err" || fail "bench: an unknown option is not named: $(cat "$tmp/err")"
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --depth 4
grep -q "not an option of serve" "$tmp/err" || fail "serve: a bench option is not refused"
expect_exit 2 "$ctower" serve "unix://$tmp/t.sock" --threads 2
grep -q "TCP address" "$tmp/err" || fail "serve: --threads over a Unix socket is not explained"
expect_exit 2 "$ctower" bench --size 16000000 --depth 65536 --connections 100
grep -q "memory" "$tmp/err" || fail "a run larger than memory is not explained"
expect_exit 2 "$ctower" bench --depth 1.5
grep -q "whole number" "$tmp/err" || fail "a fractional --depth is not explained"
expect_exit 2 "$ctower" bench --duration nan
expect_exit 2 "$ctower" bench --server tcp://256.0.0.1:1
grep -q "bad address" "$tmp/err" || fail "a bad --server address is not explained"
# More connections than descriptors: said at once, not a run that hangs.
(ulimit -Sn 1000 && ulimit -Hn 1000 && expect_exit 2 "$ctower" bench --connections 1000 --duration 1) || exit 1
grep -q "descriptors" "$tmp/err" || fail "the descriptor limit is not explained"

for mode in pipeline multiplex; do
  expect_exit 0 "$ctower" bench --mode "$mode" --connections 4 --depth 8 --requests 5000 --json
  grep -q '"requests": 5000,' "$tmp/out" || fail "$mode: not exactly 5000 requests: $(cat "$tmp/out")"
  grep -q '"errors": 0,' "$tmp/out" || fail "$mode: errors: $(cat "$tmp/out")"
done

# Reconnecting clients (ct_reconnect_t): the same run, and a refused server
# counted as ECONNREFUSED for every request that waited for it.
for mode in pipeline multiplex; do
  expect_exit 0 "$ctower" bench --reconnect --mode "$mode" --connections 4 --depth 8 --requests 5000 --json
  grep -q '"requests": 5000,' "$tmp/out" && grep -q '"errors": 0,' "$tmp/out" &&
    grep -q '"reconnect": true' "$tmp/out" || fail "--reconnect, $mode: $(cat "$tmp/out")"
done
expect_exit 1 "$ctower" bench --reconnect --server tcp://127.0.0.1:1 --connections 2 --depth 3 --json
grep -q '"UV_ECONNREFUSED": 6' "$tmp/out" || fail "--reconnect, refused: $(cat "$tmp/out")"

# Under a retry layer (ct_retry_t): the same runs, with nothing to retry; a
# refused server's requests are tried 3 times each (2 retries), then counted.
for mode in pipeline multiplex; do
  expect_exit 0 "$ctower" bench --retry --reconnect --mode "$mode" --connections 4 --depth 8 \
    --requests 5000 --json
  grep -q '"requests": 5000,' "$tmp/out" && grep -q '"errors": 0,' "$tmp/out" &&
    grep -q '"retry": true' "$tmp/out" && grep -q '"retries": 0,' "$tmp/out" ||
    fail "--retry, $mode: $(cat "$tmp/out")"
done
expect_exit 1 "$ctower" bench --retry --reconnect --server tcp://127.0.0.1:1 --connections 2 \
  --depth 3 --json
grep -q '"UV_ECONNREFUSED": 6' "$tmp/out" && grep -q '"retries": 12,' "$tmp/out" &&
  grep -q '"calls_out_of_attempts": 6' "$tmp/out" || fail "--retry, refused: $(cat "$tmp/out")"

# Two client loops and two server loops.
expect_exit 0 "$ctower" bench --threads 2 --connections 4 --depth 4 --requests 4000 --json
grep -q '"requests": 4000,' "$tmp/out" && grep -q '"threads": 2' "$tmp/out" ||
  fail "--threads 2: $(cat "$tmp/out")"

# Over 1,024 ready connections libuv polls again within a loop turn, and an
# answer can arrive in the turn its request was written: the latency must
# still be measured (a clock read once per turn recorded it as 0 us).
expect_exit 0 "$ctower" bench --connections 1500 --depth 1 --requests 30000 --json
p50=$(sed -n 's/.*"p50_us": \([0-9.]*\).*/\1/p' "$tmp/out")
awk "BEGIN{exit !($p50 > 0)}" || fail "p50 of 0 us with 1500 connections: $(cat "$tmp/out")"

# The human-readable table.
expect_exit 0 "$ctower" bench --connections 2 --depth 4 --requests 1000
grep -q "req/s" "$tmp/out" && grep -q "p99.9" "$tmp/out" || fail "no table: $(cat "$tmp/out")"

# serve + bench --server, line codec, over a Unix socket.
sock="$tmp/echo.sock"
"$ctower" serve "unix://$sock" --codec line 2>"$tmp/serve.log" &
server_pid=$!
# (its log says so once it listens: the file exists a moment before)
for _ in $(seq 50); do grep -q " on unix:" "$tmp/serve.log" && break; sleep 0.1; done
grep -q " on unix:" "$tmp/serve.log" || fail "serve did not listen: $(cat "$tmp/serve.log")"
expect_exit 0 "$ctower" bench --server "unix://$sock" --codec line --connections 3 --requests 3000 --json
grep -q '"errors": 0,' "$tmp/out" || fail "serve/bench: $(cat "$tmp/out")"
# A peer that resets while a write is pending must not kill the server:
# SIGPIPE (signal 13, bit 12 of SigIgn) is ignored.
sigign=$(sed -n 's/^SigIgn:[[:space:]]*//p' "/proc/$server_pid/status")
(( (16#$sigign >> 12) & 1 )) || fail "serve does not ignore SIGPIPE (SigIgn $sigign)"
# call: the answers in order, one per line, from arguments or from the input.
expect_exit 0 "$ctower" call "unix://$sock" --codec line hello "two words" ""
printf 'hello\ntwo words\n\n' | cmp -s - "$tmp/out" || fail "call: $(cat "$tmp/out" "$tmp/err")"
seq 1 2000 | "$ctower" call "unix://$sock" --codec line >"$tmp/out" 2>"$tmp/err" ||
  fail "call from the input: $(cat "$tmp/err")"
seq 1 2000 | cmp -s - "$tmp/out" || fail "call from the input: answers out of order or missing"
expect_exit 1 "$ctower" call "unix://$tmp/nobody.sock" hi
grep -q "cannot call" "$tmp/err" || fail "call: a refused connection is not explained"
expect_exit 2 "$ctower" call "unix://$sock" --depth 4 hi
# A server that answers nothing (stopped): the run still ends, 5 s after its
# duration, and the requests left count as errors, not as requests.
kill -STOP "$server_pid"
start=$(date +%s)
expect_exit 1 "$ctower" bench --server "unix://$sock" --codec line --connections 2 --depth 4 \
  --duration 0.5 --json
(($(date +%s) - start < 20)) || fail "a silent server kept the bench running"
grep -q '"requests": 0,' "$tmp/out" && grep -q '"CT_ECLOSED": 8' "$tmp/out" ||
  fail "silent server: $(cat "$tmp/out")"
start=$(date +%s)
expect_exit 1 "$ctower" bench --server "unix://$sock" --codec line --connections 2 --depth 4 \
  --requests 1000 --json
(($(date +%s) - start < 20)) || fail "a silent server kept a --requests run going"
grep -q '"CT_ECLOSED": 8' "$tmp/out" || fail "silent server, --requests: $(cat "$tmp/out")"
start=$(date +%s)
expect_exit 1 "$ctower" call "unix://$sock" --codec line --timeout 0.5 a b
(($(date +%s) - start < 5)) || fail "a silent server kept call waiting"
[ "$(grep -c CT_ETIMEDOUT "$tmp/err")" -eq 2 ] || fail "call, silent server: $(cat "$tmp/err")"
kill -CONT "$server_pid"
stop server_pid "$tmp/serve.log"
[ ! -e "$sock" ] || fail "serve left its socket file behind"

# serve --threads 2: two loops accept on one port (port 0: the one the first
# got), and the kernel gives each some of the 16 connections; both threads
# then use CPU time.
"$ctower" serve tcp://127.0.0.1:0 --threads 2 --mode multiplex 2>"$tmp/serve.log" &
server_pid=$!
for _ in $(seq 50); do grep -q "echo on" "$tmp/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*echo on \(tcp:[^ ]*\) .*/\1/p' "$tmp/serve.log")
[ -n "$addr" ] || fail "serve --threads 2 did not listen: $(cat "$tmp/serve.log")"
expect_exit 0 "$ctower" bench --server "$addr" --mode multiplex --connections 16 --depth 8 \
  --duration 1 --json
grep -q '"errors": 0,' "$tmp/out" || fail "serve --threads 2: $(cat "$tmp/out")"
busy=0
for t in /proc/$server_pid/task/*/stat; do
  ticks=$(awk '{print $14 + $15}' "$t")
  ((ticks > 0)) && busy=$((busy + 1))
done
((busy == 2)) || fail "serve --threads 2: $busy of its threads served ($(ls /proc/$server_pid/task | wc -l) threads)"
seq 1 500 | "$ctower" call "$addr" --mode multiplex >"$tmp/out" 2>"$tmp/err" ||
  fail "call --mode multiplex: $(cat "$tmp/err")"
seq 1 500 | cmp -s - "$tmp/out" || fail "call --mode multiplex: answers out of order or missing"
stop server_pid

# --codec crlf: lines end in "\r\n" both ways (checked on the wire), and
# bench and call speak it.
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --mode multiplex --codec crlf
"$ctower" serve tcp://127.0.0.1:0 --codec crlf 2>"$tmp/serve.log" &
server_pid=$!
for _ in $(seq 50); do grep -q "echo on" "$tmp/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*echo on \(tcp:[^ ]*\) .*/\1/p' "$tmp/serve.log")
[ -n "$addr" ] || fail "serve --codec crlf did not listen: $(cat "$tmp/serve.log")"
port=${addr##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'hello\r\nbare\n' >&3
IFS= read -r line1 <&3
IFS= read -r line2 <&3
exec 3<&-
[ "$line1" = $'hello\r' ] && [ "$line2" = $'bare\r' ] ||
  fail "serve --codec crlf answered '$line1' '$line2'"
expect_exit 0 "$ctower" bench --server "$addr" --codec crlf --connections 2 --requests 2000 --json
grep -q '"errors": 0,' "$tmp/out" && grep -q '"codec": "crlf"' "$tmp/out" ||
  fail "bench --codec crlf: $(cat "$tmp/out")"
seq 1 300 | "$ctower" call "$addr" --codec crlf >"$tmp/out" 2>"$tmp/err" ||
  fail "call --codec crlf: $(cat "$tmp/err")"
seq 1 300 | cmp -s - "$tmp/out" || fail "call --codec crlf: answers out of order or missing"
stop server_pid

# --codec resp: serve echoes whole RESP values; call sends each message's
# words as a command and prints each reply on one line; bench sends a command
# (PING, or --command's words): against its own echo, every reply is the
# command itself, and both directions' bytes are counted.
expect_exit 2 "$ctower" bench --command PING
grep -q "for --codec resp" "$tmp/err" || fail "bench --command without resp is not explained"
expect_exit 2 "$ctower" bench --codec resp --command " "
grep -q "words of a command" "$tmp/err" || fail "an empty --command is not explained"
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --codec resp --command PING
expect_exit 0 "$ctower" bench --codec resp --connections 2 --depth 4 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" && grep -q '"command": "PING"' "$tmp/out" ||
  fail "bench --codec resp: $(cat "$tmp/out")"
# PING is 14 bytes as a command, and echoed: 28 bytes per request
awk '{match($0, /"requests_per_sec": [0-9.]+/); r = substr($0, RSTART + 20, RLENGTH - 20)
      match($0, /"mb_per_sec": [0-9.]+/); m = substr($0, RSTART + 14, RLENGTH - 14)
      d = m / (r * 28e-6); exit !(d > 0.99 && d < 1.01)}' "$tmp/out" ||
  fail "bench --codec resp counts the wrong bytes: $(cat "$tmp/out")"
expect_exit 0 "$ctower" bench --codec resp --command 'SET "k v' --requests 100 --json
grep -q '"command": "SET \\"k v"' "$tmp/out" || fail "the command is not quoted in JSON: $(cat "$tmp/out")"
"$ctower" serve tcp://127.0.0.1:0 --codec resp 2>"$tmp/serve.log" &
server_pid=$!
for _ in $(seq 50); do grep -q "echo on" "$tmp/serve.log" && break; sleep 0.1; done
addr=$(sed -n 's/.*echo on \(tcp:[^ ]*\) .*/\1/p' "$tmp/serve.log")
[ -n "$addr" ] || fail "serve --codec resp did not listen: $(cat "$tmp/serve.log")"
out=$("$ctower" call "$addr" --codec resp "SET  k	v" PING | paste -sd '|')
[ "$out" = "[SET, k, v]|[PING]" ] || fail "call --codec resp through serve: '$out'"
port=${addr##*:}
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'PING\r\n' >&3 # an inline command is not RESP: the server closes the connection
IFS= read -r -t 5 line <&3
rs=$? # 1: the end of the stream; over 128: no answer and no close in 5 s
((rs == 1)) || fail "serve --codec resp, inline command: read status $rs, '$line'"
exec 3<&-
stop server_pid

# proxy: usage errors; then in front of serve, in both modes, with bench and
# call through it. With the backend gone, a call through the proxy fails
# (the length codec has no way to say "error": the connection closes), and
# SIGTERM ends the proxy gracefully.
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0
grep -q "usage: ctower proxy" "$tmp/err" || fail "proxy without a backend is not explained"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 --mode multiplex --codec line
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 nonsense://x
grep -q "backend nonsense://x" "$tmp/err" || fail "a bad backend address is not explained"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 --depth 4
# shellcheck disable=SC2046 # 65 backends, one word each
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 $(seq -f 'tcp://127.0.0.1:%g' 1 65)
grep -q "64 backends at most" "$tmp/err" || fail "too many backends are not explained"
# Waits for "LINE" (an extended regex, with the address in \1) in LOG; prints the address.
address_in() { # log regex
  local a
  for _ in $(seq 50); do
    a=$(sed -En "s/$2/\1/p" "$1")
    [ -n "$a" ] && { echo "$a"; return 0; }
    sleep 0.1
  done
  return 1
}
for mode in pipeline multiplex; do
  retry=
  [ "$mode" = multiplex ] && retry=--retry
  "$ctower" serve tcp://127.0.0.1:0 --mode "$mode" 2>"$tmp/serve.log" &
  server_pid=$!
  addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') ||
    fail "serve did not listen: $(cat "$tmp/serve.log")"
  # shellcheck disable=SC2086 # retry is one word or none
  "$ctower" proxy tcp://127.0.0.1:0 "$addr" --mode "$mode" --timeout 0.5 $retry 2>"$tmp/proxy.log" &
  proxy_pid=$!
  paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') ||
    fail "proxy did not listen: $(cat "$tmp/proxy.log")"
  expect_exit 0 "$ctower" bench --server "$paddr" --mode "$mode" --connections 8 --depth 8 \
    --requests 20000 --json
  grep -q '"requests": 20000, "errors": 0,' "$tmp/out" || fail "bench through proxy, $mode: $(cat "$tmp/out")"
  seq 1 300 | "$ctower" call "$paddr" --mode "$mode" >"$tmp/out" 2>"$tmp/err" ||
    fail "call through proxy, $mode: $(cat "$tmp/err")"
  seq 1 300 | cmp -s - "$tmp/out" || fail "call through proxy, $mode: answers out of order or missing"
  # A backend that stops answering: the proxy gives up on the request after
  # its --timeout, well before the caller's own 5 s.
  kill -STOP "$server_pid"
  start=$(date +%s%N)
  expect_exit 1 "$ctower" call "$paddr" --mode "$mode" --timeout 5 hi
  (($(date +%s%N) - start < 3000000000)) || fail "proxy, $mode: a silent backend held the call"
  kill -CONT "$server_pid"
  stop server_pid
  expect_exit 1 "$ctower" call "$paddr" --mode "$mode" --timeout 5 hi
  stop proxy_pid "$tmp/proxy.log"
done

# proxy over three backends, in both modes: one that nothing listens on,
# and two echo servers. With --retry every request is answered: one that
# went to the dead backend is tried again on another, and the dead one is
# left out. Then the echo servers stop one after the other: with one left,
# still no error; with none, the call fails.
for mode in pipeline multiplex; do
  "$ctower" serve tcp://127.0.0.1:0 --mode "$mode" 2>"$tmp/serve.log" &
  server_pid=$!
  "$ctower" serve tcp://127.0.0.1:0 --mode "$mode" 2>"$tmp/serve2.log" &
  server2_pid=$!
  addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve did not listen"
  addr2=$(address_in "$tmp/serve2.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve did not listen"
  "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 "$addr" "$addr2" --mode "$mode" --retry \
    2>"$tmp/proxy.log" &
  proxy_pid=$!
  paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') ||
    fail "balanced proxy did not listen: $(cat "$tmp/proxy.log")"
  grep -q "to tcp://127.0.0.1:1, $addr, $addr2 (.*balanced, retrying)" "$tmp/proxy.log" ||
    fail "the proxy does not name its backends: $(cat "$tmp/proxy.log")"
  for round in 1 2; do
    expect_exit 0 "$ctower" bench --server "$paddr" --mode "$mode" --connections 8 --depth 8 \
      --requests 20000 --json
    grep -q '"requests": 20000, "errors": 0,' "$tmp/out" ||
      fail "bench through a balanced proxy, $mode: $(cat "$tmp/out")"
    if ((round == 1)); then # SIGUSR1: a line per backend; both echo servers served
      kill -USR1 "$proxy_pid"
      for _ in $(seq 50); do (($(grep -c "backend .*requests" "$tmp/proxy.log") >= 3)) && break; sleep 0.1; done
      for a in "$addr" "$addr2"; do
        grep -Eq "backend $a: 1 connects, 0 failed; [1-9][0-9]* requests, 0 failures" "$tmp/proxy.log" ||
          fail "backend $a, $mode, served nothing: $(cat "$tmp/proxy.log")"
      done
      grep -Eq "backend tcp://127.0.0.1:1: 0 connects, [1-9][0-9]* failed; ([0-9]+) requests, \1 failures" \
        "$tmp/proxy.log" || fail "the dead backend's figures, $mode: $(cat "$tmp/proxy.log")"
    fi
    stop server_pid
    server_pid=$server2_pid server2_pid=
  done
  expect_exit 1 "$ctower" call "$paddr" --mode "$mode" --timeout 5 hi
  stop proxy_pid "$tmp/proxy.log"
done

# proxy --backends-file: the backends follow a file, read again on SIGHUP.
# While a bench runs through the proxy, a second backend is added, then the
# first removed (its requests in flight answered first) and its server
# stopped: not one request fails. A bad file changes nothing. (The
# balancer weighs round-trip times here: --load peak-ewma.)
"$ctower" serve tcp://127.0.0.1:0 2>"$tmp/serve.log" &
server_pid=$!
"$ctower" serve tcp://127.0.0.1:0 2>"$tmp/serve2.log" &
server2_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve did not listen"
addr2=$(address_in "$tmp/serve2.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve did not listen"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 "$addr" --backends-file "$tmp/backends"
grep -q "usage" "$tmp/err" || fail "backends given twice over is not refused"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 --backends-file "$tmp/missing"
grep -q "missing" "$tmp/err" || fail "a missing backends file is not explained: $(cat "$tmp/err")"
printf '# the first one\n  %s  \n\n' "$addr" >"$tmp/backends"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 "$addr" --shard
grep -q -- "--shard needs --codec resp" "$tmp/err" || fail "--shard without RESP is not explained"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 --backends-file "$tmp/backends" --codec resp --shard
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 "$addr" --load fastest
grep -q "in-flight or peak-ewma" "$tmp/err" || fail "a bad --load is not explained"
"$ctower" proxy tcp://127.0.0.1:0 --backends-file "$tmp/backends" --load peak-ewma 2>"$tmp/proxy.log" &
proxy_pid=$!
paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') || fail "proxy --backends-file did not listen"
grep -q "backends from $tmp/backends: 1 added, 0 removed, 1 in use" "$tmp/proxy.log" ||
  fail "the first backends file: $(cat "$tmp/proxy.log")"
wait_log() { # regex: what the proxy must say within 5 s
  for _ in $(seq 50); do grep -Eq "$1" "$tmp/proxy.log" && return 0; sleep 0.1; done
  fail "the proxy did not say '$1': $(cat "$tmp/proxy.log")"
}
"$ctower" bench --server "$paddr" --connections 4 --depth 8 --duration 3 --json >"$tmp/long" 2>&1 &
bench_pid=$!
sleep 0.5
printf '%s\n%s\n' "$addr" "$addr2" >"$tmp/backends"
kill -HUP "$proxy_pid"
wait_log "1 added, 0 removed, 2 in use"
sleep 0.7
printf '%s\n' "$addr2" >"$tmp/backends"
kill -HUP "$proxy_pid"
wait_log "backend $addr removed, its requests answered"
stop server_pid
wait "$bench_pid" || fail "bench while the backends changed: $(cat "$tmp/long")"
grep -q '"errors": 0,' "$tmp/long" || fail "bench while the backends changed: $(cat "$tmp/long")"
kill -USR1 "$proxy_pid"
wait_log "backend $addr2: 1 connects, 0 failed; [1-9][0-9]* requests, 0 failures, [0-9]+ in flight, [0-9]+ us round trip"
grep -q "backend $addr:" "$tmp/proxy.log" && fail "a removed backend is still reported"
echo "nonsense" >"$tmp/backends"
kill -HUP "$proxy_pid"
wait_log "backends:1: not an address"
wait_log "backends unchanged"
expect_exit 0 "$ctower" bench --server "$paddr" --connections 2 --requests 2000 --json
grep -q '"requests": 2000, "errors": 0,' "$tmp/out" || fail "after a bad backends file: $(cat "$tmp/out")"
stop proxy_pid "$tmp/proxy.log"
stop server2_pid

# proxy --breaker 3: a backend that stops answering times out three
# requests in a row; then its breaker opens and the next ones are refused
# at once, without waiting for their time-out (the proxy's report counts
# them). Bad values are refused.
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 --breaker 0
grep -q -- "--breaker wants a whole number" "$tmp/err" || fail "a bad --breaker is not explained"
"$ctower" serve "unix://$tmp/slow.sock" 2>"$tmp/serve.log" &
server_pid=$!
address_in "$tmp/serve.log" '.*echo on (unix:[^ ]*) .*' >/dev/null || fail "serve did not listen"
"$ctower" proxy "unix://$tmp/breaker.sock" "unix://$tmp/slow.sock" --timeout 0.2 --breaker 3 \
  2>"$tmp/proxy.log" &
proxy_pid=$!
address_in "$tmp/proxy.log" '.* on (unix:[^ ]*) to .*' >/dev/null || fail "proxy --breaker did not listen"
expect_exit 0 "$ctower" call "unix://$tmp/breaker.sock" hi
kill -STOP "$server_pid"
for i in 1 2 3 4 5 6; do
  expect_exit 1 "$ctower" call "unix://$tmp/breaker.sock" --timeout 5 "x$i"
done
kill -USR1 "$proxy_pid"
wait_log "breaker open, opened 1 times, 3 refused"
kill -CONT "$server_pid"
stop proxy_pid "$tmp/proxy.log"
stop server_pid

# proxy bounds: with --rate 2000 (a burst of 200), 2,000 requests take 0.9 s
# at least, whatever the clients ask for; with --max-in-flight too, nothing
# fails, the clients wait. Bad values are refused.
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 --rate 0
grep -q -- "--rate wants a whole number" "$tmp/err" || fail "a bad --rate is not explained"
expect_exit 2 "$ctower" proxy tcp://127.0.0.1:0 tcp://127.0.0.1:1 --max-in-flight 1.5
expect_exit 2 "$ctower" bench --rate 10
"$ctower" serve tcp://127.0.0.1:0 2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve did not listen"
"$ctower" proxy tcp://127.0.0.1:0 "$addr" --rate 2000 --max-in-flight 4 2>"$tmp/proxy.log" &
proxy_pid=$!
paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') || fail "bounded proxy did not listen"
grep -q "4 in flight at most, 2000 requests/s at most" "$tmp/proxy.log" ||
  fail "the proxy does not state its bounds: $(cat "$tmp/proxy.log")"
expect_exit 0 "$ctower" bench --server "$paddr" --connections 4 --depth 16 --requests 2000 --json
grep -q '"requests": 2000, "errors": 0,' "$tmp/out" || fail "bench through a bounded proxy: $(cat "$tmp/out")"
rps=$(sed -n 's/.*"requests_per_sec": \([0-9]*\).*/\1/p' "$tmp/out")
((rps <= 2400)) || fail "2,000 requests through --rate 2000 ran at $rps req/s"
stop proxy_pid "$tmp/proxy.log"
stop server_pid

# TLS: a certificate made by openssl(1) for 127.0.0.1. serve listens with
# it; call, bench and a proxy (TLS on both sides) connect trusting it; an
# untrusted certificate and a plain client are refused; bad options are
# explained.
expect_exit 2 "$ctower" serve tcp://127.0.0.1:0 --tls-cert "$tmp/cert.pem"
grep -q "go together" "$tmp/err" || fail "--tls-cert without --tls-key is not explained"
expect_exit 2 "$ctower" bench --tls-ca "$tmp/cert.pem"
grep -q "is for --tls" "$tmp/err" || fail "--tls-ca without --tls is not explained"
expect_exit 2 "$ctower" serve tcp://127.0.0.1:0 --tls-cert "$tmp/none.pem" --tls-key "$tmp/none.pem"
grep -q "none.pem: TLS failed" "$tmp/err" || fail "a missing certificate file is not explained: $(cat "$tmp/err")"
expect_exit 2 "$ctower" call tcp://127.0.0.1:1 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" hi
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null ||
  fail "openssl could not make a certificate"
"$ctower" serve tcp://127.0.0.1:0 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" 2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --tls-cert did not listen"
grep -q "length codec, TLS" "$tmp/serve.log" || fail "serve does not say it speaks TLS: $(cat "$tmp/serve.log")"
expect_exit 0 "$ctower" call "$addr" --tls --tls-ca "$tmp/cert.pem" hello
[ "$(cat "$tmp/out")" = hello ] || fail "call over TLS: '$(cat "$tmp/out")'"
for mode in pipeline multiplex; do
  [ "$mode" = multiplex ] && { stop server_pid; "$ctower" serve tcp://127.0.0.1:0 --mode multiplex \
    --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" 2>"$tmp/serve.log" & server_pid=$!; }
  addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --tls-cert did not listen"
  expect_exit 0 "$ctower" bench --server "$addr" --mode "$mode" --tls --tls-ca "$tmp/cert.pem" \
    --connections 4 --depth 8 --requests 4000 --json
  grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "$mode bench over TLS: $(cat "$tmp/out")"
  grep -q '"tls": true' "$tmp/out" || fail "bench --json does not say TLS"
done
expect_exit 1 "$ctower" call "$addr" --mode multiplex --tls --timeout 5 hi # the system's CAs
grep -q "certificate not accepted" "$tmp/err" || fail "an untrusted server is not explained: $(cat "$tmp/err")"
expect_exit 1 "$ctower" call "$addr" --mode multiplex --timeout 5 hi
"$ctower" proxy tcp://127.0.0.1:0 "$addr" --mode multiplex --tls --tls-ca "$tmp/cert.pem" \
  --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" 2>"$tmp/proxy.log" &
proxy_pid=$!
paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') || fail "TLS proxy did not listen"
grep -q "TLS to clients, TLS to backends" "$tmp/proxy.log" || fail "proxy does not say TLS: $(cat "$tmp/proxy.log")"
expect_exit 0 "$ctower" bench --server "$paddr" --mode multiplex --tls --tls-ca "$tmp/cert.pem" \
  --connections 4 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench through a TLS proxy: $(cat "$tmp/out")"
stop proxy_pid "$tmp/proxy.log"
stop server_pid
expect_exit 0 "$ctower" bench --tls --connections 4 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench --tls in-process: $(cat "$tmp/out")"

# --codec http: serve answers each request with its body; curl (a client of
# its own) and call (pipelined, a HEAD among GETs, whose answer has no body)
# get the right answers; bench's requests all succeed, in-process and through
# a proxy; with the backend gone the proxy answers 502.
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --mode multiplex --codec http
grep -q "length codec" "$tmp/err" || fail "multiplex + http is not explained"
expect_exit 0 "$ctower" bench --codec http --connections 2 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" && grep -q '"codec": "http"' "$tmp/out" ||
  fail "bench --codec http: $(cat "$tmp/out")"
"$ctower" serve tcp://127.0.0.1:0 --codec http 2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --codec http did not listen"
hostport=${addr#tcp://}
out=$(curl -s --max-time 5 -d 'curl body' "http://$hostport/x") || fail "curl to serve --codec http failed"
[ "$out" = "curl body" ] || fail "curl's POST through serve --codec http: '$out'"
# Expect: 100-continue: the server answers it, so curl (which would wait
# 10 s for it here) sends the body at once; its trace shows the answer
head -c 2000 /dev/zero | tr '\0' 'b' >"$tmp/body"
curl -sv --max-time 5 --expect100-timeout 10 -H 'Expect: 100-continue' --data-binary "@$tmp/body" \
  -o "$tmp/echoed" "http://$hostport/up" 2>"$tmp/curl-expect.log" || fail "curl with Expect: 100-continue"
grep -q '^< HTTP/1.1 100 Continue' "$tmp/curl-expect.log" ||
  fail "no 100 Continue for Expect: 100-continue: $(cat "$tmp/curl-expect.log")"
cmp -s "$tmp/body" "$tmp/echoed" || fail "the body sent after 100 Continue did not come back"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' -I "http://$hostport/") || fail "curl -I failed"
[ "$code" = 200 ] || fail "curl's HEAD: status '$code'"
"$ctower" call "$addr" --codec http /a "HEAD /b" "POST /c third" >"$tmp/out" 2>"$tmp/err" ||
  fail "call --codec http: $(cat "$tmp/err")"
[ "$(grep -c '^HTTP/1.1 200 OK' "$tmp/out")" = 3 ] && [ "$(tail -n 1 "$tmp/out")" = third ] ||
  fail "call --codec http, three pipelined requests: $(cat "$tmp/out")"
# A connection's last request (Connection: close, or HTTP/1.0): answered,
# then the server closes its side, so a reader sees the end.
# Requests pipelined after the last one are neither served nor answered,
# and the last one's answer is not lost to them.
for request in 'GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n' 'GET /old HTTP/1.0\r\n\r\n' \
  'GET /bye HTTP/1.1\r\nConnection: close\r\n\r\nGET /more HTTP/1.1\r\n\r\nPOST /x HTTP/1.1\r\nContent-Length: 1\r\n\r\nx'; do
  exec 3<>"/dev/tcp/127.0.0.1/${hostport##*:}"
  printf "$request" >&3
  out=$(timeout 5 cat <&3) || fail "serve --codec http did not end the connection after: $request"
  exec 3<&-
  [ "$(grep -c "^HTTP/1.1 200 OK" <<<"$out")" = 1 ] || fail "the last request's answer, alone: '$out'"
done
expect_exit 1 "$ctower" call "$addr" --codec http "GET /a b c" "NOT-A-METHOD /"
grep -q "request 2: CT_EINVAL" "$tmp/err" || fail "a bad request is not explained: $(cat "$tmp/err")"
"$ctower" proxy tcp://127.0.0.1:0 "$addr" --codec http 2>"$tmp/proxy.log" &
proxy_pid=$!
paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') || fail "proxy --codec http did not listen"
# 800 requests in flight: more than one backend connection keeps pending
expect_exit 0 "$ctower" bench --server "$paddr" --codec http --connections 50 --depth 16 --requests 20000 --json
grep -q '"requests": 20000, "errors": 0,' "$tmp/out" || fail "bench through an HTTP proxy: $(cat "$tmp/out")"
# Clients that ask to close (Connection: close, HTTP/1.0) while bench runs:
# the proxy keeps their fields from the backend, whose connection (shared by
# all) stays up: no request fails, one connect.
(for _ in $(seq 20); do
  curl -s -o /dev/null --max-time 5 -H "Connection: close" "http://${paddr#tcp://}/c"
  curl -s -o /dev/null --max-time 5 --http1.0 "http://${paddr#tcp://}/o"
done) &
closers=$!
expect_exit 0 "$ctower" bench --server "$paddr" --codec http --connections 8 --depth 16 --duration 2 --json
wait "$closers"
grep -q '"errors": 0,' "$tmp/out" || fail "bench through the proxy beside closing clients: $(cat "$tmp/out")"
kill -USR1 "$proxy_pid"
wait_log "backend $addr: 1 connects"
stop server_pid
out=$(curl -s --max-time 5 -i "http://${paddr#tcp://}/") || fail "curl to the proxy failed"
grep -q "^HTTP/1.1 502 Bad Gateway" <<<"$out" && grep -q "^X-Ctower-Error: CT_ECONNECT" <<<"$out" ||
  fail "the proxy without its backend: '$out'"
stop proxy_pid "$tmp/proxy.log"

# HTTPS: serve --codec http with TLS, for curl and for bench.
"$ctower" serve tcp://127.0.0.1:0 --codec http --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --codec http with TLS did not listen"
out=$(curl -s --max-time 5 --cacert "$tmp/cert.pem" -d 'over TLS' "https://${addr#tcp://}/") ||
  fail "curl over TLS to serve --codec http failed"
[ "$out" = "over TLS" ] || fail "curl's POST over TLS: '$out'"
expect_exit 0 "$ctower" bench --server "$addr" --codec http --tls --tls-ca "$tmp/cert.pem" \
  --connections 4 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench --codec http over TLS: $(cat "$tmp/out")"
stop server_pid

# --codec http2: multiplexed by nature; what it does not go with yet is refused.
expect_exit 2 "$ctower" serve tcp://127.0.0.1:1 --codec http2 --mode pipeline
grep -q "multiplexed" "$tmp/err" || fail "http2 with --mode pipeline: $(cat "$tmp/err")"
expect_exit 0 "$ctower" bench --codec http2 --reconnect --connections 2 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench --codec http2 --reconnect: $(cat "$tmp/out")"
expect_exit 0 "$ctower" bench --codec http2 --connections 2 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench --codec http2: $(cat "$tmp/out")"
expect_exit 0 "$ctower" bench --codec http2 --size 100000 --connections 2 --depth 4 --requests 200 --json
grep -q '"requests": 200, "errors": 0,' "$tmp/out" ||
  fail "bench --codec http2, bodies larger than a window: $(cat "$tmp/out")"
"$ctower" serve tcp://127.0.0.1:0 --codec http2 2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --codec http2 did not listen"
"$ctower" call "$addr" --codec http2 /a "HEAD /b" "POST /c third" >"$tmp/out" 2>"$tmp/err" ||
  fail "call --codec http2: $(cat "$tmp/err")"
[ "$(grep -c '^HTTP/1.1 200' "$tmp/out")" = 3 ] && [ "$(tail -n 1 "$tmp/out")" = third ] ||
  fail "call --codec http2, three requests: $(cat "$tmp/out")"
# the proxy over HTTP/2 on both sides, for curl and bench; then without its backend
"$ctower" proxy tcp://127.0.0.1:0 "$addr" --codec http2 2>"$tmp/proxy.log" &
proxy_pid=$!
paddr=$(address_in "$tmp/proxy.log" '.* on (tcp:[^ ]*) to .*') || fail "proxy --codec http2 did not listen"
out=$(curl -s --max-time 5 --http2-prior-knowledge -d 'via h2' "http://${paddr#tcp://}/x") ||
  fail "curl through proxy --codec http2"
[ "$out" = "via h2" ] || fail "curl's POST through proxy --codec http2: '$out'"
expect_exit 0 "$ctower" bench --server "$paddr" --codec http2 --connections 8 --depth 16 --requests 20000 --json
grep -q '"requests": 20000, "errors": 0,' "$tmp/out" || fail "bench through proxy --codec http2: $(cat "$tmp/out")"
stop server_pid
out=$(curl -s -i --max-time 5 --http2-prior-knowledge "http://${paddr#tcp://}/gone") || fail "curl, no backend"
echo "$out" | grep -q '^HTTP/2 502' && echo "$out" | grep -qi '^x-ctower-error: CT_ECONNECT' ||
  fail "proxy --codec http2 without its backend: '$out'"
stop proxy_pid "$tmp/proxy.log"

# HTTP/2 over TLS: ALPN says h2, so curl speaks HTTP/2 (it would not otherwise)
"$ctower" serve tcp://127.0.0.1:0 --codec http2 --tls-cert "$tmp/cert.pem" --tls-key "$tmp/key.pem" \
  2>"$tmp/serve.log" &
server_pid=$!
addr=$(address_in "$tmp/serve.log" '.*echo on (tcp:[^ ]*) .*') || fail "serve --codec http2 with TLS did not listen"
out=$(curl -s -i --max-time 5 --cacert "$tmp/cert.pem" --http2 -d 'h2 over TLS' "https://${addr#tcp://}/") ||
  fail "curl over TLS to serve --codec http2 failed"
echo "$out" | grep -q '^HTTP/2 200' && echo "$out" | grep -q '^h2 over TLS' ||
  fail "curl's POST over TLS and HTTP/2: '$out'"
expect_exit 0 "$ctower" bench --server "$addr" --codec http2 --tls --tls-ca "$tmp/cert.pem" \
  --connections 4 --depth 8 --requests 4000 --json
grep -q '"requests": 4000, "errors": 0,' "$tmp/out" || fail "bench --codec http2 over TLS: $(cat "$tmp/out")"
stop server_pid

# Nothing listens there: every connection is refused, and said so.
expect_exit 1 "$ctower" bench --server "unix://$tmp/nobody.sock" --connections 2 --requests 10
grep -q "UV_ENOENT" "$tmp/out" || fail "the refused connections are not reported: $(cat "$tmp/out")"
echo "ctower tool: all checks passed"
