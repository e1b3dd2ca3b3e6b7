# Sourced by the HTTP interop scripts: Debian's nginx as the real server,
# one process on a Unix socket in $tmp, with its echo module (a response
# written in two flushes: chunked over HTTP/1.1, two DATA frames over
# HTTP/2). The script sets ctower, tmp and fail() first, and kills
# $nginx_pid when it ends.
#   nginx_start CODEC LISTEN_FLAGS [HTTP_LINES]
# starts it (LISTEN_FLAGS: "" or "http2"; HTTP_LINES go into the http
# block), sets addr, and returns once `ctower call --codec CODEC` gets an
# answer from it.
nginx=$(command -v nginx || echo /usr/sbin/nginx)
[ -x "$nginx" ] || fail "nginx is missing (scripts/install-deps.sh installs it)"
modules=/usr/lib/nginx/modules
[ -f "$modules/ngx_http_echo_module.so" ] || fail "nginx's echo module is missing (libnginx-mod-http-echo)"
nginx_pid=

nginx_start() {
  local codec=$1 flags=$2 extra=${3:-}
  cat >"$tmp/nginx.conf" <<CONF
load_module $modules/ngx_http_echo_module.so;
daemon off;
master_process off;
worker_processes 1;
pid $tmp/nginx.pid;
error_log $tmp/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $tmp/body;
  proxy_temp_path $tmp/proxy;
  fastcgi_temp_path $tmp/fastcgi;
  uwsgi_temp_path $tmp/uwsgi;
  scgi_temp_path $tmp/scgi;
  keepalive_requests 100000;
  default_type text/plain;
  $extra
  server {
    listen unix:$tmp/nginx.sock $flags;
    location = /hello { return 200 "hello from nginx"; }
    location = /flushed { echo "first line"; echo_flush; echo "second line"; }
    location = /echo { echo_read_request_body; echo_request_body; }
    location = /missing { return 404; }
    location = / { return 200 "ok"; }
  }
}
CONF
  "$nginx" -p "$tmp" -c "$tmp/nginx.conf" 2>"$tmp/nginx.out" &
  nginx_pid=$!
  addr="unix://$tmp/nginx.sock"
  for _ in $(seq 100); do
    "$ctower" call "$addr" --codec "$codec" --timeout 1 /hello >/dev/null 2>&1 && return 0
    kill -0 "$nginx_pid" 2>/dev/null || fail "nginx exited: $(cat "$tmp/nginx.out" "$tmp/error.log" 2>/dev/null)"
    sleep 0.05
  done
  fail "nginx did not answer: $(cat "$tmp/nginx.out" "$tmp/error.log" 2>/dev/null)"
}
