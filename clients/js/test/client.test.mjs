// The RComet state machine under node, with the browser's transports played by scripted
// stand-ins (WebSocket, EventSource, fetch, Web Locks, document visibility; node's own
// BroadcastChannel carries the tab-to-tab messages). What each does on the wire is checked in
// a real browser against a real server by tests/browser.rs; here: which transport is opened when,
// with which resume position, after which delay, and what the application is told.
import { test, beforeEach } from "node:test";
import assert from "node:assert/strict";
import { setTimeout as delay } from "node:timers/promises";
import { RComet } from "../src/rcomet.js";

let sockets;
let streams;
let polls;

class FakeWebSocket {
  constructor(url) {
    Object.assign(this, { url, sent: [], closed: false });
    sockets.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.();
  }
  msg(m) {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
  fail() {
    this.closed = true;
    this.onclose?.({ code: 1006 });
  }
}

class FakeEventSource {
  constructor(url) {
    Object.assign(this, { url, closed: false });
    streams.push(this);
  }
  close() {
    this.closed = true;
  }
  open() {
    this.onopen?.();
  }
  msg(m) {
    this.onmessage?.({ data: JSON.stringify(m) });
  }
  fail() {
    this.onerror?.();
  }
}

/** fetch for long-poll: each request waits until the test answers or refuses it. */
function fakeFetch(url, init) {
  return new Promise((resolve, reject) => {
    const req = { url, answer: (body) => resolve({ ok: true, status: 200, text: async () => JSON.stringify(body) }), refuse: () => reject(new TypeError("refused")) };
    init?.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError")));
    polls.push(req);
  });
}

beforeEach(() => {
  sockets = [];
  streams = [];
  polls = [];
  globalThis.WebSocket = FakeWebSocket;
  globalThis.EventSource = FakeEventSource;
  globalThis.fetch = fakeFetch;
});

/** Waits (bounded) until `cond()` is truthy. */
async function until(what, cond, ms = 2000) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`);
    await delay(2);
  }
}

function recorder(extra = {}) {
  const seen = { messages: [], states: [], resets: [], gaps: [], errors: [] };
  return {
    seen,
    opts: {
      url: "http://push.test/",
      share: false,
      backoff: { base: 5, cap: 20 },
      onMessage: (m) => seen.messages.push(m),
      onState: (s, info) => seen.states.push([s, info.transport]),
      onReset: (r) => seen.resets.push(r),
      onGap: (g) => seen.gaps.push(g),
      onError: (e) => seen.errors.push(e),
      ...extra,
    },
  };
}

const data = (seq, cname = "c") => ({ type: "data", cname, seq, content: `m${seq}` });
const nextSeq = (seq, epoch, cname = "c") => ({ type: "next_seq", cname, seq, content: "", epoch });

test("WebSocket first; a dropped socket comes back after a backoff, resuming at seq and epoch", async () => {
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "c" });
  await until("a socket", () => sockets.length === 1);
  assert.equal(sockets[0].url, "ws://push.test/ws?cname=c&seq=0");
  assert.equal(c.state, "connecting");
  sockets[0].open();
  assert.deepEqual(seen.states.at(-1), ["open", "ws"]);
  sockets[0].msg(nextSeq(1, 42));
  sockets[0].msg(data(1));
  sockets[0].msg(data(2));
  sockets[0].fail();
  assert.equal(c.state, "waiting", "a backoff before reconnecting");
  await until("a second socket", () => sockets.length === 2);
  assert.equal(sockets[1].url, "ws://push.test/ws?cname=c&seq=3&epoch=42");
  sockets[1].open();
  sockets[1].msg(data(2)); // a replay overlapping what arrived: dropped
  sockets[1].msg(data(3));
  assert.deepEqual(seen.messages.map((m) => m.seq), [1, 2, 3]);
  assert.deepEqual(c.position("c"), { seq: 4, epoch: 42 });
  assert.deepEqual(seen.resets, []);
  c.close();
  assert.ok(sockets[1].closed);
  assert.equal(c.state, "closed");
});

test("a transport refused before it opens gives way to the next at once: ws, sse, poll, then over", async () => {
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "c" });
  await until("a socket", () => sockets.length === 1);
  sockets[0].fail();
  await until("an EventSource", () => streams.length === 1);
  assert.equal(streams[0].url, "http://push.test/sse?cname=c&id=1");
  streams[0].fail();
  await until("a long-poll", () => polls.length === 1);
  assert.equal(polls[0].url, "http://push.test/poll?cname=c&seq=0");
  polls[0].refuse();
  // All three refused: start over from WebSocket, after a backoff.
  await until("WebSocket again", () => sockets.length === 2);
  assert.deepEqual(
    seen.states.map(([s, t]) => (t ? `${s}:${t}` : s)),
    ["connecting:ws", "connecting:sse", "connecting:poll", "waiting", "connecting:ws"],
  );
  c.close();
});

test("a transport that worked is kept; the resume position survives a switch", async () => {
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "c", transports: ["sse", "poll"] });
  await until("an EventSource", () => streams.length === 1);
  assert.equal(sockets.length, 0, "fixed by option: no WebSocket");
  streams[0].open();
  streams[0].msg(nextSeq(1, 7));
  streams[0].msg(data(1));
  streams[0].msg(data(2));
  streams[0].fail(); // worked, then dropped: SSE again after a backoff
  await until("a second EventSource", () => streams.length === 2);
  assert.equal(streams[1].url, "http://push.test/sse?cname=c&id=1&last_event_id=7:2");
  streams[1].fail(); // refused before opening: long-poll, from the same place
  await until("a long-poll", () => polls.length === 1);
  assert.equal(polls[0].url, "http://push.test/poll?cname=c&seq=3");
  polls[0].answer([data(3), data(4)]);
  await until("the next poll", () => polls.length === 2);
  assert.equal(polls[1].url, "http://push.test/poll?cname=c&seq=5");
  assert.deepEqual(seen.messages.map((m) => m.seq), [1, 2, 3, 4]);
  assert.deepEqual(seen.states.at(-1), ["open", "poll"]);
  c.close();
  await delay(5);
  assert.equal(polls.length, 2, "closed: no more polls");
});

test("reset and gap are told to the application", async () => {
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "c", seq: 10, epoch: 5 });
  await until("a socket", () => sockets.length === 1);
  assert.equal(sockets[0].url, "ws://push.test/ws?cname=c&seq=10&epoch=5");
  sockets[0].open();
  sockets[0].msg({ type: "reset", cname: "c", seq: 1, content: "", epoch: 6 });
  sockets[0].msg(data(1));
  sockets[0].msg(data(4));
  assert.deepEqual(seen.resets, [{ cname: "c", seq: 1, epoch: 6, was: { seq: 10, epoch: 5 } }]);
  assert.deepEqual(seen.gaps, [{ cname: "c", from: 2, to: 4 }]);
  assert.deepEqual(seen.messages.map((m) => m.seq), [1, 4]);
  c.close();
});

test("more channels on one WebSocket: sub and unsub commands with their positions", async () => {
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "a" });
  c.subscribe("b", { seq: 4, epoch: 9, token: "tb" });
  await until("a socket", () => sockets.length === 1);
  const ws = sockets[0];
  ws.open();
  await until("the sub command", () => ws.sent.length === 1);
  assert.deepEqual(ws.sent[0], { cmd: "sub", cname: "b", seq: 4, epoch: 9, token: "tb" });
  ws.msg(data(4, "b"));
  ws.msg(data(1, "zz")); // not held
  c.unsubscribe("b");
  assert.deepEqual(ws.sent[1], { cmd: "unsub", cname: "b" });
  ws.msg(data(5, "b"));
  assert.deepEqual(seen.messages.map((m) => `${m.cname}${m.seq}`), ["b4"]);
  assert.equal(sockets.length, 1, "one socket for both");
  c.close();
});

test("signUrl: tokens are fetched per channel, and asked again after a 401", async () => {
  const signs = [];
  globalThis.fetch = async (url) => {
    signs.push(url);
    return { ok: true, json: async () => ({ type: "sign", token: `tok${signs.length}` }) };
  };
  const { seen, opts } = recorder({ signUrl: "/app/sign?x=1" });
  const c = new RComet({ ...opts, channel: "c" });
  await until("a socket", () => sockets.length === 1);
  assert.deepEqual(signs, ["/app/sign?x=1&cname=c"]);
  assert.equal(sockets[0].url, "ws://push.test/ws?cname=c&seq=0&token=tok1");
  sockets[0].open();
  sockets[0].msg({ type: "401", cname: "c", seq: 0, content: "Token error" });
  sockets[0].fail();
  assert.equal(seen.errors[0].type, "401");
  await until("a new socket", () => sockets.length === 2);
  assert.match(sockets[1].url, /token=tok2$/, "a fresh token");
  c.close();
});

test("pauseWhenHidden: the connection closes while hidden and comes back when visible", async () => {
  const listeners = {};
  globalThis.document = { hidden: false, addEventListener: (k, f) => (listeners[k] = f), removeEventListener() {} };
  try {
    const { seen, opts } = recorder({ pauseWhenHidden: true });
    const c = new RComet({ ...opts, channel: "c" });
    await until("a socket", () => sockets.length === 1);
    sockets[0].open();
    sockets[0].msg(nextSeq(3, 1));
    document.hidden = true;
    listeners.visibilitychange();
    assert.equal(c.state, "paused");
    assert.ok(sockets[0].closed);
    await delay(30);
    assert.equal(sockets.length, 1, "no reconnect while hidden");
    document.hidden = false;
    listeners.visibilitychange();
    await until("a socket again", () => sockets.length === 2);
    assert.equal(sockets[1].url, "ws://push.test/ws?cname=c&seq=3&epoch=1");
    assert.ok(seen.states.some(([s]) => s === "paused"));
    c.close();
  } finally {
    delete globalThis.document;
  }
});

/** Web Locks for tabs in one process: one holder per name, the others queue. */
function fakeLocks() {
  const held = new Map();
  const queue = new Map();
  const grant = (name) => {
    const next = queue.get(name)?.shift();
    if (!next) return held.delete(name);
    held.set(name, true);
    Promise.resolve(next()).finally(() => grant(name));
  };
  return {
    request(name, cb) {
      if (!queue.has(name)) queue.set(name, []);
      queue.get(name).push(cb);
      if (!held.get(name)) grant(name);
      return Promise.resolve();
    },
  };
}

test("tabs share one connection; the next tab takes over from the last seq it delivered", async (t) => {
  const locks = fakeLocks();
  Object.defineProperty(globalThis, "navigator", { value: { locks }, configurable: true });
  t.after(() => delete globalThis.navigator);
  const one = recorder({ share: true, shareWait: 10 });
  const two = recorder({ share: true, shareWait: 10 });
  const a = new RComet({ ...one.opts, channel: "room" });
  await until("the first tab leads", () => a.leader);
  const b = new RComet({ ...two.opts, channel: "room" });
  await until("a socket", () => sockets.length === 1);
  sockets[0].open();
  sockets[0].msg(nextSeq(1, 3, "room"));
  for (let i = 1; i <= 3; i++) sockets[0].msg(data(i, "room"));
  await until("the second tab has them", () => two.seen.messages.length === 3);
  assert.ok(!b.leader);
  assert.deepEqual(one.seen.messages.map((m) => m.seq), [1, 2, 3]);
  assert.equal(sockets.length, 1, "one connection for both tabs");
  await until("the follower knows the state", () => b.state === "open");
  // A second channel of the follower joins the leader's socket.
  b.subscribe("side", { seq: 2, epoch: 8 });
  await until("a sub command", () => sockets[0].sent.length === 1);
  assert.deepEqual(sockets[0].sent[0], { cmd: "sub", cname: "side", seq: 2, epoch: 8 });
  a.close();
  await until("the second tab leads", () => b.leader);
  await until("its own socket", () => sockets.length === 2);
  assert.equal(sockets[1].url, "ws://push.test/ws?cname=room&seq=4&epoch=3");
  sockets[1].open();
  await until("its second channel", () => sockets[1].sent.length === 1);
  assert.deepEqual(sockets[1].sent[0], { cmd: "sub", cname: "side", seq: 2, epoch: 8 });
  sockets[1].msg(data(4, "room"));
  assert.deepEqual(two.seen.messages.map((m) => m.seq), [1, 2, 3, 4]);
  b.close();
});

test("long-poll turns to JSONP when a fetch is refused before it ever worked (no CORS)", async (t) => {
  const scripts = [];
  globalThis.document = {
    hidden: false,
    addEventListener() {},
    removeEventListener() {},
    createElement: () => ({ remove() {} }),
    head: { appendChild: (s) => scripts.push(s) },
  };
  t.after(() => delete globalThis.document);
  const { seen, opts } = recorder();
  const c = new RComet({ ...opts, channel: "c", transports: ["poll"] });
  await until("a fetch", () => polls.length === 1);
  polls[0].refuse(); // a TypeError, as a CORS refusal is
  await until("a script", () => scripts.length === 1);
  const cb = scripts[0].src.match(/&cb=(__rcomet\d+)$/)?.[1];
  assert.ok(cb, scripts[0].src);
  assert.ok(scripts[0].src.startsWith("http://push.test/sub?cname=c&seq=0&cb="), scripts[0].src);
  globalThis[cb]([nextSeq(1, 2), data(1)]);
  await until("the next script", () => scripts.length === 2);
  assert.match(scripts[1].src, /^http:\/\/push\.test\/sub\?cname=c&seq=2&cb=__rcomet\d+$/);
  assert.deepEqual(seen.messages.map((m) => m.seq), [1]);
  assert.equal(polls.length, 1, "no more fetches");
  c.close();
});
