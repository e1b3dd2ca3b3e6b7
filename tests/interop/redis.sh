#!/usr/bin/env bash
# Interop: ctower's pipeline client against a real Redis server (Debian's
# redis-server), over a Unix socket, with the CRLF line codec and Redis's
# inline commands. Redis answers every command of a pipeline in order; these
# commands all have one-line answers ("+PONG", ":42", "$-1").
#   redis.sh CTOWER
set -uo pipefail
ctower=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v redis-server >/dev/null || fail "redis-server is missing (scripts/install-deps.sh installs it)"
tmp=$(mktemp -d)
sock="$tmp/redis.sock"
server_pid=
cleanup() { [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT

# No TCP port, no persistence: the server lives in $tmp and dies with the test.
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
server_pid=$!
for _ in $(seq 50); do [ -S "$sock" ] && break; sleep 0.1; done
[ -S "$sock" ] || fail "redis-server did not start: $(cat "$tmp/redis.log" 2>/dev/null)"

call() { "$ctower" call "unix://$sock" --codec crlf --timeout 10 "$@"; }

out=$(call PING) || fail "PING: exit $?"
[ "$out" = "+PONG" ] || fail "PING answered '$out'"

# 10,000 commands pipelined on one connection: every answer, in order.
seq 10000 | sed 's/.*/INCR counter/' | call >"$tmp/answers" || fail "INCR x 10000: exit $?"
seq 10000 | sed 's/^/:/' >"$tmp/expected"
cmp -s "$tmp/answers" "$tmp/expected" ||
  fail "INCR answers out of order or missing: $(head -3 "$tmp/answers")"

# Answers of different kinds, interleaved, keep their requests' order.
out=$(call "SET k hello" "GET missing" "INCRBY counter 5" "EXISTS k" "DEL k" "EXISTS k" | paste -sd ' ')
[ "$out" = "+OK \$-1 :10005 :1 :1 :0" ] || fail "mixed commands answered '$out'"

# The server goes away: the client says so and fails, it does not hang.
kill "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=
call PING >/dev/null 2>"$tmp/err" && fail "a call to a stopped server succeeded"
echo "redis interop: all checks passed"
