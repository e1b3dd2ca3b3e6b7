#!/usr/bin/env bash
# examples/http_hello, as a newcomer tries it: curl against each route
# (GET, HEAD, POST with Expect: 100-continue, a 404, Connection: close),
# wrk for a second, then SIGTERM, after which it must exit 0 with everything closed.
set -uo pipefail
example=$1
tmp=$(mktemp -d)
pid=
cleanup() { [ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$tmp"; }
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; [ -f "$tmp/log" ] && cat "$tmp/log" >&2; exit 1; }
command -v curl >/dev/null || fail "curl is missing: run scripts/install-deps.sh"

"$example" tcp://127.0.0.1:0 >"$tmp/out" 2>"$tmp/log" &
pid=$!
for _ in $(seq 100); do grep -q "listening on" "$tmp/out" && break; sleep 0.05; done
addr=$(sed -n 's/^http_hello: listening on tcp:\/\///p' "$tmp/out")
[ -n "$addr" ] || fail "http_hello did not say where it listens"

out=$(curl -s --max-time 5 "http://$addr/hello") || fail "GET /hello"
[ "$out" = "Hello, World!" ] || fail "GET /hello: '$out'"
head=$(curl -s --max-time 5 -I "http://$addr/hello" | tr -d '\r') || fail "HEAD /hello"
grep -qx "Content-Length: 13" <<<"$head" || fail "HEAD /hello: $head"
code=$(curl -s --max-time 5 -o /dev/null -w '%{http_code}' "http://$addr/nowhere") || fail "GET /nowhere"
[ "$code" = 404 ] || fail "GET /nowhere: $code"
head -c 3000 /dev/zero | tr '\0' 'z' >"$tmp/body"
curl -sv --max-time 5 --expect100-timeout 10 -H 'Expect: 100-continue' --data-binary "@$tmp/body" \
  -o "$tmp/echoed" "http://$addr/echo" 2>"$tmp/curl.log" || fail "POST /echo with Expect"
grep -q '^< HTTP/1.1 100 Continue' "$tmp/curl.log" || fail "no 100 Continue: $(cat "$tmp/curl.log")"
cmp -s "$tmp/body" "$tmp/echoed" || fail "POST /echo did not echo the body"
closing=$(curl -s --max-time 5 -i -H 'Connection: close' "http://$addr/hello" | tr -d '\r')
grep -qx "Connection: close" <<<"$closing" || fail "no Connection: close for a closing request: $closing"

# wrk, for a second: every answer a 2xx, no socket error
command -v wrk >/dev/null || fail "wrk is missing: run scripts/install-deps.sh"
wrk -t1 -c10 -d1s "http://$addr/hello" >"$tmp/wrk" 2>&1 || fail "wrk: $(cat "$tmp/wrk")"
grep -Eq "^ +[1-9][0-9]* requests in" "$tmp/wrk" || fail "wrk got no answers: $(cat "$tmp/wrk")"
! grep -Eq "Socket errors|Non-2xx" "$tmp/wrk" || fail "wrk saw errors: $(cat "$tmp/wrk")"

kill -TERM "$pid"
wait "$pid"
status=$?
pid=
[ "$status" -eq 0 ] || fail "http_hello exited $status after SIGTERM"
grep -q "stopped" "$tmp/log" || fail "http_hello did not say it stopped"
echo "http_hello: GET, HEAD, 404, 100-continue, Connection: close, wrk ($(sed -n 's/^Requests\/sec: *//p' "$tmp/wrk") req/s), SIGTERM: ok"
