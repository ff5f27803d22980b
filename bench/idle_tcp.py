#!/usr/bin/env python3
"""bench/idle_tcp.py: memory cost of idle *plain* TCP connections (connected, no request sent).

Opens N connections to a server's front port from 127.0.0.2, .3, ... (IP_BIND_ADDRESS_NO_PORT,
at most 16,000 per source), waits until the server's admin /stats counts them, samples the
server's VmRSS / RssAnon and the kernel's SUnreclaim before and after, holds them for --hold
seconds, closes them and prints one JSON object. The server must not close a connection that has
sent nothing during the run (rcomet: --header-timeout longer than the run).

Depends on: python3 standard library only; Linux /proc.
"""

import argparse
import json
import socket
import sys
import time
import urllib.request

IP_BIND_ADDRESS_NO_PORT = 24  # linux/in.h
PER_SOURCE = 16000


def status_kb(pid, field):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def meminfo_kb(field):
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def server_connections(admin):
    try:
        with urllib.request.urlopen(f"http://{admin}/stats", timeout=5) as r:
            return int(json.load(r).get("connections", -1))
    except (OSError, ValueError):
        return -1


def sample(pid):
    return {
        "rss_kb": status_kb(pid, "VmRSS"),
        "anon_kb": status_kb(pid, "RssAnon"),
        "sunreclaim_kb": meminfo_kb("SUnreclaim"),
    }


def per_conn(after, before, n):
    if after is None or before is None or n <= 0:
        return None
    return (after - before) * 1024.0 / n


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("-n", type=int, required=True, help="connections to open")
    ap.add_argument("--front", default="127.0.0.1:18100")
    ap.add_argument("--admin", default="127.0.0.1:18000")
    ap.add_argument("--pid", type=int, required=True, help="server process id")
    ap.add_argument("--hold", type=float, default=3.0, help="seconds to hold after the count")
    ap.add_argument("--timeout", type=float, default=60.0, help="bound on the whole ramp")
    a = ap.parse_args()

    host, port = a.front.rsplit(":", 1)
    dest = (host, int(port))
    # /stats counts its own request as a connection.
    base_conns = max(server_connections(a.admin) - 1, 0)
    time.sleep(0.5)
    before = sample(a.pid)
    socks, errors = [], 0
    start = time.monotonic()
    deadline = start + a.timeout
    for i in range(a.n):
        if time.monotonic() > deadline:
            break
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            if host.startswith("127."):
                s.bind((f"127.0.0.{2 + i // PER_SOURCE}", 0))
            s.settimeout(10)
            s.connect(dest)
            socks.append(s)
        except OSError:
            errors += 1
            s.close()
    ramp_s = time.monotonic() - start
    # Accepts run behind connects: wait until the server sees them all (the /stats request itself
    # is one more connection).
    seen = -1
    while time.monotonic() < deadline:
        seen = server_connections(a.admin) - 1 - base_conns
        if seen >= len(socks):
            break
        time.sleep(0.2)
    time.sleep(1.0)
    held = sample(a.pid)
    time.sleep(a.hold)
    seen_end = server_connections(a.admin) - 1 - base_conns
    n = len(socks)
    for s in socks:
        s.close()
    report = {
        "connections_target": a.n,
        "connections_held": n,
        "server_connections_seen": seen,
        "server_connections_at_end": seen_end,
        "connect_errors": errors,
        "ramp_s": round(ramp_s, 3),
        "connect_rate_per_s": round(n / ramp_s, 1) if ramp_s > 0 else None,
        "server_rss_before_bytes": None if before["rss_kb"] is None else before["rss_kb"] * 1024,
        "server_rss_bytes": None if held["rss_kb"] is None else held["rss_kb"] * 1024,
        "server_rss_per_conn_bytes": per_conn(held["rss_kb"], before["rss_kb"], n),
        "server_rss_anon_per_conn_bytes": per_conn(held["anon_kb"], before["anon_kb"], n),
        "kernel_per_conn_bytes": per_conn(held["sunreclaim_kb"], before["sunreclaim_kb"], n),
    }
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")
    return 0 if n == a.n and seen_end >= n else 1


if __name__ == "__main__":
    sys.exit(main())
