"""What the hostile-client suite and bench/hostile share: a server process
to attack and watch (its RSS and CPU from /proc), a normal client that
keeps asking while an attack runs (its latencies), and one attack run
measured from start to end. Loopback only; every loop is bounded in time."""

import os
import re
import socket
import subprocess
import sys
import threading
import time

import h2wire


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    """User + system CPU seconds of pid, threads included."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Server:
    """A server process on a loopback port: `argv` with {port} filled in
    (a port chosen here), or `ctower serve` that prints its own."""

    def __init__(self, argv, port=None, ready_pattern=None, env=None):
        self.port = port or free_port()
        argv = [a.replace("{port}", str(self.port)) for a in argv]
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     env=env, text=True)
        self.stderr_lines = []
        if ready_pattern:
            deadline = time.time() + 10
            while time.time() < deadline:
                line = self.proc.stderr.readline()
                if not line:
                    raise RuntimeError(f"{argv[0]} exited before it was ready")
                self.stderr_lines.append(line)
                m = re.search(ready_pattern, line)
                if m:
                    self.port = int(m.group(1))
                    break
            else:
                raise RuntimeError(f"{argv[0]} did not say it was ready")
        threading.Thread(target=self._drain, daemon=True).start()
        wait_port(self.port)

    def _drain(self):
        for line in self.proc.stderr:
            self.stderr_lines.append(line)

    @property
    def pid(self):
        return self.proc.pid

    def stop(self):
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return -9


def sanitizer_report(servers):
    """Writes the stderr of the first server whose stderr holds a
    sanitizer's report (AddressSanitizer, UBSan's runtime error) and
    returns True; False if none does."""
    for server in servers:
        if any("Sanitizer" in line or "runtime error" in line for line in server.stderr_lines):
            sys.stderr.write("".join(server.stderr_lines[-60:]))
            return True
    return False


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def connect(port, timeout=5):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


class NormalClient(threading.Thread):
    """Asks one request at a time on its own connection until stopped,
    timing each answer; a new connection if the server closes it.
    proto: "h2" (GET over HTTP/2) or "h1" (GET over HTTP/1.1)."""

    def __init__(self, port, proto, pause=0.005):
        super().__init__(daemon=True)
        self.port, self.proto, self.pause = port, proto, pause
        self.latencies, self.errors = [], 0
        self.stopping = threading.Event()

    def run(self):
        while not self.stopping.is_set():
            try:
                self._session()
            except (OSError, EOFError, TimeoutError):
                self.errors += 1
                time.sleep(0.05)

    def _session(self):
        with connect(self.port, timeout=2) as s:
            if self.proto == "h2":
                s.sendall(h2wire.hello())
                reader, stream = h2wire.Reader(s), 1
                while not self.stopping.is_set():
                    t0 = time.perf_counter()
                    s.sendall(h2wire.frame(h2wire.HEADERS, h2wire.END_STREAM | h2wire.END_HEADERS,
                                           stream, h2wire.get_block()))
                    self._h2_answer(reader, stream)
                    self.latencies.append(time.perf_counter() - t0)
                    stream += 2
                    time.sleep(self.pause)
            else:
                buf = b""
                while not self.stopping.is_set():
                    t0 = time.perf_counter()
                    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    buf = self._h1_answer(s, buf)
                    self.latencies.append(time.perf_counter() - t0)
                    time.sleep(self.pause)

    @staticmethod
    def _h2_answer(reader, stream):
        while True:
            for kind, flags, sid, _ in reader.frames():
                if sid == stream and kind == h2wire.RST_STREAM:
                    raise EOFError
                if sid == stream and kind in (h2wire.HEADERS, h2wire.DATA) and flags & h2wire.END_STREAM:
                    return

    @staticmethod
    def _h1_answer(s, buf):
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                m = re.search(rb"(?i)content-length: *(\d+)", buf[:end])
                total = end + 4 + (int(m.group(1)) if m else 0)
                if len(buf) >= total:
                    return buf[total:]
            chunk = s.recv(1 << 16)
            if not chunk:
                raise EOFError
            buf += chunk

    def p99_ms(self):
        if not self.latencies:
            return float("inf")
        xs = sorted(self.latencies)
        return 1000 * xs[min(len(xs) - 1, int(len(xs) * 0.99))]

    def stop(self):
        self.stopping.set()
        self.join(5)


class Attack:
    """One attack: `run(port, stop_at)` sends until the server closes the
    connection or stop_at passes, and returns when the connection closed
    (time.time()), or None if it stayed open."""

    def __init__(self, name, proto, run, conns=1):
        self.name, self.proto, self.run, self.conns = name, proto, run, conns


def measure(server, attack, duration=3.0, settle=1.0):
    """Runs attack against server beside a normal client; returns the
    figures: RSS before, peak and after (KiB), seconds to the close of every
    attacking connection (None: some stayed open), the server's CPU share
    during the attack, the normal client's p99 (ms) and answers."""
    normal = NormalClient(server.port, attack.proto)
    normal.start()
    time.sleep(0.3)  # the normal client's connection and the pools warm up
    before = rss_kib(server.pid)
    peak = before
    start = time.time()
    cpu0 = cpu_s(server.pid)
    closed = [None] * attack.conns

    def one(i):
        try:
            closed[i] = attack.run(server.port, start + duration)
        except OSError:
            closed[i] = time.time()

    threads = [threading.Thread(target=one, args=(i,), daemon=True) for i in range(attack.conns)]
    for t in threads:
        t.start()
    # the normal client asks for the whole time, whenever the attack ends
    while any(t.is_alive() for t in threads) or time.time() < start + duration:
        peak = max(peak, rss_kib(server.pid))
        time.sleep(0.02)
    elapsed = time.time() - start
    cpu = (cpu_s(server.pid) - cpu0) / elapsed
    normal.stop()
    time.sleep(settle)
    after = rss_kib(server.pid)
    ends = [c - start for c in closed if c is not None]
    return {
        "attack": attack.name,
        "rss_before_kib": before,
        "rss_peak_kib": peak,
        "rss_after_kib": after,
        "closed_s": max(ends) if len(ends) == attack.conns else None,
        "cpu": cpu,
        "p99_ms": normal.p99_ms(),
        "answers": len(normal.latencies),
        "alive": server.proc.poll() is None,
    }
