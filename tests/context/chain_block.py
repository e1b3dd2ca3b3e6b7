#!/usr/bin/env python3
"""The request context across hops over the length-delimited multiplex
framing with --context: a client of this script's own -> `ctower proxy
--context --mode multiplex` -> another -> a backend of this script's own
that answers each request with the bytes it got (so the client reads the
block as the last hop wrote it), after 1.5 s for a body of "slow". Loopback
only. Asserts that

- the time left and the trace reach the backend, less what the hops spent,
  with the trace id kept and a span id of the last proxy's own;
- a request whose deadline passes at a slow backend is answered at the
  deadline with an empty payload (with --context, the framing's error
  answer), not at the proxies' 5 s timeout, and the connection goes on:
  the next request on it, and other clients', are answered;
- a block that does not read goes on as it came, and the proxy counts it.

    tests/context/chain_block.py CTOWER"""

import asyncio
import os
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from harness import Server, sanitizer_report  # noqa: E402

SLOW_S = 1.5
TRACE = bytes(range(1, 17))
SPAN = bytes(range(101, 109))


def block(timeout_ms=None, traced=True, version=1):
    flags = (1 if timeout_ms is not None else 0) | (2 if traced else 0)
    return (bytes([version, flags, 1, 0]) + struct.pack(">I", timeout_ms or 0) +
            (TRACE + SPAN if traced else bytes(24)))


def frame(tag, payload):
    body = struct.pack(">I", tag) + payload
    return struct.pack(">I", len(body)) + body


async def serve_one(reader, writer):
    async def answer(payload):
        if payload.endswith(b"slow"):
            await asyncio.sleep(SLOW_S)
        try:
            writer.write(struct.pack(">I", len(payload)) + payload)
            await writer.drain()
        except ConnectionError:
            pass
    try:
        while True:
            n = struct.unpack(">I", await reader.readexactly(4))[0]
            asyncio.ensure_future(answer(await reader.readexactly(n)))
    except (asyncio.IncompleteReadError, ConnectionError):
        pass


def backend(ready):
    async def main():
        server = await asyncio.start_server(serve_one, "127.0.0.1", 0)
        ready.append(server.sockets[0].getsockname()[1])
        await asyncio.sleep(3600)
    asyncio.run(main())


def proxy(ctower, backend_port, servers):
    """A `ctower proxy --context` to backend_port, in servers; its port."""
    servers.append(Server([ctower, "proxy", "tcp://127.0.0.1:0", f"tcp://127.0.0.1:{backend_port}",
                           "--mode", "multiplex", "--context"],
                          ready_pattern=r"on tcp://127\.0\.0\.1:(\d+)"))
    return servers[-1].port


def ask(port, payload, timeout=10, sock=None):
    """One request, on sock or a connection of its own: (the answer's
    payload after its tag, or None if the connection ended, seconds)."""
    s = sock or socket.create_connection(("127.0.0.1", port), timeout=timeout)
    t0 = time.monotonic()
    s.sendall(frame(7, payload))
    data = b""
    try:
        while len(data) < 4 or len(data) < 4 + struct.unpack(">I", data[:4])[0]:
            chunk = s.recv(65536)
            if not chunk:
                return None, time.monotonic() - t0
            data += chunk
    finally:
        if not sock:
            s.close()
    return data[8:4 + struct.unpack(">I", data[:4])[0]], time.monotonic() - t0


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def main():
    ctower = sys.argv[1]
    ready = []
    threading.Thread(target=backend, args=(ready,), daemon=True).start()
    while not ready:
        time.sleep(0.01)
    servers = []  # every one's stderr is kept: a sanitizer's report fails the test
    try:
        second = proxy(ctower, ready[0], servers)
        first = proxy(ctower, second, servers)

        got, _ = ask(first, block(2000) + b"echo")
        if got is None or len(got) != 36 or got[0] != 1 or got[1] != 3:
            fail(f"the echo through two proxies: {got!r}")
        left = struct.unpack(">I", got[4:8])[0]
        if not 1000 < left <= 2000:
            fail(f"the backend was told {left} ms, not what is left of 2000")
        if got[8:24] != TRACE or got[24:32] == SPAN:
            fail(f"the trace did not go on with a span of the proxy's own: {got[8:32].hex()}")
        print(f"ok: the backend got {left} ms left, trace {got[8:24].hex()}, span {got[24:32].hex()}")

        got, _ = ask(first, block(None, traced=False) + b"echo")
        if got != block(None, traced=False) + b"echo":
            fail(f"an empty block: {got!r}")
        print("ok: an empty block goes on as it came")

        s = socket.create_connection(("127.0.0.1", first), timeout=10)
        got, took = ask(first, block(200) + b"slow", sock=s)
        if got != b"":
            fail(f"a backend slower than the deadline: {got!r}, not the empty error answer")
        if took >= SLOW_S:
            fail(f"the error answer came after {took:.2f} s: at the backend's answer, not the deadline")
        got, _ = ask(first, block(2000) + b"echo", sock=s)
        s.close()
        if got is None or not got.endswith(b"echo"):
            fail(f"the connection after the error answer: {got!r}")
        print(f"ok: the deadline ended the request after {took:.2f} s with an empty answer "
              f"(the backend takes {SLOW_S} s), and the connection went on")

        bad = block(500, version=9) + b"echo"
        got, _ = ask(first, bad)
        if got != bad:
            fail(f"a block that does not read: {got!r}")
        print("ok: a block that does not read goes on as it came")
        time.sleep(SLOW_S)  # the slow answer arrives and is dropped
        got, _ = ask(first, block(2000) + b"echo")
        if got is None:
            fail("the proxies after the late answer")
    finally:
        for server in servers:
            server.stop()
    time.sleep(0.2)
    if sanitizer_report(servers):
        fail("a proxy's sanitizer report")
    first_log = servers[1].stderr_lines
    if not any("did not read" in line for line in first_log):
        fail("the first proxy did not count the block that did not read: " + "".join(first_log))
    print("ok: the first proxy counted it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
