#!/usr/bin/env python3
"""WebSocket conformance of rcomet's /ws, driven by a standard third-party client.

The client is the Python `websockets` library (pinned in requirements.txt next to this file): its
synchronous client for ordinary use, its sans-IO handshake for the refusals (a request it built,
then altered), and its frame encoder for the bytes no well-behaved client sends (invalid UTF-8),
written straight to the transport. Each case starts a fresh server (the binary given with
--server, on 127.0.0.1 port 0, ports read from its ready line) and pushes through the admin port.
Every wait has a timeout; nothing sleeps to synchronise.

Usage: conformance.py --server target/debug/rcomet [--engine epoll|io_uring] [--case NAME]...
Prints one line per case and a closing "N passed, N failed" line; exits 0 only if all passed,
2 if the client library is missing or not the pinned version.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import queue
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
INSTALL = "python3 -m pip install -r tests/ws_conformance/requirements.txt"
TIMEOUT = 10.0


def pinned_version() -> str:
    for line in (HERE / "requirements.txt").read_text().splitlines():
        if line.startswith("websockets=="):
            return line.split("==", 1)[1].strip()
    raise SystemExit("requirements.txt pins no websockets version")


try:
    import websockets
    from websockets.client import ClientProtocol
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.frames import Frame, Opcode
    from websockets.sync.client import connect as ws_connect
    from websockets.uri import parse_uri
except ImportError as exc:
    print(f"the Python module `websockets` is missing ({exc}); install it with: {INSTALL}")
    sys.exit(2)


# ---------------------------------------------------------------------------------------------
# The server under test


class Server:
    """One rcomet process on 127.0.0.1 with port 0; killed by stop()."""

    def __init__(self, binary: str, engine: str, config: str | None):
        self.dir = tempfile.TemporaryDirectory(prefix="rcomet-wsconf-")
        args = [binary]
        if config is not None:
            path = Path(self.dir.name) / "icomet.conf"
            path.write_text(config)
            args.append(str(path))
        args += ["--admin-listen", "127.0.0.1:0", "--front-listen", "127.0.0.1:0",
                 "--threads", "2", "--engine", engine,
                 "--log-level", "warn", "--log-output", "stderr"]
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith("rcomet ready"):
                    lines.put(line)

        threading.Thread(target=drain, daemon=True).start()
        try:
            ready = lines.get(timeout=20)
        except queue.Empty:
            self.stop()
            raise AssertionError("rcomet did not print its ready line") from None
        fields = dict(w.split("=", 1) for w in ready.split() if "=" in w)
        assert fields.get("engine") == engine, f"asked for {engine}: {ready}"
        self.admin = fields["admin"]
        self.front = fields["front"]

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=TIMEOUT)
        self.dir.cleanup()

    # The admin port

    def admin_get(self, path: str) -> str:
        with urllib.request.urlopen(f"http://{self.admin}{path}", timeout=TIMEOUT) as r:
            assert r.status == 200, f"{path}: {r.status}"
            return r.read().decode()

    def push(self, cname: str, content: str) -> None:
        self.admin_get(f"/push?cname={cname}&content={content}")

    def subscribers(self, cname: str) -> int:
        return json.loads(self.admin_get(f"/info?cname={cname}"))["subscribers"]

    def wait_subscribers(self, cname: str, n: int) -> None:
        deadline = time.monotonic() + TIMEOUT
        while (have := self.subscribers(cname)) != n:
            assert time.monotonic() < deadline, f"{cname}: {have} subscribers, want {n}"
            time.sleep(0.01)

    def token(self, cname: str) -> str:
        m = re.search(r'"token"\s*:\s*"([^"]+)"', self.admin_get(f"/sign?cname={cname}"))
        assert m, "no token in /sign's reply"
        return m.group(1)

    # The front port

    def ws(self, query: str, logger: logging.Logger | None = None, **kw):
        """Opens /ws?query with the library's client (no keepalive pings of its own)."""
        kw.setdefault("compression", None)
        return ws_connect(f"ws://{self.front}/ws?{query}", ping_interval=None,
                          open_timeout=TIMEOUT, close_timeout=TIMEOUT, logger=logger, **kw)


# ---------------------------------------------------------------------------------------------
# Helpers


def msg(kind: str, cname: str, seq: int, content: str) -> dict:
    return {"type": kind, "cname": cname, "seq": seq, "content": content}


def recv(ws) -> dict:
    text = ws.recv(timeout=TIMEOUT)
    assert isinstance(text, str), f"a text frame, got {text!r}"
    return json.loads(text)


def expect(ws, want: dict) -> None:
    got = recv(ws)
    assert got == want, f"got {got}, want {want}"


