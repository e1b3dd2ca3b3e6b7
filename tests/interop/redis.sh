#!/usr/bin/env bash
# Interop: ctower's pipeline client against a real Redis server (Debian's
# redis-server), over a Unix socket: with the RESP codec (commands as arrays
# of bulk strings, replies of every shape, RESP3 after HELLO 3), and with the
# CRLF line codec and Redis's inline commands. Redis answers every command of
# a pipeline in order.
# It also runs examples/redis_client, `ctower bench --codec resp` and
# `ctower proxy` (with redis-benchmark through it) against the server, and
# the proxy balancing over two servers and sharding over two others, and
# TLS: redis-server's own, with a
# certificate made by openssl(1), reached by call, bench and the proxy.
#   redis.sh CTOWER REDIS_CLIENT_EXAMPLE
set -uo pipefail
ctower=$1
example=$2
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v redis-server >/dev/null || fail "redis-server is missing (scripts/install-deps.sh installs it)"
tmp=$(mktemp -d)
sock="$tmp/redis.sock"
server_pid=
server2_pid=
proxy_pid=
bproxy_pid=
cleanup() {
  [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null
  [ -n "$server2_pid" ] && kill "$server2_pid" 2>/dev/null
  [ -n "$proxy_pid" ] && kill "$proxy_pid" 2>/dev/null
  [ -n "$bproxy_pid" ] && kill "$bproxy_pid" 2>/dev/null
  [ -n "${bad_pid:-}" ] && kill "$bad_pid" 2>/dev/null
  [ -n "${tls_pid:-}" ] && kill "$tls_pid" 2>/dev/null
  [ -n "${shard1_pid:-}" ] && kill "$shard1_pid" 2>/dev/null
  [ -n "${shard2_pid:-}" ] && kill "$shard2_pid" 2>/dev/null
  [ -n "${sproxy_pid:-}" ] && kill "$sproxy_pid" 2>/dev/null
  [ -n "${tproxy_pid:-}" ] && kill "$tproxy_pid" 2>/dev/null
  rm -rf "$tmp"
}
trap cleanup EXIT

# Waits until the log file $1 says $2 (a server says so once it listens: its
# socket file exists a moment before it accepts), or fails with $3.
wait_said() {
  for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.05; done
  fail "$3: $(cat "$1" 2>/dev/null)"
}

# No TCP port, no persistence: the server lives in $tmp and dies with the test.
redis-server --port 0 --unixsocket "$sock" --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis.log" &
server_pid=$!
wait_said "$tmp/redis.log" "ready to accept connections" "redis-server did not start"

call() { "$ctower" call "unix://$sock" --codec crlf --timeout 10 "$@"; }
resp() { "$ctower" call "unix://$sock" --codec resp --timeout 10 "$@"; }

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

# RESP: bulk strings, nulls, arrays, errors; then RESP3's maps.
out=$(resp "SET greeting hello" "GET greeting" "GET missing" "RPUSH list a b c" \
  "LRANGE list 0 -1" "HSET h field value" "HGETALL h" "INCR greeting" | paste -sd '|')
want='OK|hello|(nil)|(integer) 3|[a, b, c]|(integer) 1|[field, value]'
want+='|(error) ERR value is not an integer or out of range'
[ "$out" = "$want" ] || fail "RESP answered '$out'"
out=$(resp "HELLO 3" "HGETALL h" "DEL h" | tail -2 | paste -sd '|')
[ "$out" = "{field: value}|(integer) 1" ] || fail "RESP3 answered '$out'"

# 10,000 RESP commands pipelined: every reply, in order.
seq 10000 | sed 's/.*/INCR resp_counter/' | resp >"$tmp/answers" || fail "RESP INCR x 10000: exit $?"
seq 10000 | sed 's/^/(integer) /' | cmp -s - "$tmp/answers" ||
  fail "RESP INCR answers out of order or missing: $(head -3 "$tmp/answers")"

# ctower bench drives Redis: 50,000 INCRs over 8 connections, 16 in flight
# each, then the counter says that every one ran exactly once. With
# --reconnect as well. A command Redis refuses is counted as an error reply,
# and its text shown.
for opt in "" --reconnect; do
  # shellcheck disable=SC2086 # opt is one word or none
  "$ctower" bench --server "unix://$sock" --codec resp --command "INCR bench:$opt" $opt \
    --connections 8 --depth 16 --requests 50000 --json >"$tmp/bench.json" ||
    fail "bench --codec resp $opt: exit $?: $(cat "$tmp/bench.json")"
  grep -q '"requests": 50000, "errors": 0,' "$tmp/bench.json" ||
    fail "bench --codec resp $opt: $(cat "$tmp/bench.json")"
  out=$(resp "GET bench:$opt")
  [ "$out" = "50000" ] || fail "bench $opt: the counter is '$out' after 50,000 INCRs"
done
"$ctower" bench --server "unix://$sock" --codec resp --command "NOSUCH cmd" --connections 2 \
  --depth 4 --requests 100 >"$tmp/bench.out" && fail "bench of a refused command exited 0"
grep -q "errors  *100 (error_reply 100)" "$tmp/bench.out" &&
  grep -q "first error  *ERR unknown command 'NOSUCH'" "$tmp/bench.out" ||
  fail "bench of a refused command printed: $(cat "$tmp/bench.out")"

# The example: a reconnecting client with the RESP codec, its replies checked.
"$example" "unix://$sock" >"$tmp/example.out" 2>&1 || fail "examples/redis_client: $(cat "$tmp/example.out")"
grep -q "LRANGE example:list 0 -1 *-> \[a, b\]" "$tmp/example.out" ||
  fail "examples/redis_client printed: $(cat "$tmp/example.out")"

# ctower proxy in front of the server (--codec resp, --retry): commands and
# replies pass through, from several clients over its one connection to
# Redis; 20,000 INCRs from 8 connections leave the counter at 20,000; and
# Redis's own benchmark client runs through it.
psock="$tmp/proxy.sock"
"$ctower" proxy "unix://$psock" "unix://$sock" --codec resp --retry 2>"$tmp/proxy.log" &
proxy_pid=$!
wait_said "$tmp/proxy.log" " on unix:" "proxy did not listen"
out=$("$ctower" call "unix://$psock" --codec resp "SET proxied yes" "GET proxied" "HGET proxied x" |
  paste -sd '|')
[ "$out" = "OK|yes|(error) WRONGTYPE Operation against a key holding the wrong kind of value" ] ||
  fail "through the proxy: '$out'"
"$ctower" bench --server "unix://$psock" --codec resp --command "INCR proxied:n" --connections 8 \
  --depth 16 --requests 20000 --json >"$tmp/bench.json" || fail "bench through the proxy: $(cat "$tmp/bench.json")"
out=$(resp "GET proxied:n")
[ "$out" = "20000" ] || fail "through the proxy the counter is '$out' after 20,000 INCRs"
# Commands that would break or take over the shared connection are answered
# by the proxy itself; the others go through around them.
out=$("$ctower" call "unix://$psock" --codec resp "SUBSCRIBE ch" "CLIENT REPLY OFF" "SELECT 1" \
  "MULTI" "BLPOP l 0" "XREAD BLOCK 0 STREAMS s 0" "ECHO still" | sed 's/ is not served.*//' | paste -sd '|')
want='(error) ERR ctower proxy: SUBSCRIBE|(error) ERR ctower proxy: CLIENT|(error) ERR ctower proxy: SELECT'
want+='|(error) ERR ctower proxy: MULTI|(error) ERR ctower proxy: BLPOP'
want+='|(error) ERR ctower proxy: XREAD BLOCK|still'
[ "$out" = "$want" ] || fail "commands the proxy answers itself: '$out'"

# Inline commands (lines, as typed) go through as commands; a line with a
# quote left open gets Redis's own error, and the connection goes on. What
# does not start with '*' is read as a line, as Redis reads it: a bulk
# string alone is two inline commands, "$5" and "hello", each answered.
out=$("$ctower" call "unix://$psock" --codec crlf --timeout 5 'SET "a b" "x y"' 'EXISTS "a b"' \
  'ECHO "open' PING '$5' | paste -sd '|')
want="+OK|:1|-ERR Protocol error: unbalanced quotes in request|+PONG"
want+="|-ERR unknown command '\$5', with args beginning with: "
[ "$out" = "$want" ] || fail "inline commands through the proxy: '$out'"
# Other clients keep the shared connection busy with ECHOs while bad
# clients send blank lines and bulk strings alone: each ECHO gets its own
# reply (passed on as they are, "\r\n" draws no reply from Redis and
# "$5\r\nhello\r\n" two: every later reply would shift onto the wrong
# request).
bad_clients() {
  for _ in $(seq 300); do
    "$ctower" call "unix://$psock" --codec crlf --timeout 0.01 '' '$5' hello '  ' >/dev/null 2>&1
  done
}
(bad_clients & bad_clients & bad_clients & wait) &
bad_pid=$!
for round in $(seq 30); do
  seq 5000 | sed 's/^/ECHO /' | "$ctower" call "unix://$psock" --codec resp >"$tmp/echoes" ||
    fail "ECHO x 5000 beside bad clients, round $round: exit $?"
  seq 5000 | cmp -s - "$tmp/echoes" ||
    fail "ECHO x 5000 beside bad clients, round $round: replies out of place: $(seq 5000 | cmp - "$tmp/echoes")"
done
pkill -P "$bad_pid" 2>/dev/null
kill "$bad_pid" 2>/dev/null
wait "$bad_pid" 2>/dev/null
bad_pid=

if command -v redis-benchmark >/dev/null; then
  redis-benchmark -s "$psock" -c 10 -P 8 -n 20000 -q -t ping,set,get >"$tmp/rb.out" 2>&1 ||
    fail "redis-benchmark through the proxy: $(cat "$tmp/rb.out")"
  [ "$(tr '\r' '\n' <"$tmp/rb.out" | grep -c "requests per second")" -eq 4 ] ||
    fail "redis-benchmark through the proxy: $(cat "$tmp/rb.out")"
fi

# Two servers holding the same value (as replicas would) behind one proxy:
# the proxy spreads 2,000 GETs over both (each counts some in INFO
# commandstats), and every one reads the value. With one server stopped,
# the other answers everything (--retry sends a GET that could not reach
# the stopped one to the other).
sock2="$tmp/redis2.sock"
redis-server --port 0 --unixsocket "$sock2" --save '' --appendonly no --dir "$tmp" \
  --logfile "$tmp/redis2.log" &
server2_pid=$!
wait_said "$tmp/redis2.log" "ready to accept connections" "a second redis-server did not start"
for s in "$sock" "$sock2"; do
  out=$("$ctower" call "unix://$s" --codec resp "SET shared replicated") || fail "SET on $s: exit $?"
  [ "$out" = OK ] || fail "SET on $s answered '$out'"
done
get_calls() { # socket: how many GETs it has served (call prints "\r\n" as such)
  local n
  n=$("$ctower" call "unix://$1" --codec resp "INFO commandstats" |
    grep -o 'cmdstat_get:calls=[0-9]*' | cut -d= -f2)
  echo "${n:-0}"
}
g1=$(get_calls "$sock") g2=$(get_calls "$sock2")
bsock="$tmp/balanced.sock"
"$ctower" proxy "unix://$bsock" "unix://$sock" "unix://$sock2" --codec resp --retry \
  2>"$tmp/bproxy.log" &
bproxy_pid=$!
wait_said "$tmp/bproxy.log" " on unix:" "the balanced proxy did not listen"
for _ in 1 2; do # two clients, one after the other
  seq 1000 | sed "s/.*/GET shared/" | "$ctower" call "unix://$bsock" --codec resp >"$tmp/gets" ||
    fail "GET x 1000 through the balanced proxy: exit $?"
  [ "$(sort -u "$tmp/gets")" = replicated ] && [ "$(wc -l <"$tmp/gets")" -eq 1000 ] ||
    fail "GET x 1000 through the balanced proxy: $(sort "$tmp/gets" | uniq -c | head -3)"
done
d1=$(($(get_calls "$sock") - g1)) d2=$(($(get_calls "$sock2") - g2))
((d1 + d2 == 2000)) || fail "the two servers served $d1 + $d2 GETs, not 2,000"
((d1 > 0 && d2 > 0)) || fail "the balanced proxy sent every GET to one server ($d1, $d2)"
kill "$server2_pid"
wait "$server2_pid" 2>/dev/null
server2_pid=
seq 1000 | sed "s/.*/GET shared/" | "$ctower" call "unix://$bsock" --codec resp >"$tmp/gets" ||
  fail "GET x 1000 through the balanced proxy, one server stopped: exit $?"
[ "$(sort -u "$tmp/gets")" = replicated ] && [ "$(wc -l <"$tmp/gets")" -eq 1000 ] ||
  fail "GET x 1000, one server stopped: $(sort "$tmp/gets" | uniq -c | head -3)"
kill -TERM "$bproxy_pid"
wait "$bproxy_pid" || fail "the balanced proxy exited $? after SIGTERM"
bproxy_pid=

# Sharding: two redis-servers that hold different keys behind `ctower
# proxy --shard`. 200 SETs spread over both (each holds some, together all),
# every GET finds its value, a command over keys of both is refused, and
# keys with one {hash tag} stay together.
for i in 1 2; do
  redis-server --port 0 --unixsocket "$tmp/shard$i.sock" --save '' --appendonly no --dir "$tmp" \
    --logfile "$tmp/shard$i.log" &
  eval "shard${i}_pid=\$!"
done
for i in 1 2; do
  wait_said "$tmp/shard$i.log" "ready to accept connections" "redis-server shard $i did not start"
done
"$ctower" proxy "unix://$tmp/sproxy.sock" "unix://$tmp/shard1.sock" "unix://$tmp/shard2.sock" \
  --codec resp --shard 2>"$tmp/sproxy.log" &
sproxy_pid=$!
wait_said "$tmp/sproxy.log" "sharded" "the sharding proxy did not listen, or does not shard"
scall() { "$ctower" call "unix://$tmp/sproxy.sock" --codec resp --timeout 10 "$@"; }
seq 200 | sed 's/.*/SET key& value&/' | scall >"$tmp/sets" || fail "SET x 200 through --shard: exit $?"
[ "$(sort -u "$tmp/sets")" = OK ] && [ "$(wc -l <"$tmp/sets")" -eq 200 ] ||
  fail "SET x 200 through --shard: $(sort "$tmp/sets" | uniq -c | head -3)"
n1=$("$ctower" call "unix://$tmp/shard1.sock" --codec resp DBSIZE | tr -dc 0-9)
n2=$("$ctower" call "unix://$tmp/shard2.sock" --codec resp DBSIZE | tr -dc 0-9)
((n1 + n2 == 200 && n1 > 50 && n2 > 50)) || fail "200 keys sharded as $n1 + $n2"
seq 200 | sed 's/.*/GET key&/' | scall >"$tmp/gets" || fail "GET x 200 through --shard: exit $?"
seq 200 | sed 's/^/value/' | cmp -s - "$tmp/gets" || fail "GET x 200 through --shard: $(head -3 "$tmp/gets")"
out=$(scall "MGET key1 key2 key3 key4 key5")
[ "$out" = "(error) ERR ctower proxy: keys in different shards (give keys used together one {hash tag})" ] ||
  fail "a command over keys of both shards: '$out'"
out=$(scall "MSET {user7}.name ann {user7}.mail ann@example.org" "MGET {user7}.name {user7}.mail" | paste -sd '|')
[ "$out" = "OK|[ann, ann@example.org]" ] || fail "keys with one hash tag: '$out'"
kill -TERM "$sproxy_pid"
wait "$sproxy_pid" || fail "the sharding proxy exited $? after SIGTERM"
sproxy_pid=
kill "$shard1_pid" "$shard2_pid"
wait "$shard1_pid" "$shard2_pid" 2>/dev/null
shard1_pid= shard2_pid=

# TLS: Redis serves TLS on a loopback TCP port only (a random one: tried
# again if taken). ctower's client speaks to Redis's TLS (OpenSSL's code on
# both sides, but Redis's own record handling and configuration).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /CN=127.0.0.1 \
  -addext subjectAltName=IP:127.0.0.1 -keyout "$tmp/key.pem" -out "$tmp/cert.pem" 2>/dev/null ||
  fail "openssl could not make a certificate"
tls_port=
for _ in 1 2 3 4 5; do
  port=$((20000 + RANDOM % 40000))
  rm -f "$tmp/tls-redis.log"
  redis-server --port 0 --tls-port "$port" --tls-cert-file "$tmp/cert.pem" \
    --tls-key-file "$tmp/key.pem" --tls-ca-cert-file "$tmp/cert.pem" --tls-auth-clients no \
    --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" --logfile "$tmp/tls-redis.log" &
  tls_pid=$!
  for _ in $(seq 50); do
    grep -q "Ready to accept" "$tmp/tls-redis.log" 2>/dev/null && break
    kill -0 "$tls_pid" 2>/dev/null || break
    sleep 0.1
  done
  if grep -q "Ready to accept" "$tmp/tls-redis.log" 2>/dev/null; then tls_port=$port; break; fi
  kill "$tls_pid" 2>/dev/null
  wait "$tls_pid" 2>/dev/null
  tls_pid=
done
[ -n "$tls_port" ] || fail "redis-server did not serve TLS: $(tail -3 "$tmp/tls-redis.log")"
taddr="tcp://127.0.0.1:$tls_port"
trust=(--tls --tls-ca "$tmp/cert.pem")
out=$("$ctower" call "$taddr" --codec resp "${trust[@]}" PING "SET tk secret" "GET tk" | paste -sd '|')
[ "$out" = "PONG|OK|secret" ] || fail "over TLS, Redis answered '$out'"
"$ctower" bench --server "$taddr" --codec resp "${trust[@]}" --command "INCR tlscount" \
  --connections 4 --depth 16 --requests 20000 --json >"$tmp/tbench" ||
  fail "bench over TLS: exit $?: $(cat "$tmp/tbench")"
grep -q '"requests": 20000, "errors": 0,' "$tmp/tbench" || fail "bench over TLS: $(cat "$tmp/tbench")"
out=$("$ctower" call "$taddr" --codec resp "${trust[@]}" "GET tlscount")
[ "$out" = 20000 ] || fail "20,000 INCRs over TLS left the counter at '$out'"
"$ctower" call "$taddr" --codec resp --tls --timeout 10 PING >/dev/null 2>"$tmp/err" &&
  fail "a client that trusts only the system's CAs reached the test certificate"
grep -q "certificate not accepted" "$tmp/err" || fail "the untrusted certificate is not explained: $(cat "$tmp/err")"
# The proxy: plain clients on a Unix socket, TLS to Redis.
"$ctower" proxy "unix://$tmp/tproxy.sock" "$taddr" --codec resp "${trust[@]}" 2>"$tmp/tproxy.log" &
tproxy_pid=$!
wait_said "$tmp/tproxy.log" " on unix:" "the TLS proxy did not listen"
out=$("$ctower" call "unix://$tmp/tproxy.sock" --codec resp "GET tk" "INCR tlscount" | paste -sd '|')
[ "$out" = "secret|(integer) 20001" ] || fail "through the proxy over TLS, Redis answered '$out'"
kill -TERM "$tproxy_pid"
wait "$tproxy_pid" || fail "the TLS proxy exited $? after SIGTERM"
tproxy_pid=
kill "$tls_pid"
wait "$tls_pid" 2>/dev/null
tls_pid=

# The server goes away: the client says so and fails, it does not hang; the
# proxy answers its clients with an error reply and keeps their connections.
kill "$server_pid"
wait "$server_pid" 2>/dev/null
server_pid=
call PING >/dev/null 2>"$tmp/err" && fail "a call to a stopped server succeeded"
out=$("$ctower" call "unix://$psock" --codec resp "GET proxied" PING | paste -sd '|')
want='(error) ERR ctower proxy: backend: could not connect (CT_ECONNECT)'
[ "$out" = "$want|$want" ] || fail "through the proxy, the server stopped: '$out'"
kill -TERM "$proxy_pid"
wait "$proxy_pid" || fail "proxy exited $? after SIGTERM"
proxy_pid=
echo "redis interop: all checks passed"
