#!/usr/bin/env bash
# Installs the Debian packages ctower needs to build and test, if missing.
# As root it uses apt-get; otherwise it names the packages to install.
set -euo pipefail

# clang and libclang-rt-14-dev build and run the libFuzzer targets;
# redis-server is the real server of the interop test (tests/interop),
# redis-tools's redis-benchmark the client bench/compare-redis measures
# against, and nutcracker (twemproxy) the proxy bench/compare-proxy measures
# `ctower proxy` against; valgrind counts instructions for bench/proxy-cost.
# libhttp-parser-dev is the HTTP codec's parser; curl is the HTTP client of
# the tool's test (tests/tools/cli.sh); nginx-light the HTTP server
# bench/compare-http measures `ctower serve --codec http` against (it runs
# there with a configuration of its own; the package's service is stopped
# if installing started it).
# libnghttp2-dev is the HTTP/2 session under ct_http2_t; nghttp2-client's
# h2load and nghttp, and nghttp2-server's nghttpd, the HTTP/2 peers of its
# tests and of bench/compare-http2.
# python3 runs the hostile-client suite (tests/hostile: attack clients of
# the standard library only); h2o is the third server bench/hostile attacks,
# beside ctower and nginx (run with a configuration of its own, as nginx).
# prometheus brings promtool, which checks the exposition of --admin's
# /metrics (tests/tools/admin.py).
# wrk drives examples/http_hello in its test (tests/tools/http_hello.sh).
# doxygen writes the API reference from the headers (make docs, and the
# docs test, which fails on a public symbol left undocumented).
# libssl-dev is OpenSSL for TLS streams; the openssl command makes the
# certificates of the tool's TLS test (tests/cli.sh).
# With --plot it also installs python3-matplotlib, which bench/metrics-plot
# draws the README's picture with (the tests do not need it).
packages=(libuv1-dev libssl-dev libhttp-parser-dev curl openssl libcriterion-dev cmake pkg-config make gcc g++ clang
  libclang-rt-14-dev
  redis-server redis-tools nutcracker valgrind nginx-light
  libnghttp2-dev nghttp2-client nghttp2-server python3 h2o prometheus doxygen wrk)
[ "${1:-}" = "--plot" ] && packages+=(python3-matplotlib)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "ctower needs these Debian packages: ${missing[*]}" >&2
  echo "install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "installing: ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# a service listening on every interface is not what a build should leave
if printf '%s\n' "${missing[@]}" | grep -qx nginx-light && pgrep -x nginx >/dev/null; then
  nginx -s quit 2>/dev/null || true
fi
if printf '%s\n' "${missing[@]}" | grep -qx h2o && pgrep -x h2o >/dev/null; then
  pkill -x h2o 2>/dev/null || true
fi
if printf '%s\n' "${missing[@]}" | grep -qx prometheus && pgrep -x prometheus >/dev/null; then
  pkill -x prometheus 2>/dev/null || true
fi
