// The client's pure logic: reconnect delays, transport choice, resume bookkeeping, query strings.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Book, TRANSPORTS, backoff, later, nextSeq, pickTransport, pollMessages, query } from "../src/core.js";

test("backoff: full jitter under an exponential ceiling that stops at the cap", () => {
  const top = (a) => backoff(a, 500, 30000, () => 0.999999);
  assert.equal(backoff(0, 500, 30000, () => 0), 0, "full jitter reaches 0");
  assert.deepEqual([0, 1, 2, 3, 4].map(top), [499, 999, 1999, 3999, 7999]);
  assert.equal(top(6), 29999, "capped");
  assert.equal(top(1000), 29999, "a huge attempt count stays capped");
  // Uniform over the range: the mean of many draws is near half the ceiling.
  let sum = 0;
  for (let i = 0; i < 4000; i++) sum += backoff(3, 500, 30000);
  const mean = sum / 4000;
  assert.ok(mean > 1700 && mean < 2300, `mean ${mean} of [0, 4000)`);
  for (let i = 0; i < 1000; i++) {
    const d = backoff(2);
    assert.ok(Number.isInteger(d) && d >= 0 && d < 2000, `${d}`);
  }
});

test("pickTransport: the first available one that has not failed", () => {
  const all = { ws: true, sse: true, poll: true };
  assert.deepEqual(TRANSPORTS, ["ws", "sse", "poll"]);
  assert.equal(pickTransport(TRANSPORTS, new Set(), all), "ws");
  assert.equal(pickTransport(TRANSPORTS, new Set(["ws"]), all), "sse");
  assert.equal(pickTransport(TRANSPORTS, new Set(["ws", "sse"]), all), "poll");
  assert.equal(pickTransport(TRANSPORTS, new Set(TRANSPORTS), all), null);
  assert.equal(pickTransport(TRANSPORTS, new Set(), { sse: true, poll: true }), "sse", "no WebSocket");
  assert.equal(pickTransport(TRANSPORTS, new Set(), { poll: true }), "poll");
  assert.equal(pickTransport(["poll", "ws"], new Set(), all), "poll", "the order given wins");
  assert.equal(pickTransport(["sse"], new Set(["sse"]), all), null, "fixed by option: nothing else");
});

test("seq order wraps around and skips 0", () => {
  assert.ok(later(2, 1));
  assert.ok(!later(1, 2));
  assert.ok(!later(5, 5));
  assert.ok(later(1, 0xffffffff), "1 comes after 2^32 - 1");
  assert.equal(nextSeq(0xffffffff), 1);
  assert.equal(nextSeq(7), 8);
});

const data = (seq, cname = "c") => ({ type: "data", cname, seq, content: "m" + seq });

test("Book: a fresh channel learns its place from next_seq, then delivers in order once", () => {
  const b = new Book();
  b.set("c");
  assert.deepEqual(b.take({ type: "next_seq", cname: "c", seq: 4, content: "", epoch: 9 }), []);
  assert.deepEqual(b.get("c"), { seq: 4, epoch: 9 });
  assert.deepEqual(b.take(data(4)), [["msg", data(4)]]);
  assert.deepEqual(b.take(data(5)), [["msg", data(5)]]);
  assert.deepEqual(b.take(data(5)), [], "a duplicate is dropped");
  assert.deepEqual(b.take(data(3)), [], "an older one too");
  assert.deepEqual(b.get("c"), { seq: 6, epoch: 9 });
  assert.deepEqual(b.take({ type: "noop", cname: "c", seq: 1, content: "" }), []);
  assert.deepEqual(b.take(data(1, "other")), [], "a channel not held");
});

test("Book: a jump forward is a gap, delivered after the gap event", () => {
  const b = new Book();
  b.set("c", 10, 9);
  const ev = b.take(data(13));
  assert.deepEqual(ev, [["gap", { cname: "c", from: 10, to: 13 }], ["msg", data(13)]]);
  assert.equal(b.get("c").seq, 14);
  // A long-poll's next_seq ahead of the place: also a gap.
  assert.deepEqual(b.take({ type: "next_seq", cname: "c", seq: 20, content: "" }), [
    ["gap", { cname: "c", from: 14, to: 20 }],
  ]);
  assert.equal(b.get("c").seq, 20);
});

test("Book: a broadcast and its next_seq move on without a gap", () => {
  const b = new Book();
  b.set("c", 3, 1);
  const bc = { type: "broadcast", cname: "c", seq: 3, content: "all" };
  assert.deepEqual(b.take(bc), [["msg", bc]]);
  assert.deepEqual(b.take({ type: "next_seq", cname: "c", seq: 4, content: "" }), []);
  assert.deepEqual(b.get("c"), { seq: 4, epoch: 1 });
});

test("Book: reset from the server, another epoch, or a seq that went back", () => {
  const b = new Book();
  b.set("c", 8, 100);
  const r = { type: "reset", cname: "c", seq: 1, content: "", epoch: 200 };
  assert.deepEqual(b.take(r), [["reset", { cname: "c", seq: 1, epoch: 200, was: { seq: 8, epoch: 100 } }]]);
  assert.deepEqual(b.get("c"), { seq: 1, epoch: 200 });
  assert.deepEqual(b.take(data(1)), [["msg", data(1)]], "the stored messages follow the reset");
  // A next_seq naming another epoch is a reset too.
  assert.deepEqual(b.take({ type: "next_seq", cname: "c", seq: 5, content: "", epoch: 300 }), [
    ["reset", { cname: "c", seq: 5, epoch: 300, was: { seq: 2, epoch: 200 } }],
  ]);
  // Long-poll has no epochs: a restarted server shows as a seq that went back.
  const p = new Book();
  p.set("c", 50);
  assert.deepEqual(p.take({ type: "next_seq", cname: "c", seq: 1, content: "" }), [
    ["reset", { cname: "c", seq: 1, epoch: null, was: { seq: 50, epoch: null } }],
  ]);
});

test("Book: close is delivered, refusals are errors", () => {
  const b = new Book();
  b.set("c", 2, 1);
  const close = { type: "close", cname: "c", seq: 2, content: "" };
  assert.deepEqual(b.take(close), [["msg", close]]);
  const refused = { type: "401", cname: "c", seq: 0, content: "Token error" };
  assert.deepEqual(b.take(refused), [["error", refused]]);
});

test("query: each transport's way of saying where to resume", () => {
  const fresh = { seq: 0, epoch: null };
  const at = { seq: 12, epoch: 77 };
  assert.equal(query("ws", "a b", fresh), "?cname=a%20b&seq=0");
  assert.equal(query("ws", "a", at, "t/1"), "?cname=a&seq=12&epoch=77&token=t%2F1");
  assert.equal(query("sse", "a", fresh), "?cname=a&id=1");
  assert.equal(query("sse", "a", at), "?cname=a&id=1&last_event_id=77:11", "the last id seen");
  assert.equal(query("sse", "a", { seq: 12, epoch: null }), "?cname=a&id=1&seq=12");
  assert.equal(query("poll", "a", at), "?cname=a&seq=12", "long-poll has no epochs");
});

test("pollMessages: one object or an array", () => {
  assert.deepEqual(pollMessages('{"type":"data","cname":"c","seq":1,"content":"x"}\n'), [data(1)].map((m) => ({ ...m, content: "x" })));
  assert.equal(pollMessages('[{"type":"data"},{"type":"next_seq"}]\n').length, 2);
  assert.deepEqual(pollMessages({ type: "noop" }), [{ type: "noop" }], "JSONP hands over parsed values");
});
