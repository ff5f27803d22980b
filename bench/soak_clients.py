#!/usr/bin/env python3
"""bench/soak_clients.py: the clients of bench/soak.sh, arriving and leaving continuously at a
steady, low rate for a bounded time, then all gone.

Three kinds, each a few threads, each over raw sockets:
  long-poll  GET /poll?cname=soak-K&seq=N on a keep-alive connection, one poll after another
             (each answered by a push or a heartbeat), the connection closed and a new one
             opened every few polls;
  stream     GET /stream?cname=soak-K held for a random second or three while pushes arrive,
             then dropped without a close: an abortive reset (SO_LINGER 0), no FIN, no /close;
  admin      one publisher pushing to a random channel at --push-rate per second over a
             keep-alive admin connection, reconnecting now and then.
Every response is checked (status 200, a frame after a stream head); a client error, a refused
connection or a timeout counts as an error. At the end prints one JSON object:
{"seconds", "polls", "streams", "pushes", "connections", "errors", "first_error"} and exits 1 when
there were errors.

Usage: soak_clients.py --admin HOST:PORT --front HOST:PORT --seconds S
       [--channels N] [--pollers N] [--streamers N] [--push-rate R]
Depends on python3 only.
"""

import argparse
import json
import random
import socket
import struct
import sys
import threading
import time

TIMEOUT = 40.0  # above the server's 30 s polling timeout (a heartbeat answers every idle poll)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.counts = {"polls": 0, "streams": 0, "pushes": 0, "connections": 0, "errors": 0}
        self.first_error = None

    def add(self, key, n=1):
        with self.lock:
            self.counts[key] += n

    def error(self, what):
        with self.lock:
            self.counts["errors"] += 1
            if self.first_error is None:
                self.first_error = what


def addr(text):
    host, port = text.rsplit(":", 1)
    return host, int(port)


def connect(target, stats):
    s = socket.create_connection(target, timeout=TIMEOUT)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    stats.add("connections")
    return s


class Reader:
    """Buffered reads of HTTP responses on one socket."""

    def __init__(self, sock):
        self.sock, self.buf = sock, b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("closed by the server")
        self.buf += data

    def head(self):
        while b"\r\n\r\n" not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        status = int(head.split(b" ", 2)[1])
        return status, head.decode("latin-1").lower()

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def chunk(self):
        while b"\r\n" not in self.buf:
            self.fill()
        size, self.buf = self.buf.split(b"\r\n", 1)
        n = int(size.strip(), 16)
        data = self.exactly(n + 2)[:n]
        return data

    def response(self):
        status, head = self.head()
        if "transfer-encoding: chunked" in head:
            body = b""
            while True:
                c = self.chunk()
                if not c:
                    break
                body += c
        else:
            length = 0
            for line in head.split("\r\n"):
                if line.startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = self.exactly(length)
        return status, head, body


def request(path):
    return f"GET {path} HTTP/1.1\r\nHost: soak\r\n\r\n".encode()


def poller(args, stats, stop, rng):
    seqs = {}
    while not stop.is_set():
        try:
            s = connect(args.front, stats)
            r = Reader(s)
            for _ in range(rng.randint(2, 6)):
                if stop.is_set():
                    break
                cname = f"soak-{rng.randrange(args.channels)}"
                s.sendall(request(f"/poll?cname={cname}&seq={seqs.get(cname, 0)}"))
                status, _, body = r.response()
                if status != 200:
                    stats.error(f"/poll status {status}")
                    break
                # The reply names the seq to ask for next: after a message its seq + 1, or the one
                # a next_seq gives; a heartbeat changes nothing.
                msgs = json.loads(body)
                for m in msgs if isinstance(msgs, list) else [msgs]:
                    if m.get("type") in ("data", "broadcast"):
                        seqs[cname] = int(m["seq"]) + 1
                    elif m.get("type") == "next_seq":
                        seqs[cname] = int(m["seq"])
                stats.add("polls")
            s.close()
        except (OSError, ValueError, IndexError, KeyError, AttributeError) as e:
            if not stop.is_set():
                stats.error(f"long-poll: {e!r}")
                time.sleep(0.2)


def streamer(args, stats, stop, rng):
    while not stop.is_set():
        try:
            s = connect(args.front, stats)
            r = Reader(s)
            s.sendall(request(f"/stream?cname=soak-{rng.randrange(args.channels)}"))
            status, _ = r.head()
            if status != 200:
                stats.error(f"/stream status {status}")
            else:
                r.chunk()  # the catch-up frame (next_seq)
                until = time.monotonic() + rng.uniform(1.0, 3.0)
                s.settimeout(0.2)
                while time.monotonic() < until and not stop.is_set():
                    try:
                        r.fill()
                    except socket.timeout:
                        pass
                stats.add("streams")
            # Vanish without a close: RST, no FIN.
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            s.close()
        except (OSError, ValueError, IndexError, KeyError, AttributeError) as e:
            if not stop.is_set():
                stats.error(f"stream: {e!r}")
                time.sleep(0.2)


def publisher(args, stats, stop, rng):
    # Runs until every other client is gone (`stop` is its own event), so the last polls are
    # answered by a push rather than by the 30 s heartbeat.
    period = 1.0 / args.push_rate
    next_at = time.monotonic()
    while not stop.is_set():
        try:
            s = connect(args.admin, stats)
            r = Reader(s)
            for _ in range(rng.randint(50, 200)):
                if stop.is_set():
                    break
                cname = f"soak-{rng.randrange(args.channels)}"
                s.sendall(request(f"/push?cname={cname}&content=soak-{stats.counts['pushes']}"))
                status, _, _ = r.response()
                if status != 200:
                    stats.error(f"/push status {status}")
                stats.add("pushes")
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
            s.close()
        except (OSError, ValueError, IndexError, KeyError, AttributeError) as e:
            if not stop.is_set():
                stats.error(f"push: {e!r}")
                time.sleep(0.2)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--admin", type=addr, required=True)
    p.add_argument("--front", type=addr, required=True)
    p.add_argument("--seconds", type=float, required=True)
    p.add_argument("--channels", type=int, default=20)
    p.add_argument("--pollers", type=int, default=8)
    p.add_argument("--streamers", type=int, default=8)
    p.add_argument("--push-rate", type=float, default=20.0)
    args = p.parse_args()
    stats, stop, stop_pushing = Stats(), threading.Event(), threading.Event()
    clients = []
    for i, (kind, n) in enumerate([(poller, args.pollers), (streamer, args.streamers)]):
        for j in range(n):
            rng = random.Random(i * 1000 + j)
            clients.append(threading.Thread(target=kind, args=(args, stats, stop, rng),
                                            daemon=True))
    pusher = threading.Thread(target=publisher, daemon=True,
                              args=(args, stats, stop_pushing, random.Random(7)))
    threads = clients + [pusher]
    started = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(args.seconds)
    stop.set()
    for t in clients:
        t.join(TIMEOUT + 5)
    stop_pushing.set()
    pusher.join(TIMEOUT + 5)
    out = dict(stats.counts, seconds=round(time.monotonic() - started, 1),
               first_error=stats.first_error,
               unfinished=sum(t.is_alive() for t in threads))
    print(json.dumps(out))
    return 1 if out["errors"] or out["unfinished"] else 0


if __name__ == "__main__":
    sys.exit(main())
