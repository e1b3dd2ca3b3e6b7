#!/usr/bin/env python3
"""The request context across hops: a client -> `ctower proxy` ->
`ctower proxy` -> a backend that writes back the context fields it got, on
loopback. Over HTTP/1.1 the backend is this script's own (standard
library) and the client http.client; over HTTP/2 (h2c) the backend is h2o
(an mruby handler) and the client curl. Asserts that

- the caller's time left (ctower-timeout) reaches the backend, less what
  the hops spent, and its trace (traceparent) with the same trace id and a
  span id of the last hop's own;
- a request without a context reaches the backend without one;
- a backend slower than the caller's deadline: the caller gets 504 at its
  deadline, not at the proxies' own 5 s timeout, and the backend's answer,
  when it comes, goes nowhere;
- a deadline already gone (0m): 504 from the first proxy, the backend
  never asked;
- `ctower call --deadline MS` sends its deadline, and a call that outlives
  it fails with ETIMEDOUT, cause CT_EDEADLINE (or the proxy's 504), at the
  deadline.

    tests/context/chain.py CTOWER [http|http2]"""

import http.client
import http.server
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from harness import Server, free_port, sanitizer_report  # noqa: E402

TRACE = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"
SLOW_S = 1.5


class Backend(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits = 0

    def do_GET(self):
        Backend.hits += 1
        if self.path == "/slow":
            time.sleep(SLOW_S)
        body = ("timeout=%s\ntraceparent=%s\n" % (self.headers.get("ctower-timeout"),
                                                  self.headers.get("traceparent"))).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


H2O_CONF = """listen:
  host: 127.0.0.1
  port: {port}
num-threads: 1
{user}error-log: {tmp}/error.log
access-log: {tmp}/access.log
pid-file: {tmp}/h2o.pid
hosts:
  default:
    paths:
      /:
        mruby.handler: |
          Proc.new do |env|
            if env["PATH_INFO"] == "/slow"
              t = Time.now
              while Time.now - t < {slow} do end
            end
            [200, {{"content-type" => "text/plain"}},
             ["timeout=#{{env["HTTP_CTOWER_TIMEOUT"] || "None"}}\\ntraceparent=#{{env["HTTP_TRACEPARENT"] || "None"}}\\n"]]
          end
"""


class H2oBackend:
    """h2o on a free port; hits() counts the requests it logged."""

    def __init__(self, servers):
        h2o = shutil.which("h2o") or "/usr/sbin/h2o"
        if not os.access(h2o, os.X_OK):
            raise SystemExit("FAIL: h2o is missing; run scripts/install-deps.sh")
        self.tmp = tempfile.mkdtemp(prefix="ctower-chain-")
        os.chmod(self.tmp, 0o777)  # h2o drops to nobody
        self.port = free_port()
        user = "user: nobody\n" if os.geteuid() == 0 else ""
        conf = os.path.join(self.tmp, "h2o.conf")
        with open(conf, "w") as f:
            f.write(H2O_CONF.format(port=self.port, user=user, tmp=self.tmp, slow=SLOW_S))
        servers.append(Server([h2o, "-c", conf], port=self.port))

    def hits(self):
        try:
            with open(os.path.join(self.tmp, "access.log")) as f:
                return sum(1 for _ in f)
        except OSError:
            return 0


def proxy(ctower, backend_port, servers, codec):
    """A `ctower proxy` to backend_port, in servers; its port."""
    servers.append(Server([ctower, "proxy", "tcp://127.0.0.1:0", f"tcp://127.0.0.1:{backend_port}",
                           "--codec", codec], ready_pattern=r"on tcp://127\.0\.0\.1:(\d+)"))
    return servers[-1].port


def get2(port, path, headers):
    """A GET over h2c with curl: status, body, seconds."""
    argv = ["curl", "-s", "--http2-prior-knowledge", "--max-time", "10", "-w", "\n%{http_code}"]
    for k, v in headers.items():
        argv += ["-H", f"{k}: {v}"]
    t0 = time.monotonic()
    out = subprocess.run(argv + [f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True)
    took = time.monotonic() - t0
    body, _, code = out.stdout.rpartition("\n")
    return int(code or 0), body, took


def get(port, path, headers):
    if PROTO == "http2":
        return get2(port, path, headers)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    t0 = time.monotonic()
    c.request("GET", path, headers=headers)
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    return r.status, body, time.monotonic() - t0


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


PROTO = "http"


def main():
    global PROTO
    ctower = sys.argv[1]
    PROTO = sys.argv[2] if len(sys.argv) > 2 else "http"
    servers = []  # every one's stderr is kept: a sanitizer's report fails the test
    backend = None
    if PROTO == "http2":
        h2o = H2oBackend(servers)
        backend_port, hits = h2o.port, h2o.hits
    else:
        backend = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Backend)
        threading.Thread(target=backend.serve_forever, daemon=True).start()
        backend_port, hits = backend.server_address[1], lambda: Backend.hits
    try:
        second = proxy(ctower, backend_port, servers, PROTO)
        first = proxy(ctower, second, servers, PROTO)

        status, body, _ = get(first, "/echo", {"ctower-timeout": "2000m",
                                               "traceparent": f"00-{TRACE}-{PARENT}-01"})
        if status != 200:
            fail(f"/echo through two proxies: {status} {body!r}")
        m = re.search(r"timeout=(\d+)m", body)
        if not m or not 1000 < int(m.group(1)) <= 2000:
            fail(f"the backend was told {body!r}, not what is left of 2000 ms")
        m = re.search(r"traceparent=00-([0-9a-f]{32})-([0-9a-f]{16})-01", body)
        if not m or m.group(1) != TRACE or m.group(2) == PARENT:
            fail(f"the trace did not go on with a span of the proxy's own: {body!r}")
        print(f"ok: the backend got {body.strip()!r}")

        status, body, _ = get(first, "/echo", {})
        if status != 200 or body != "timeout=None\ntraceparent=None\n":
            fail(f"a request without a context: {status} {body!r}")
        print("ok: no context, none made up")

        status, body, took = get(first, "/slow", {"ctower-timeout": "200m"})
        if status != 504:
            fail(f"a backend slower than the deadline: {status} {body!r}")
        if took >= SLOW_S:
            fail(f"the 504 came after {took:.2f} s: at the backend's answer, not at the deadline")
        print(f"ok: 504 after {took:.2f} s for a 0.2 s deadline (the backend takes {SLOW_S} s)")

        time.sleep(SLOW_S)  # the late answer arrives and is dropped; the proxies go on
        before = hits()
        status, body, _ = get(first, "/echo", {"ctower-timeout": "0m"})
        if status != 504:
            fail(f"a deadline already gone: {status} {body!r}")
        time.sleep(0.2)  # (h2o logs after it answers)
        if hits() != before:
            fail("a request whose deadline had passed reached the backend")
        status, _, _ = get(first, "/echo", {})
        if status != 200:
            fail(f"the proxies after the late answer: {status}")
        print("ok: a deadline already gone never leaves the first proxy")

        out = subprocess.run([ctower, "call", f"tcp://127.0.0.1:{first}", "--codec", PROTO,
                              "--deadline", "3000", "/echo"], capture_output=True, text=True,
                             timeout=20)
        m = re.search(r"timeout=(\d+)m", out.stdout)
        if out.returncode != 0 or not m or not 2000 < int(m.group(1)) <= 3000:
            fail(f"call --deadline 3000: {out.returncode} {out.stdout!r} {out.stderr!r}")
        t0 = time.monotonic()
        out = subprocess.run([ctower, "call", f"tcp://127.0.0.1:{first}", "--codec", PROTO,
                              "--deadline", "200", "/slow"], capture_output=True, text=True,
                             timeout=20)
        took = time.monotonic() - t0
        # the caller's own deadline and the first proxy's 504 come in the same
        # millisecond: either ends the call
        if not ((out.returncode != 0 and "CT_EDEADLINE" in out.stderr) or "504" in out.stdout):
            fail(f"call --deadline 200 of a slow backend: {out.returncode} {out.stdout!r} {out.stderr!r}")
        if took >= SLOW_S:
            fail(f"call --deadline 200 ended after {took:.2f} s")
        print(f"ok: call --deadline sends it, and gives up at it ({took:.2f} s): {out.stderr.strip()!r}")
    finally:
        for server in servers:
            server.stop()
        if backend:
            backend.shutdown()
    time.sleep(0.2)  # the last of their stderr
    if sanitizer_report(servers):
        fail("a proxy's sanitizer report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