def next_seq(ws, cname: str, seq: int = 1) -> int:
    """The next_seq object a fresh subscription starts with; returns its epoch."""
    got = recv(ws)
    epoch = got.pop("epoch", None)
    assert got == msg("next_seq", cname, seq, "") and isinstance(epoch, int), f"{got}"
    return epoch


def expect_close(ws, code: int) -> None:
    """The server closes with `code` (first), and the closing handshake completes."""
    try:
        extra = ws.recv(timeout=TIMEOUT)
        raise AssertionError(f"a close {code}, got a message {extra!r}")
    except ConnectionClosed as closed:
        assert closed.rcvd is not None, f"no close frame received: {closed!r}"
        assert closed.rcvd.code == code, f"close code {closed.rcvd.code}, want {code}"
        assert closed.rcvd_then_sent, "the server sent its close first, the client echoed"


def expect_close_after(ws, message, code: int) -> None:
    """Sends `message` and expects the close `code`; the server may close before the library's
    send returns (it judges a fragmented message at the fragment that crosses the limit, before
    the final one), which the library reports from send itself."""
    try:
        ws.send(message)
    except ConnectionClosed as closed:
        assert closed.rcvd is not None and closed.rcvd.code == code, f"{closed!r}, want {code}"
        assert closed.rcvd_then_sent, "the server sent its close first, the client echoed"
        return
    expect_close(ws, code)


def raw_frame(opcode: Opcode, payload: bytes, fin: bool = True) -> bytes:
    """A masked client frame from the library's own encoder, for bytes it would not send."""
    return Frame(opcode, payload, fin=fin).serialize(mask=True)


def refused_handshake(server: Server, tamper) -> "websockets.http11.Response":
    """The library builds the upgrade request for /ws?cname=r; `tamper` alters the request (or
    its serialized bytes); the library parses the answer, which must be a refusal."""
    protocol = ClientProtocol(parse_uri(f"ws://{server.front}/ws?cname=r"))
    request = protocol.connect()
    data = tamper(request) or request.serialize()
    host, port = server.front.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=TIMEOUT) as s:
        s.sendall(data)
        while not protocol.events_received() and protocol.handshake_exc is None:
            chunk = s.recv(65536)
            if chunk:
                protocol.receive_data(chunk)
            else:
                protocol.receive_eof()
                break
        # The server closes the connection after a refusal.
        while s.recv(65536):
            pass
    exc = protocol.handshake_exc
    assert isinstance(exc, InvalidStatus), f"a refusal with a status, got {exc!r}"
    return exc.response


class PingCounter(logging.Handler):
    """Counts the frames the library logs: `< PING` received, `> PONG` sent."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.pings = 0
        self.pongs = 0

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        self.pings += text.startswith("< PING")
        self.pongs += text.startswith("> PONG")


# ---------------------------------------------------------------------------------------------
# The cases: each takes a fresh server started with its CONFIG.

CASES = []


def case(config: str | None = None):
    def register(fn):
        fn.config = config
        CASES.append(fn)
        return fn
    return register


@case()
def handshake(server: Server) -> None:
    """The library's default handshake (it offers permessage-deflate) gets a plain 101."""
    with server.ws("cname=alice", compression="deflate") as ws:
        assert ws.response.status_code == 101
        assert ws.response.headers["Upgrade"].lower() == "websocket"
        assert "Sec-WebSocket-Extensions" not in ws.response.headers, "no extension accepted"
        assert ws.subprotocol is None
        next_seq(ws, "alice")


@case()
def handshake_refusals(server: Server) -> None:
    """A request without a key is 400, another version 426 naming 13, POST 405, no Upgrade 400,
    an unknown path 404; each answered and closed."""
    def no_key(req):
        del req.headers["Sec-WebSocket-Key"]

    def version_8(req):
        del req.headers["Sec-WebSocket-Version"]
        req.headers["Sec-WebSocket-Version"] = "8"

    def post(req):
        data = req.serialize()
        assert data.startswith(b"GET ")
        return b"POST " + data[4:]

    def no_upgrade(req):
        del req.headers["Upgrade"]
        del req.headers["Connection"]

    for what, tamper, status in [("no key", no_key, 400), ("version 8", version_8, 426),
                                 ("POST", post, 405), ("no upgrade", no_upgrade, 400)]:
        response = refused_handshake(server, tamper)
        assert response.status_code == status, f"{what}: {response.status_code}"
        if status == 426:
            assert response.headers.get("Sec-WebSocket-Version") == "13", f"{response.headers}"
    try:
        ws_connect(f"ws://{server.front}/nowhere", open_timeout=TIMEOUT).close()
        raise AssertionError("an unknown path was upgraded")
    except InvalidStatus as refused:
        assert refused.response.status_code == 404


