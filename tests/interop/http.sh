#!/usr/bin/env bash
# Interop: ctower's HTTP/1.1 codec against a real HTTP server (Debian's
# nginx, with its echo module for chunked responses), over a Unix socket:
# `ctower call` pipelines GETs, HEADs (whose answers say a length and carry
# no body), a chunked response and a POST whose body nginx sends back;
# `ctower bench` drives nginx with pipelined requests; `ctower proxy --codec
# http` stands in front of nginx for curl and for bench.
#   http.sh CTOWER
set -uo pipefail
ctower=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=tests/interop/nginx.sh
. "$(dirname "$0")/nginx.sh"
tmp=$(mktemp -d)
proxy_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
nginx_start http ""

# Pipelined on one connection, each answer printed whole, in order.
"$ctower" call "$addr" --codec http "HEAD /hello" /hello /flushed "HEAD /hello" "POST /echo posted body" \
  /missing /hello >"$tmp/out" 2>"$tmp/err" || fail "call against nginx: $(cat "$tmp/err")"
answers=$(grep -c '^HTTP/1.1 ' "$tmp/out")
[ "$answers" = 7 ] || fail "7 answers expected, got $answers: $(cat "$tmp/out")"
grep -q '^Content-Length: 16' "$tmp/out" || fail "HEAD's answer does not say the length: $(cat "$tmp/out")"
[ "$(grep -c '^hello from nginx' "$tmp/out")" = 2 ] || fail "the GETs' bodies: $(cat "$tmp/out")"
grep -q '^Transfer-Encoding: chunked' "$tmp/out" || fail "nginx did not chunk /flushed: $(cat "$tmp/out")"
grep -q 'second line' "$tmp/out" || fail "the chunked body: $(cat "$tmp/out")"
grep -q '^posted body' "$tmp/out" || fail "the POST's body: $(cat "$tmp/out")"
grep -q '^HTTP/1.1 404' "$tmp/out" || fail "the 404: $(cat "$tmp/out")"
# The last answer is the last request's: nothing went to the wrong request.
[ "$(tail -n 1 "$tmp/out")" = "hello from nginx" ] || fail "the answers are out of step: $(cat "$tmp/out")"

"$ctower" bench --server "$addr" --codec http --size 0 --connections 4 --depth 16 --requests 20000 \
  --json >"$tmp/bench" 2>&1 || fail "bench against nginx: $(cat "$tmp/bench")"
grep -q '"requests": 20000, "errors": 0,' "$tmp/bench" || fail "bench against nginx: $(cat "$tmp/bench")"

"$ctower" proxy "unix://$tmp/proxy.sock" "$addr" --codec http 2>"$tmp/proxy.log" &
proxy_pid=$!
for _ in $(seq 100); do grep -q " on unix:" "$tmp/proxy.log" && break; sleep 0.05; done
out=$(curl -s --max-time 5 --unix-socket "$tmp/proxy.sock" http://localhost/flushed) ||
  fail "curl through the proxy failed: $(cat "$tmp/proxy.log")"
[ "$out" = $'first line\nsecond line' ] || fail "curl through the proxy, a chunked response: '$out'"
out=$(curl -s --max-time 5 --unix-socket "$tmp/proxy.sock" -d 'via the proxy' http://localhost/echo) ||
  fail "curl POST through the proxy failed"
[ "$out" = "via the proxy" ] || fail "curl POST through the proxy: '$out'"
# A chunked body that a non-strict parser frames as "abc" and a strict one
# (nginx) reads otherwise: the proxy answers 400 itself, never passing the
# bytes on (nginx's own 400 would say "Server: nginx").
out=$(python3 - "$tmp/proxy.sock" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(5)
s.connect(sys.argv[1])
s.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          b"3\r\nabcXX0\r\n\r\nGET /hello HTTP/1.1\r\nHost: x\r\n\r\n")
data = b""
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
print(data.decode("latin-1"))
PY
) || fail "the smuggling attempt through the proxy: no answer"
case "$out" in
  "HTTP/1.1 400 "*) ;;
  *) fail "a loosely chunked body through the proxy: '$out'" ;;
esac
[ "$(grep -c '^HTTP/1.1 ' <<<"$out")" = 1 ] || fail "more than the 400 came back: '$out'"
grep -qi 'nginx' <<<"$out" && fail "the loosely chunked body reached nginx: '$out'"
"$ctower" bench --server "unix://$tmp/proxy.sock" --codec http --size 100 --connections 8 --depth 8 \
  --requests 20000 --json >"$tmp/bench" 2>&1 || fail "bench through the proxy: $(cat "$tmp/bench")"
grep -q '"requests": 20000, "errors": 0,' "$tmp/bench" || fail "bench through the proxy: $(cat "$tmp/bench")"
kill -TERM "$proxy_pid"
wait "$proxy_pid" || fail "the proxy did not end cleanly: $(cat "$tmp/proxy.log")"
proxy_pid=
echo "HTTP interop with nginx: all checks passed"
