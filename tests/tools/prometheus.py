#!/usr/bin/env python3
"""A real Prometheus server scraping `ctower proxy --admin` while `ctower
bench` drives the proxy, and a backend killed (kill -9) in the middle.

Everything runs on loopback, on free ports, and is stopped by the test:
two `ctower serve --codec http` backends, the proxy over both, Prometheus
(Debian's `prometheus`) with a generated configuration that scrapes the
proxy's admin port every second, a temporary data directory. Then it asks
Prometheus's HTTP API and asserts that

- the proxy's request counter is there and equals what bench sent (every
  request was answered, so each is counted once);
- the killed backend's error counter rose (its calls in flight broke, its
  connects failed), and the balancer's ejections with it, the backend left
  alive has none, and the proxy's errors are bench's 502 answers;
- the proxy's --access-log has a line per request, in its format, as many
  of them 502 as bench got;
- a latency quantile (histogram_quantile over the proxy's histogram) is
  there and plausible against bench's own percentiles: within bench's p50
  / 4 and its max x 2.5 (the exposition's buckets are 1-2.5-5 steps).

With --plot FILE it also draws, from Prometheus's range queries, the
proxy's request rate, its p99 latency and the killed backend's error rate
per second over the run (bench/metrics-plot makes the README's picture
this way; matplotlib is needed for that part only).

    tests/tools/prometheus.py CTOWER [--duration S] [--kill-at S] [--plot FILE]"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "hostile"))
from harness import Server, free_port, sanitizer_report  # noqa: E402


def fail(msg):
    print("FAIL:", msg, file=sys.stderr)
    sys.exit(1)


def query(port, expr, at=None):
    params = {"query": expr}
    if at is not None:
        params["time"] = f"{at:.3f}"
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        fail(f"Prometheus refused {expr}: {body}")
    return body["data"]["result"]


def query_range(port, expr, start, end, step=1.0):
    params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": str(step)}
    url = f"http://127.0.0.1:{port}/api/v1/query_range?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        fail(f"Prometheus refused {expr}: {body}")
    res = body["data"]["result"]
    return [(float(t) - start, float(v)) for t, v in res[0]["values"]] if res else []


def scalar(port, expr):
    res = query(port, expr)
    return float(res[0]["value"][1]) if res else None


def wait_scraped(port, job_up_expr, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            if scalar(port, job_up_expr) == 1:
                return
        except OSError:
            pass
        time.sleep(0.25)
    fail(f"Prometheus did not scrape the proxy within {timeout} s ({job_up_expr})")


def start_prometheus(tmp, admin_port):
    prometheus = shutil.which("prometheus")
    if not prometheus:
        fail("prometheus is missing; run scripts/install-deps.sh")
    config = os.path.join(tmp, "prometheus.yml")
    with open(config, "w") as f:
        f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 900ms
scrape_configs:
  - job_name: ctower
    static_configs:
      - targets: ['127.0.0.1:{admin_port}']
""")
    port = free_port()
    argv = [prometheus, f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
            f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"]
    return Server(argv, port=port)


def plot(path, port, start, end, killed, kill_at):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        fail("--plot needs matplotlib: scripts/install-deps.sh --plot installs it")
    rate = query_range(port, 'rate(ctower_server_requests_total{listener="main"}[2s])', start, end)
    p99 = query_range(port, "histogram_quantile(0.99, rate(ctower_server_latency_seconds_bucket"
                      '{listener="main"}[2s]))',
                      start, end)
    errors = query_range(port,
                         f'sum(rate(ctower_balance_endpoint_errors_total{{backend="{killed}"}}[2s]))',
                         start, end)
    fig, axes = plt.subplots(3, 1, sharex=True, figsize=(8, 7))
    series = ((rate, "requests/s", 1e-3, "thousand requests/s"),
              (p99, "p99 latency", 1e3, "ms"),
              (errors, "killed backend's errors/s", 1, "errors/s"))
    for ax, (data, title, scale, unit) in zip(axes, series):
        ax.plot([t for t, _ in data], [v * scale for _, v in data], marker=".")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        ax.axvline(kill_at, color="red", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("seconds (red: kill -9 of one of two backends)")
    fig.suptitle("ctower proxy, scraped by Prometheus (1 s), ctower bench through it", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    print(f"plot: {path}")


def check_access_log(path, sent, errors, addresses):
    """--access-log: a line per request, each well formed, as many failed
    (an error's name: the proxy answered it 502) as bench got 502s, written
    whole by the time the proxy has stopped."""
    line_re = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z tcp://127\.0\.0\.1:\d+ "
                         r"(\d{3}|[A-Z_]+) (\d+\.\d{6}) (\S+)$")
    lines = statuses = 0
    by_backend = {}
    with open(path) as f:
        for line in f:
            m = line_re.match(line.rstrip("\n"))
            if not m:
                fail(f"--access-log: a line not in the format: {line!r}")
            lines += 1
            statuses += m.group(1) != "200"
            by_backend[m.group(3)] = by_backend.get(m.group(3), 0) + 1
    if lines != sent:
        fail(f"--access-log has {lines} lines; bench sent {sent} requests")
    if statuses != errors:
        fail(f"--access-log has {statuses} lines that are not 200; bench got {errors} 502s")
    if any(b == "-" for b in by_backend) and by_backend["-"] > errors:
        fail(f"--access-log: {by_backend['-']} requests without a backend")
    if set(by_backend) - set(addresses) - {"-"} or by_backend.get(addresses[0], 0) == 0:
        fail(f"--access-log's backends: {by_backend}")
    print(f"ok: --access-log has a line per request ({lines}), {statuses} of them failed, "
          f"by backend {by_backend}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ctower")
    ap.add_argument("--duration", type=float, default=6)
    ap.add_argument("--kill-at", type=float, default=2.5)
    ap.add_argument("--plot")
    args = ap.parse_args()
    ctower = args.ctower
    servers = []
    tmp = tempfile.mkdtemp(prefix="ctower-prom-")
    try:
        backends = []
        for _ in range(2):
            b = Server([ctower, "serve", "tcp://127.0.0.1:{port}", "--codec", "http"])
            servers.append(b)
            backends.append(b)
        admin = free_port()
        addresses = [f"tcp://127.0.0.1:{b.port}" for b in backends]
        access_log = os.path.join(tmp, "access.log")
        proxy = Server([ctower, "proxy", "tcp://127.0.0.1:{port}", *addresses, "--codec", "http",
                        "--timeout", "1", "--admin", f"tcp://127.0.0.1:{admin}",
                        "--access-log", access_log])
        servers.append(proxy)
        prom = start_prometheus(tmp, admin)
        servers.append(prom)
        wait_scraped(prom.port, 'up{job="ctower"}')
        start = time.time()
        bench = subprocess.Popen([ctower, "bench", "--server", f"tcp://127.0.0.1:{proxy.port}",
                                  "--codec", "http", "--connections", "4", "--depth", "4",
                                  "--duration", str(args.duration), "--json"],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(args.kill_at)
        backends[1].proc.send_signal(signal.SIGKILL)
        backends[1].proc.wait()
        out, err = bench.communicate(timeout=args.duration + 30)
        try:
            result = json.loads(out.strip().splitlines()[-1])
        except (ValueError, IndexError):
            fail(f"bench: {out}{err}")
        # (it exits 1 with the 502s the proxy answered for the killed backend's calls)
        if bench.returncode not in (0, 1) or set(result["errors_by_kind"]) - {"error_reply"}:
            fail(f"bench: {out}{err}")
        sent = result["requests"]
        time.sleep(2.5)  # two scrapes after the last request
        end = time.time()

        requests = scalar(prom.port, 'ctower_server_requests_total{listener="main"}')
        if requests is None:
            fail("no ctower_server_requests_total in Prometheus")
        if int(requests) != sent:
            fail(f"Prometheus says the proxy counted {requests:.0f} requests; bench sent {sent}")
        logged = scalar(prom.port, "ctower_proxy_requests_total")  # (the access log's layer)
        if logged != requests:
            fail(f"ctower_proxy_requests_total {logged}, the proxy's server {requests}")
        print(f"ok: ctower_server_requests_total {requests:.0f} = bench's {sent} requests "
              "= the access log's layer's")

        killed = addresses[1]
        errors = scalar(prom.port,
                        f'sum(ctower_balance_endpoint_errors_total{{backend="{killed}"}})')
        kinds = {r["metric"]["kind"]: float(r["value"][1]) for r in
                 query(prom.port, f'ctower_balance_endpoint_errors_total{{backend="{killed}"}} > 0')}
        ejections = scalar(prom.port, "ctower_balance_ejections_total")
        proxy_errors = scalar(prom.port, 'sum(ctower_server_errors_total{listener="main"})')
        if not errors or not ejections:
            fail(f"after the kill: errors of {killed} {errors}, ejections {ejections}")
        if proxy_errors != result["errors"]:
            fail(f"the proxy counted {proxy_errors} errors, bench got {result['errors']} 502s")
        alive_errors = scalar(
            prom.port, f'sum(ctower_balance_endpoint_errors_total{{backend="{addresses[0]}"}})')
        if alive_errors:
            fail(f"the backend left alive has {alive_errors} errors")
        print(f"ok: the killed backend's errors {errors:.0f} {kinds}, ejections {ejections:.0f}, "
              f"the proxy's errors {proxy_errors:.0f} = bench's 502s; the other backend 0")

        window = f"{end - start + 5:.0f}s"
        q = scalar(prom.port, "histogram_quantile(0.99, sum by (le) (increase("
                              f'ctower_server_latency_seconds_bucket{{listener="main"}}[{window}])))')
        p50, p99, mx = result["p50_us"] * 1e-6, result["p99_us"] * 1e-6, result["max_us"] * 1e-6
        if q is None or q != q:
            fail("no latency quantile from Prometheus")
        if not (p50 / 4 <= q <= mx * 2.5):
            fail(f"the proxy's p99 from Prometheus, {q * 1e6:.0f} us, is not within bench's "
                 f"p50/4 {p50 / 4 * 1e6:.0f} us and max x 2.5 {mx * 2.5e6:.0f} us")
        print(f"ok: histogram_quantile(0.99) of the proxy's server latency {q * 1e6:.0f} us; bench "
              f"(client side) p50 {p50 * 1e6:.0f} us, p99 {p99 * 1e6:.0f} us, max {mx * 1e6:.0f} us")
        if args.plot:
            plot(args.plot, prom.port, start, end, killed, args.kill_at)
        for s in (proxy, backends[0]):
            code = s.stop()
            if code != 0:
                fail(f"exit {code}: {''.join(s.stderr_lines[-20:])}")
        check_access_log(access_log, sent, result["errors"], addresses)
        if sanitizer_report(servers):
            fail("a sanitizer's report")
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.stop()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