@case()
def pushes(server: Server) -> None:
    """Pushes arrive as /stream's JSON objects, one text frame each, in order."""
    with server.ws("cname=news") as ws:
        next_seq(ws, "news")
        server.wait_subscribers("news", 1)
        for seq, content in enumerate(["hello", "world", "again"], start=1):
            server.push("news", content)
            expect(ws, msg("data", "news", seq, content))


@case()
def replay_by_seq(server: Server) -> None:
    """seq=N replays from the ring, then live pushes follow; epoch=E resumes the same
    incarnation; another epoch is a reset and everything stored."""
    with server.ws("cname=log") as first:
        epoch = next_seq(first, "log")
        server.wait_subscribers("log", 1)
        server.push("log", "one")
        server.push("log", "two")
        expect(first, msg("data", "log", 1, "one"))
        expect(first, msg("data", "log", 2, "two"))
    server.wait_subscribers("log", 0)
    with server.ws("cname=log&seq=1") as ws:
        expect(ws, msg("data", "log", 1, "one"))
        expect(ws, msg("data", "log", 2, "two"))
        server.wait_subscribers("log", 1)
        server.push("log", "three")
        expect(ws, msg("data", "log", 3, "three"))
    with server.ws(f"cname=log&seq=3&epoch={epoch}") as ws:
        expect(ws, msg("data", "log", 3, "three"))
    other = (epoch + 1) % 2**32
    with server.ws(f"cname=log&seq=3&epoch={other}") as ws:
        reset = recv(ws)
        assert reset.get("type") == "reset" and reset.get("epoch") == epoch, f"{reset}"
        for seq, content in [(1, "one"), (2, "two"), (3, "three")]:
            expect(ws, msg("data", "log", seq, content))


@case("limits:\n\tmax_ws_channels: 3\n")
def channels_by_command(server: Server) -> None:
    """sub/unsub commands add and drop channels on one socket; over the limit or twice is an
    error object and the socket stays; leaving the last channel closes with 1000."""
    with server.ws("cname=one") as ws:
        next_seq(ws, "one")
        ws.send(json.dumps({"cmd": "sub", "cname": "two"}))
        next_seq(ws, "two")
        # Asking for seq 1 of a channel with nothing stored yet is silent (no marker).
        ws.send(json.dumps({"cmd": "sub", "cname": "three", "seq": 1}))
        server.wait_subscribers("three", 1)
        ws.send(json.dumps({"cmd": "sub", "cname": "four"}))
        expect(ws, msg("429", "four", 0, "Too many channels on this connection"))
        ws.send(json.dumps({"cmd": "sub", "cname": "two"}))
        expect(ws, msg("400", "two", 0, "already subscribed to this channel"))
        for name in ["one", "two", "three"]:
            server.wait_subscribers(name, 1)
            server.push(name, f"to-{name}")
            expect(ws, msg("data", name, 1, f"to-{name}"))
        ws.send(json.dumps({"cmd": "unsub", "cname": "one"}))
        server.wait_subscribers("one", 0)
        server.push("one", "gone")
        server.push("two", "still")
        expect(ws, msg("data", "two", 2, "still"))
        ws.send(json.dumps({"cmd": "unsub", "cname": "two"}))
        ws.send(json.dumps({"cmd": "unsub", "cname": "three"}))
        expect_close(ws, 1000)
    for name in ["one", "two", "three"]:
        server.wait_subscribers(name, 0)


@case()
def client_ping_gets_pong(server: Server) -> None:
    """The library's pings (with and without payload) are answered with their payload."""
    with server.ws("cname=p") as ws:
        next_seq(ws, "p")
        for payload in [b"abc", None, b"x" * 125]:
            assert ws.ping(payload).wait(TIMEOUT), f"pong for {payload!r}"
        assert ws.latency > 0


