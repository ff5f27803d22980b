#!/usr/bin/env python3
"""bench/burst_probe.py: an independent probe of a server's responsiveness during a burst.

Every --interval-ms it runs one round trip on fresh sockets: connect to the front port, send a
long-poll (`/poll?cname=C&seq=N`), push message N to the same channel over a keep-alive admin
connection, and read the long-poll's reply, which must be message N. It writes one CSV line per
round trip (wall-clock start, round trip in ms, ok or the error) to --out until --duration
seconds have passed or the file named by --stop exists. A round trip that takes longer than
--timeout seconds is recorded as an error with its elapsed time, so stalls are never dropped.

`--summary CSV PHASES` prints p50 / p99 / max per phase instead, where PHASES is a file of
`<wall-clock seconds> <phase name>` lines (each phase runs until the next line), and the p99 of
two parts of the round trip: the push on the probe's established keep-alive admin connection
(`push p99`: a client that is not part of the burst) and the new connection's reply after it
(`reply p99`: how long until the server read the new connection's request). With
`--metrics-dir DIR`, where DIR holds the server's /metrics taken as each phase began
(`metrics-<phase>.txt`), it adds the server's own view: the loop turns of the phase longer than
5 ms and than 50 ms, and the bucket of its longest turn (rcomet_loop_turn_seconds).

Depends on: python3 standard library only.
"""

