#!/usr/bin/env python3
"""The hostile-client suite: each attack against a fresh `ctower serve`,
beside a normal client, and the goals of the issue on hostile clients
asserted for each (memory growth, time to close or CPU held low, the normal
client's p99). Exit status 1 if any goal is missed.

    tests/hostile/run.py CTOWER [--only SUBSTRING] [--relaxed]

--relaxed (the sanitizer build): the same attacks, with the memory and
latency bounds scaled for AddressSanitizer's cost."""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import attacks  # noqa: E402
from harness import Attack, Server, measure, sanitizer_report  # noqa: E402

MiB = 1024


def serve(ctower, codec, extra=()):
    return Server([ctower, "serve", "tcp://127.0.0.1:0", "--codec", codec, *extra],
                  ready_pattern=r"on tcp://127\.0\.0\.1:(\d+)")


def check(fig, growth_kib, close_within, max_cpu, p99_ms):
    """The goals: growth, then closed in time or held with little CPU, then
    the normal client served. Returns the list of what failed."""
    failed = []
    growth = fig["rss_peak_kib"] - fig["rss_before_kib"]
    if not fig["alive"]:
        failed.append("the server died")
    if growth > growth_kib:
        failed.append(f"grew {growth} KiB > {growth_kib}")
    closed = fig["closed_s"]
    if close_within is not None and (closed is None or closed > close_within):
        if fig["cpu"] > max_cpu:
            failed.append(f"not closed within {close_within} s and CPU {fig['cpu']:.0%} > {max_cpu:.0%}")
    if close_within is None and fig["cpu"] > max_cpu:
        failed.append(f"CPU {fig['cpu']:.0%} > {max_cpu:.0%}")
    if fig["p99_ms"] > p99_ms:
        failed.append(f"normal p99 {fig['p99_ms']:.1f} ms > {p99_ms} ms")
    if fig["answers"] < 10:
        failed.append(f"normal client answered only {fig['answers']} times")
    return failed


def line(fig, failed):
    closed = "open" if fig["closed_s"] is None else f"{fig['closed_s']:.2f}s"
    return (f"{fig['attack']:<38} rss {fig['rss_before_kib'] // 1024:>4}/{fig['rss_peak_kib'] // 1024:>4}/"
            f"{fig['rss_after_kib'] // 1024:>4} MiB  close {closed:>6}  cpu {fig['cpu']:>4.0%}  "
            f"p99 {fig['p99_ms']:>6.2f} ms ({fig['answers']})  {verdict(failed)}")


def verdict(failed):
    if failed is None:
        return "measured"
    return "ok" if not failed else "FAIL: " + "; ".join(failed)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("ctower")
    ap.add_argument("--only", default="")
    ap.add_argument("--relaxed", action="store_true")
    ap.add_argument("--duration", type=float, default=3.0)
    ap.add_argument("--measure", action="store_true", help="also the attacks with no goal yet")
    args = ap.parse_args()
    scale = 8 if args.relaxed else 1
    # (attack, codec, server flags, growth KiB, close within s, max CPU, p99 ms)
    plan = [(a, "http2", (), 4 * MiB, 1.0, 0.05, 10) for a in attacks.H2_ATTACKS]
    plan += [
        (Attack("h1-slowloris x200", "h1", lambda p, t: attacks.slowloris(p, t, 200)), "http",
         ("--header-timeout", "1"), 8 * MiB, 2.5, 0.05, 10),
        (Attack("h1-body-100MB-promised (413)", "h1", attacks.body_never_sent), "http",
         (), 4 * MiB, 0.5, 0.05, 10),
        (Attack("h1-body-1KB-never-sent (408)", "h1", lambda p, t: attacks.body_never_sent(p, t, 1000)),
         "http", ("--body-timeout", "1"), 4 * MiB, 2.0, 0.05, 10),
        # held, not closed: the byte bound (1 MiB a connection) and the
        # output's high watermark (1 MiB) stop it; 8 connections, 4 MiB each
        (Attack("h1-pipeline-unread x8", "h1", attacks.pipeline_unread, conns=8), "http",
         (), 32 * MiB, None, 0.05, 10),
        # the loop's budget (requests, answers and output together) binds first
        (Attack("h1-pipeline-unread x8 budget 4M", "h1", attacks.pipeline_unread, conns=8), "http",
         ("--memory-budget", "4M"), 8 * MiB, None, 0.05, 10),
    ]
    # Measured, not yet a goal met: printed with "measured", never "ok".
    measured_only = []
    failures = 0
    for attack, codec, extra, _, _, _, _ in measured_only:
        if args.only in attack.name and args.measure:
            server = serve(args.ctower, codec, extra)
            try:
                fig = measure(server, attack, duration=args.duration)
            finally:
                server.stop()
            print(line(fig, None), flush=True)
    for attack, codec, extra, growth, within, cpu, p99 in plan:
        if args.only not in attack.name:
            continue
        server = serve(args.ctower, codec, extra)
        try:
            fig = measure(server, attack, duration=args.duration)
        finally:
            code = server.stop()
        failed = check(fig, growth * scale, within, cpu * scale, p99 * scale)
        if code not in (0, None):
            failed.append(f"serve exited {code}")
        if sanitizer_report([server]):
            failed.append("sanitizer report")
        failures += bool(failed)
        print(line(fig, failed), flush=True)
    # Many connections at once, then gone: the loop's budget bounds the peak
    # and the memory they freed is given back within seconds (trim.h). The
    # normal client's goals are loose here: 400 attacking threads of this
    # Python process starve it, whatever the server does.
    if args.only in "h1-pipeline-unread x400, then gone":
        attack = Attack("h1-pipeline-unread x400, then gone", "h1", attacks.pipeline_unread, conns=400)
        server = serve(args.ctower, "http")
        try:
            fig = measure(server, attack, duration=args.duration, settle=7.0)
        finally:
            code = server.stop()
        failed = check(fig, 160 * MiB * scale, None, 2.0, 1000 * scale)
        limit = 2 * fig["rss_before_kib"] + 10 * MiB * scale
        if fig["rss_after_kib"] > limit:
            failed.append(f"{fig['rss_after_kib']} KiB held 7 s after > {limit}")
        if code not in (0, None):
            failed.append(f"serve exited {code}")
        failures += bool(failed)
        print(line(fig, failed), flush=True)
    print(f"hostile: {failures} of the attacks missed a goal")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
