#!/usr/bin/env python3
"""bench/stalled_subscribers.py: what stalled readers of one channel cost the server.

N /stream subscribers of one channel stop reading (a small receive buffer, never read), then
M pushes of S bytes each go to the channel over one pipelined admin connection. The server's RSS
is sampled throughout; printed: RSS before, the peak, the peak minus before against the bytes
pushed while stalled and against one copy of what a subscriber can hold queued (the bytes pushed,
at most the server's output cap: a frame shared by every subscriber should cost its bytes once
plus a small reference each), how many subscribers the server cut at their output cap, and RSS
once they are all gone. Bounded: every socket has a timeout and the run stops after --timeout seconds.

Usage: bench/stalled_subscribers.py --admin HOST:PORT --front HOST:PORT --pid PID
           [--subscribers 100] [--pushes 20000] [--size 1024] [--output-cap BYTES] [--json]
Depends on: python3 only (raw sockets, /proc/PID/status).
"""

import argparse
import json
import socket
import sys
import time


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def stalled_subscriber(front, cname):
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(10)
    s.connect(front)
    s.sendall(f"GET /stream?cname={cname} HTTP/1.1\r\nHost: b\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            raise RuntimeError("subscriber closed before its head")
        head += chunk
    return s


def stats(admin):
    s = socket.create_connection(admin, timeout=10)
    s.sendall(b"GET /stats HTTP/1.0\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return json.loads(data.split(b"\r\n\r\n", 1)[1])


def push_all(admin, cname, pushes, size, pid, deadline, samples):
    content = "x" * size
    req = f"GET /push?cname={cname}&content={content} HTTP/1.1\r\nHost: b\r\n\r\n".encode()
    s = socket.create_connection(admin, timeout=10)
    sent = replies = 0
    buf = b""
    in_flight = 64
    while replies < pushes and time.time() < deadline:
        while sent < pushes and sent - replies < in_flight:
            s.sendall(req)
            sent += 1
        buf += s.recv(1 << 20)
        replies += buf.count(b"HTTP/1.1 200")
        buf = buf[buf.rfind(b"HTTP/1.1 200") + 1 :] if b"HTTP/1.1 200" in buf else buf
        if replies % 500 < in_flight:
            samples.append(rss_bytes(pid))
    s.close()
    return replies


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--admin", required=True)
    p.add_argument("--front", required=True)
    p.add_argument("--pid", type=int, required=True)
    p.add_argument("--subscribers", type=int, default=100)
    p.add_argument("--pushes", type=int, default=20000)
    p.add_argument("--size", type=int, default=1024)
    p.add_argument(
        "--output-cap",
        type=int,
        default=8 << 20,
        help="the server's limits.max_output_size (default: its default)",
    )
    p.add_argument("--timeout", type=float, default=120)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    admin, front = addr(a.admin), addr(a.front)
    deadline = time.time() + a.timeout
    cname = "stalled"
    before = rss_bytes(a.pid)
    subs = [stalled_subscriber(front, cname) for _ in range(a.subscribers)]
    samples = [rss_bytes(a.pid)]
    replies = push_all(admin, cname, a.pushes, a.size, a.pid, deadline, samples)
    time.sleep(0.5)  # let the last turn's frames be queued before the final sample
    samples.append(rss_bytes(a.pid))
    cut = stats(admin).get("slow_consumers_closed", 0)
    for s in subs:
        s.close()
    gone_by = time.time() + 10
    after = rss_bytes(a.pid)
    while time.time() < gone_by and stats(admin).get("connections", 2) > 1:
        time.sleep(0.2)
    time.sleep(1)
    after = rss_bytes(a.pid)
    pushed = replies * a.size
    peak = max(samples)
    result = {
        "subscribers": a.subscribers,
        "pushes": replies,
        "content_bytes": a.size,
        "bytes_pushed": pushed,
        "rss_before": before,
        "rss_peak": peak,
        "rss_growth": peak - before,
        "growth_per_subscriber": (peak - before) / a.subscribers,
        "growth_over_bytes_pushed": (peak - before) / pushed if pushed else None,
        "one_copy_queued": min(pushed, a.output_cap),
        "growth_over_one_copy": (peak - before) / min(pushed, a.output_cap) if pushed else None,
        "slow_consumers_closed": cut,
        "rss_after_all_gone": after,
        "rss_kept_after": after - before,
    }
    if a.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:28} {v:,.2f}" if isinstance(v, float) else f"{k:28} {v:,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
