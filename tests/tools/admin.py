#!/usr/bin/env python3
"""`--admin`: the metrics and health endpoint of serve and proxy, on
loopback. Asserts that

- serve's /metrics, checked by promtool, counts what bench sent (summed
  over serve's two loops) and its connections;
- /healthz says 200 while serving and 503 while draining (a proxy with a
  request held by a backend that never answers, after SIGTERM);
- an unknown path is 404, another method 405, a request over the admin's
  size bound 431 or 413, a client too slow with its headers is closed,
  and none of it disturbs the data path (bench still gets every answer).

    tests/tools/admin.py CTOWER"""

import os
import re
import shutil
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from harness import Server, free_port, sanitizer_report  # noqa: E402


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def http(port, raw, timeout=5):
    """Sends raw bytes, returns what came back until the server closed or
    the answer's length was read."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(raw)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            head, sep, body = data.partition(b"\r\n\r\n")
            m = re.search(rb"(?i)content-length: *(\d+)", head)
            if sep and m and len(body) >= int(m.group(1)):
                break
    finally:
        s.close()
    return data


def get(port, path):
    data = http(port, b"GET %s HTTP/1.1\r\nHost: a\r\n\r\n" % path.encode())
    status = int(data.split(b" ", 2)[1]) if data.startswith(b"HTTP/1.1 ") else 0
    return status, data.partition(b"\r\n\r\n")[2].decode()


def metric(text, line_start):
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return int(float(line.split()[-1]))
    fail(f"no {line_start} in:\n{text}")


def main():
    ctower = sys.argv[1]
    promtool = shutil.which("promtool")
    if not promtool:
        fail("promtool is missing; run scripts/install-deps.sh")
    servers = []  # every one's stderr is kept: a sanitizer's report fails the test
    try:
        admin = free_port()
        serve = Server([ctower, "serve", "tcp://127.0.0.1:0", "--threads", "2", "--admin",
                        f"tcp://127.0.0.1:{admin}", "--header-timeout", "1"],
                       ready_pattern=r"echo on tcp://127\.0\.0\.1:(\d+)")
        servers.append(serve)
        port = serve.port
        out = subprocess.run([ctower, "bench", "--server", f"tcp://127.0.0.1:{port}", "--requests",
                              "30000", "--connections", "4"], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"bench: {out.stdout}{out.stderr}")
        status, text = get(admin, "/metrics")
        if status != 200:
            fail(f"/metrics: {status}")
        check = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                               text=True)
        if check.returncode != 0:
            fail(f"promtool check metrics: {check.stdout}{check.stderr}\n{text}")
        requests = metric(text, 'ctower_server_requests_total{listener="main"}')
        if requests != 30000:
            fail(f"serve counted {requests} requests, bench sent 30000")
        if metric(text, 'ctower_server_responses_total{listener="main"}') != 30000:
            fail("responses counted")
        if metric(text, 'ctower_listener_connections_accepted_total{listener="main"}') < 4:
            fail("connections counted")
        print(f"ok: /metrics passes promtool and counts bench's {requests} requests")

        for path, want in (("/healthz", 200), ("/nope", 404)):
            status, _ = get(admin, path)
            if status != want:
                fail(f"{path}: {status}, not {want}")
        data = http(admin, b"DELETE /metrics HTTP/1.1\r\nHost: a\r\n\r\n")
        if not data.startswith(b"HTTP/1.1 405"):
            fail(f"DELETE: {data[:60]!r}")
        data = http(admin, b"GET /metrics HTTP/1.1\r\nHost: a\r\nX-Big: " + b"x" * 20000 + b"\r\n\r\n")
        if not re.match(rb"HTTP/1.1 4(31|13)", data):
            fail(f"a 20 KB request: {data[:60]!r}")
        slow = socket.create_connection(("127.0.0.1", admin), timeout=5)
        slow.sendall(b"GET /metr")
        t0 = time.monotonic()
        answer = slow.recv(65536)
        took = time.monotonic() - t0
        slow.close()
        if not answer.startswith(b"HTTP/1.1 408") or took > 3:
            fail(f"a slow client after {took:.1f} s: {answer[:60]!r}")
        out = subprocess.run([ctower, "bench", "--server", f"tcp://127.0.0.1:{port}", "--requests",
                              "10000"], capture_output=True, text=True)
        if out.returncode != 0:
            fail(f"bench after the admin's bad input: {out.stdout}{out.stderr}")
        print("ok: 404, 405, 431/413 and a slow client's 408 on the admin port; the data path served on")
        code = serve.stop()
        if code != 0:
            fail(f"serve's exit: {code} {''.join(serve.stderr_lines)}")

        # a proxy draining: its backend holds the one request, never answering
        silent = socket.socket()
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        admin = free_port()
        proxy = Server([ctower, "proxy", "tcp://127.0.0.1:0",
                        f"tcp://127.0.0.1:{silent.getsockname()[1]}", "--admin",
                        f"tcp://127.0.0.1:{admin}"],
                       ready_pattern=r"pipeline on tcp://127\.0\.0\.1:(\d+)")
        servers.append(proxy)
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        client.sendall(b"\x00\x00\x00\x04held")
        time.sleep(0.3)
        if get(admin, "/healthz")[0] != 200:
            fail("the proxy's /healthz before SIGTERM")
        proxy.proc.terminate()
        time.sleep(0.3)
        status, body = get(admin, "/healthz")
        if status != 503:
            fail(f"/healthz while draining: {status} {body!r}")
        print("ok: /healthz 200 while serving, 503 while draining")
        client.close()
        silent.close()
        proxy.proc.wait(timeout=10)
    finally:
        for server in servers:
            if server.proc.poll() is None:
                server.proc.kill()
    time.sleep(0.2)  # the last of their stderr
    if sanitizer_report(servers):
        fail("a sanitizer's report")
    return 0


if __name__ == "__main__":
    sys.exit(main())
