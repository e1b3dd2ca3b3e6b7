#!/usr/bin/env bash
# Interop: ctower's HTTP/2 (ct_http2_t, prior knowledge) against real peers.
# - As a client, against nginx's HTTP/2 on a Unix socket: `ctower call`
#   multiplexes GETs, HEADs, a streamed response, an echoed POST and a 404
#   on one connection; `ctower bench` drives nginx.
# - As a server (`ctower serve --codec http2`): curl posts and asks HEAD,
#   h2load (nghttp2's load tool) sends 20,000 requests, and a client that
#   speaks HTTP/1.1 to it is turned away while the others go on.
#   http2.sh CTOWER
set -uo pipefail
ctower=$1
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck source=tests/interop/nginx.sh
. "$(dirname "$0")/nginx.sh"
command -v h2load >/dev/null || fail "h2load is missing (nghttp2-client)"
tmp=$(mktemp -d)
serve_pid=
cleanup() {
  [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null
  [ -n "$serve_pid" ] && kill "$serve_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT
nginx_start http2 "http2" "http2_max_requests 100000;"

# Multiplexed on one connection; call prints the answers in request order.
"$ctower" call "$addr" --codec http2 "HEAD /hello" /hello /flushed "HEAD /hello" \
  "POST /echo posted body" /missing /hello >"$tmp/out" 2>"$tmp/err" ||
  fail "call against nginx: $(cat "$tmp/err")"
answers=$(grep -c '^HTTP/1.1 ' "$tmp/out")
[ "$answers" = 7 ] || fail "7 answers expected, got $answers: $(cat "$tmp/out")"
[ "$(grep -c '^content-length: 16' "$tmp/out")" -ge 2 ] ||
  fail "HEAD's answers do not say the length: $(cat "$tmp/out")"
[ "$(grep -c '^hello from nginx' "$tmp/out")" = 2 ] || fail "the GETs' bodies: $(cat "$tmp/out")"
grep -q 'second line' "$tmp/out" || fail "the streamed body: $(cat "$tmp/out")"
grep -q '^posted body' "$tmp/out" || fail "the POST's body: $(cat "$tmp/out")"
grep -q '^HTTP/1.1 404' "$tmp/out" || fail "the 404: $(cat "$tmp/out")"
[ "$(tail -n 1 "$tmp/out")" = "hello from nginx" ] || fail "the answers are out of place: $(cat "$tmp/out")"

"$ctower" bench --server "$addr" --codec http2 --size 0 --connections 4 --depth 16 --requests 20000 \
  --json >"$tmp/bench" 2>&1 || fail "bench against nginx: $(cat "$tmp/bench")"
grep -q '"requests": 20000, "errors": 0,' "$tmp/bench" || fail "bench against nginx: $(cat "$tmp/bench")"

# ctower as the server.
"$ctower" serve tcp://127.0.0.1:0 --codec http2 2>"$tmp/serve.log" &
serve_pid=$!
for _ in $(seq 100); do grep -q "echo on tcp://" "$tmp/serve.log" && break; sleep 0.05; done
url=$(sed -n 's|.*echo on tcp://\([0-9.:]*\).*|http://\1|p' "$tmp/serve.log")
[ -n "$url" ] || fail "serve did not say where it listens: $(cat "$tmp/serve.log")"
out=$(curl -s --max-time 5 --http2-prior-knowledge -d 'posted over h2' "$url/echo") || fail "curl POST"
[ "$out" = "posted over h2" ] || fail "curl POST over HTTP/2: '$out'"
out=$(curl -s --max-time 5 --http2-prior-knowledge -I "$url/") || fail "curl HEAD"
echo "$out" | grep -q '^HTTP/2 200' || fail "curl HEAD over HTTP/2: '$out'"
# HTTP/1.1 to an HTTP/2 server: no answer, the connection ends.
curl -s --max-time 5 --http1.1 "$url/" >/dev/null 2>&1 && fail "an HTTP/1.1 request got an answer"
h2load -n 20000 -c 4 -m 16 "$url/" >"$tmp/h2load" 2>&1 || fail "h2load: $(cat "$tmp/h2load")"
grep -q '20000 succeeded, 0 failed, 0 errored' "$tmp/h2load" || fail "h2load: $(cat "$tmp/h2load")"
kill -TERM "$serve_pid"
wait "$serve_pid" || fail "serve did not end cleanly: $(cat "$tmp/serve.log")"
serve_pid=
echo "HTTP/2 interop with nginx, curl and h2load: all checks passed"