@case("front:\n\tpolling_timeout: 1\n")
def server_pings_answered(server: Server) -> None:
    """Heartbeats are a noop object and a ping; the library pongs by itself, so the connection
    outlives the third heartbeat, where a silent client is closed (1001)."""
    counter = PingCounter()
    logger = logging.getLogger(f"conformance.{id(counter)}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(counter)
    with server.ws("cname=hb", logger=logger) as ws:
        next_seq(ws, "hb")
        for seq in range(4):
            expect(ws, msg("noop", "hb", seq, ""))
        # The library logs a frame once it has handled it; the fourth ping trails its noop.
        deadline = time.monotonic() + TIMEOUT
        while counter.pongs < 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert counter.pings >= 4 and counter.pongs >= 4, f"{counter.pings} pings, {counter.pongs} pongs"
        assert ws.ping(b"still").wait(TIMEOUT), "still open after four heartbeats"


@case()
def fragmented_client_messages(server: Server) -> None:
    """A command sent in fragments (the library's iterable send, ending with an empty final
    continuation) is one command, also with a ping between two fragments."""
    with server.ws("cname=f") as ws:
        next_seq(ws, "f")
        ws.send(['{"cmd":', '"sub","cna', 'me":"g"}'])
        next_seq(ws, "g")
        pongs = []

        def fragments():
            yield '{"cmd":"sub",'
            pongs.append(ws.ping(b"between"))
            yield '"cname":"h"}'

        ws.send(fragments())
        next_seq(ws, "h")
        assert pongs and pongs[0].wait(TIMEOUT), "the ping between fragments was answered"
        for name in ["f", "g", "h"]:
            server.wait_subscribers(name, 1)


@case()
def close_handshake_echoes_code(server: Server) -> None:
    """The client closes first: the server echoes its code and closes the TCP connection."""
    for code, reason in [(4321, "bye"), (1000, ""), (1001, "going")]:
        with server.ws("cname=c") as ws:
            next_seq(ws, "c")
            ws.close(code, reason)
            assert ws.protocol.close_sent.code == code
            assert ws.protocol.close_rcvd is not None, "the server answered the close"
            assert ws.protocol.close_rcvd.code == code, f"echo {ws.protocol.close_rcvd.code}"
            assert not ws.protocol.close_rcvd_then_sent
            assert ws.protocol.state.name == "CLOSED"
        server.wait_subscribers("c", 0)


@case("limits:\n\tmax_ws_message_size: 200\n")
def oversized_message_1009(server: Server) -> None:
    """A message of exactly the limit is read; one byte more, whole or in fragments, is 1009."""
    with server.ws("cname=big") as ws:
        next_seq(ws, "big")
        command = '{"cmd":"sub","cname":"ok"}'
        ws.send(command + " " * (200 - len(command)))
        next_seq(ws, "ok")
        ws.send("x" * 201)
        expect_close(ws, 1009)
    with server.ws("cname=big") as ws:
        next_seq(ws, "big")
        expect_close_after(ws, ["y" * 150, "y" * 51], 1009)
    server.wait_subscribers("big", 0)


@case()
def invalid_utf8_1007(server: Server) -> None:
    """Text that is not UTF-8, written as raw frames on the transport, is 1007: in one frame, and
    in the second fragment of a message."""
    for frames in [[raw_frame(Opcode.TEXT, b'{"cmd":"\xff"}')],
                   [raw_frame(Opcode.TEXT, b'{"cmd":', fin=False),
                    raw_frame(Opcode.CONT, b'"\xc3\x28"}')]]:
        with server.ws("cname=u") as ws:
            next_seq(ws, "u")
            for f in frames:
                ws.socket.sendall(f)
            expect_close(ws, 1007)
    server.wait_subscribers("u", 0)


@case()
def binary_message_1003(server: Server) -> None:
    """Commands are text: a binary message closes with 1003."""
    with server.ws("cname=b") as ws:
        next_seq(ws, "b")
        ws.send(b'{"cmd":"sub","cname":"x"}')
        expect_close(ws, 1003)
    server.wait_subscribers("b", 0)


@case("front:\n\tauth: token\n")
def auth_refusal_and_channel_close(server: Server) -> None:
    """A bad token is the 401 object and 1008; /sign's token subscribes; /close of the channel
    is the close object and 1000."""
    with server.ws("cname=secret&token=nope") as ws:
        expect(ws, msg("401", "secret", 0, "Token error"))
        expect_close(ws, 1008)
    with server.ws(f"cname=secret&token={server.token('secret')}") as ws:
        next_seq(ws, "secret")
        server.wait_subscribers("secret", 1)
        server.admin_get("/close?cname=secret")
        expect(ws, msg("close", "secret", 1, ""))
        expect_close(ws, 1000)


# ---------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", required=True, help="path to the rcomet binary")
    parser.add_argument("--engine", default="epoll", choices=["epoll", "io_uring"])
    parser.add_argument("--case", action="append", help="run only this case (repeatable)")
    args = parser.parse_args()
    want = pinned_version()
    if websockets.__version__ != want:
        print(f"websockets {websockets.__version__} is installed, the set is pinned to {want}; "
              f"install it with: {INSTALL}")
        return 2
    selected = [c for c in CASES if not args.case or c.__name__ in args.case]
    if not selected:
        print(f"no such case; the cases: {', '.join(c.__name__ for c in CASES)}")
        return 2
    passed = failed = 0
    for fn in selected:
        start = time.monotonic()
        server = Server(args.server, args.engine, fn.config)
        try:
            fn(server)
            passed += 1
            print(f"ok    {fn.__name__} ({time.monotonic() - start:.2f}s)", flush=True)
        except Exception:
            failed += 1
            print(f"FAIL  {fn.__name__}\n{traceback.format_exc()}", flush=True)
        finally:
            server.stop()
    print(f"ws conformance ({args.engine}, websockets {websockets.__version__}): "
          f"{passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