import argparse
import os
import socket
import sys
import time


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def read_response(sock, deadline):
    """Reads one HTTP/1.1 response with Content-Length or chunked body; returns the body."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += recv(sock, deadline)
    head, rest = buf.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = None
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            while b"\r\n" not in rest:
                rest += recv(sock, deadline)
            size_line, rest = rest.split(b"\r\n", 1)
            size = int(size_line.split(b";")[0], 16)
            while len(rest) < size + 2:
                rest += recv(sock, deadline)
            body += rest[:size]
            rest = rest[size + 2 :]
            if size == 0:
                return status, body
            # A long-poll reply is one message: the first non-empty chunk is enough.
            if body.strip():
                return status, body
    if length is None:
        length = 0
    while len(rest) < length:
        rest += recv(sock, deadline)
    return status, rest[:length]


def recv(sock, deadline):
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("timed out")
    sock.settimeout(left)
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("closed by the server")
    return data


class Admin:
    def __init__(self, address):
        self.address = address
        self.sock = None

    def push(self, cname, content, deadline):
        if self.sock is None:
            self.sock = socket.create_connection(self.address, timeout=max(0.01, deadline - time.monotonic()))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = f"GET /push?cname={cname}&content={content} HTTP/1.1\r\nHost: probe\r\n\r\n"
        try:
            self.sock.sendall(req.encode())
            status, _ = read_response(self.sock, deadline)
        except Exception:
            self.close()
            raise
        if status != 200:
            raise RuntimeError(f"push status {status}")

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def round_trip(front, admin, cname, seq, timeout):
    """One round trip; returns its total and its parts in ms: connected, pushed, delivered."""
    start = time.monotonic()
    deadline = start + timeout
    sock = socket.create_connection(front, timeout=timeout)
    try:
        connected = time.monotonic()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(f"GET /poll?cname={cname}&seq={seq} HTTP/1.1\r\nHost: probe\r\n\r\n".encode())
        admin.push(cname, f"m{seq}", deadline)
        pushed = time.monotonic()
        status, body = read_response(sock, deadline)
    finally:
        sock.close()
    if status != 200 or f'"seq":{seq},'.encode() not in body:
        raise RuntimeError(f"unexpected reply {status} {body[:80]!r}")
    end = time.monotonic()
    ms = lambda a, b: (b - a) * 1000.0
    return ms(start, end), ms(start, connected), ms(connected, pushed), ms(pushed, end)


def run(args):
    front, admin_addr = addr(args.front), addr(args.admin)
    admin = Admin(admin_addr)
    cname = f"probe-{os.getpid()}"
    end = time.monotonic() + args.duration
    seq = 1
    with open(args.out, "w") as out:
        out.write("wall_s,rtt_ms,result,connect_ms,push_ms,deliver_ms\n")
        next_at = time.monotonic()
        while time.monotonic() < end and not (args.stop and os.path.exists(args.stop)):
            wall = time.time()
            t0 = time.monotonic()
            try:
                rtt, c, p, d = round_trip(front, admin, cname, seq, args.timeout)
                out.write(f"{wall:.6f},{rtt:.3f},ok,{c:.3f},{p:.3f},{d:.3f}\n")
                seq += 1
            except Exception as e:  # every failure is a sample too
                rtt = (time.monotonic() - t0) * 1000.0
                out.write(f"{wall:.6f},{rtt:.3f},{type(e).__name__},,,\n")
                admin.close()
                # The message may or may not have been stored: start again on a fresh channel.
                cname = f"probe-{os.getpid()}-{seq}"
                seq = 1
            out.flush()
            next_at += args.interval_ms / 1000.0
            pause = next_at - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            else:
                next_at = time.monotonic()


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, int(round(p / 100.0 * (len(sorted_values) - 1)))))
    return sorted_values[i]


def turn_buckets(path):
    """{le: turns} summed over workers from one /metrics text, or None when it is missing."""
    try:
        text = open(path).read()
    except OSError:
        return None
    buckets = {}
    for line in text.splitlines():
        if not line.startswith("rcomet_loop_turn_seconds_bucket{"):
            continue
        labels, _, value = line.rpartition(" ")
        le = labels.split('le="', 1)[1].split('"', 1)[0]
        le = float("inf") if le == "+Inf" else float(le)
        buckets[le] = buckets.get(le, 0) + int(float(value))
    return buckets


def turn_columns(metrics_dir, phases, i):
    """Turns over 5 ms and 50 ms during phase i, and the upper bound of its longest turn (ms)."""
    if metrics_dir is None or i + 1 >= len(phases):
        return None
    a = turn_buckets(os.path.join(metrics_dir, f"metrics-{phases[i][1]}.txt"))
    b = turn_buckets(os.path.join(metrics_dir, f"metrics-{phases[i + 1][1]}.txt"))
    if not a or not b:
        return None
    les = sorted(b)
    delta = {le: b[le] - a.get(le, 0) for le in les}  # cumulative counts
    total = delta[les[-1]]

    def over(ms):
        at = max((le for le in les if le <= ms / 1000.0), default=None)
        return total - (delta[at] if at is not None else 0)

    longest = next((le for le in les if delta[le] == total), les[-1])
    return over(5), over(50), longest * 1000.0


def summary(csv_path, phases_path, metrics_dir=None):
    phases = []
    with open(phases_path) as f:
        for line in f:
            t, _, name = line.strip().partition(" ")
            if name:
                phases.append((float(t), name))
    rows = {name: [] for _, name in phases}
    errors = {name: 0 for _, name in phases}
    # The parts of the successful round trips: the push on the probe's established keep-alive
    # admin connection, and the new connection's reply after it (the server reading the new
    # connection's request: queued behind the other new connections during a connect burst).
    pushes = {name: [] for _, name in phases}
    replies = {name: [] for _, name in phases}
    with open(csv_path) as f:
        next(f)
        for line in f:
            fields = line.strip().split(",")
            wall, rtt, result = fields[:3]
            wall, rtt = float(wall), float(rtt)
            current = None
            for t, name in phases:
                if wall >= t:
                    current = name
            if current is None:
                continue
            rows[current].append(rtt)
            if result != "ok":
                errors[current] += 1
            elif len(fields) >= 6 and fields[4] and fields[5]:
                pushes[current].append(float(fields[4]))
                replies[current].append(float(fields[5]))
    head = f"{'phase':<10} {'samples':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7}"
    if metrics_dir:
        head += f" {'turns>5ms':>10} {'turns>50ms':>10} {'longest<=ms':>11}"
    head += f" {'push p99':>9} {'reply p99':>9}"
    print(head)
    for i, (_, name) in enumerate(phases):
        v = sorted(rows[name])
        line = (
            f"{name:<10} {len(v):>8} {percentile(v, 50):>8.2f} {percentile(v, 99):>8.2f} "
            f"{(v[-1] if v else float('nan')):>8.2f} {errors[name]:>7}"
        )
        turns = turn_columns(metrics_dir, phases, i)
        if turns:
            line += f" {turns[0]:>10} {turns[1]:>10} {turns[2]:>11g}"
        elif metrics_dir:
            line += f" {'-':>10} {'-':>10} {'-':>11}"
        push, reply = sorted(pushes[name]), sorted(replies[name])
        line += f" {percentile(push, 99):>9.2f} {percentile(reply, 99):>9.2f}"
        print(line)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--front", default="127.0.0.1:18100")
    p.add_argument("--admin", default="127.0.0.1:18000")
    p.add_argument("--interval-ms", type=float, default=20.0)
    p.add_argument("--duration", type=float, default=300.0, help="bound on the whole run (s)")
    p.add_argument("--timeout", type=float, default=10.0, help="bound on one round trip (s)")
    p.add_argument("--out", default="probe.csv")
    p.add_argument("--stop", help="stop once this file exists")
    p.add_argument("--summary", nargs=2, metavar=("CSV", "PHASES"))
    p.add_argument("--metrics-dir", help="with --summary: the /metrics taken at each phase")
    args = p.parse_args()
    if args.summary:
        summary(*args.summary, metrics_dir=args.metrics_dir)
    else:
        run(args)


if __name__ == "__main__":
    sys.exit(main())
