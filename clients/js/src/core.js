// The client's pure logic, with no browser API in it (unit-tested under node): reconnect delays,
// which transport comes next, and the resume bookkeeping of each channel (where to resume, which
// messages are duplicates, and when the server says the history was lost).

/** The transports, most capable first: WebSocket, Server-Sent Events with ids, long-poll. */
export const TRANSPORTS = ["ws", "sse", "poll"];

/**
 * Exponential backoff with full jitter: a delay drawn uniformly from
 * [0, min(cap, base * 2^attempt)), so reconnecting clients spread out instead of stampeding.
 */
export function backoff(attempt, base = 500, cap = 30000, random = Math.random) {
  return Math.floor(random() * Math.min(cap, base * 2 ** Math.min(attempt, 30)));
}

/**
 * The transport to try next: the first of `order` that the environment has (`has[t]`) and that
 * has not failed to open (`failed`, a Set). `null` when none is left (the caller starts over
 * after a backoff).
 */
export function pickTransport(order, failed, has) {
  for (const t of order) if (has[t] && !failed.has(t)) return t;
  return null;
}

/** `a` is later than `b` in wrap-around seq order (the server's 32-bit seqs, 0 skipped). */
export const later = (a, b) => a !== b && (a - b) >>> 0 < 2 ** 31;

/** The seq after `s` (after 2^32 - 1 comes 1, never 0). */
export const nextSeq = (s) => (s >= 0xffffffff ? 1 : s + 1);

/**
 * Where each channel is: `seq`, the next message wanted (0: not known yet), and `epoch`, the
 * channel's incarnation (null: not known yet). `take(m)` applies one message from the server
 * and says what it means for the application, as a list of events:
 * - ["msg", m]: deliver it (data, broadcast, close);
 * - ["reset", {cname, seq, epoch, was}]: the server cannot continue where the client was (a
 *   new incarnation of the channel, or a seq that fell off its replay ring); delivery goes on
 *   at `seq`;
 * - ["gap", {cname, from, to}]: messages from `from` up to `to` (excluded) will never come;
 * - ["error", m]: a refusal (401, 429, 400).
 * Duplicates (a seq already delivered) and heartbeats give no event.
 */
export class Book {
  constructor() {
    this.ch = new Map();
  }

  set(cname, seq = 0, epoch = null) {
    this.ch.set(cname, { seq: seq >>> 0, epoch: epoch ?? null });
  }

  get(cname) {
    return this.ch.get(cname);
  }

  has(cname) {
    return this.ch.has(cname);
  }

  delete(cname) {
    this.ch.delete(cname);
  }

  take(m) {
    const p = this.ch.get(m.cname);
    const t = m.type;
    if (t === "401" || t === "429" || t === "400") return [["error", m]];
    if (!p || t === "noop") return [];
    const was = { seq: p.seq, epoch: p.epoch };
    if (t === "data" || t === "broadcast") {
      if (p.seq && later(p.seq, m.seq)) return [];
      const ev = p.seq && m.seq !== p.seq ? [["gap", { cname: m.cname, from: p.seq, to: m.seq }]] : [];
      p.seq = nextSeq(m.seq);
      ev.push(["msg", m]);
      return ev;
    }
    if (t === "close") {
      p.seq = m.seq;
      return [["msg", m]];
    }
    if (t === "reset") {
      p.seq = m.seq;
      p.epoch = m.epoch ?? null;
      return [["reset", { cname: m.cname, seq: m.seq, epoch: p.epoch, was }]];
    }
    if (t !== "next_seq") return [];
    const epoch = m.epoch ?? p.epoch;
    p.epoch = epoch;
    if (was.epoch !== null && epoch !== was.epoch) {
      p.seq = m.seq;
      return [["reset", { cname: m.cname, seq: m.seq, epoch, was }]];
    }
    if (!p.seq || m.seq === p.seq) {
      p.seq = m.seq;
      return [];
    }
    p.seq = m.seq;
    // Ahead: what was in between is gone. Behind: the channel started over (long-poll has no
    // epochs, so a restarted server shows as a seq that went back).
    return later(m.seq, was.seq)
      ? [["gap", { cname: m.cname, from: was.seq, to: m.seq }]]
      : [["reset", { cname: m.cname, seq: m.seq, epoch, was }]];
  }
}

/** The query of a subscription from position `p` with `token` on `transport`. */
export function query(transport, cname, p, token) {
  let q = "?cname=" + encodeURIComponent(cname);
  if (transport === "sse") {
    q += "&id=1";
    if (p.seq && p.epoch !== null) q += "&last_event_id=" + p.epoch + ":" + ((p.seq - 1) >>> 0);
    else if (p.seq) q += "&seq=" + p.seq;
  } else {
    q += "&seq=" + p.seq;
    if (transport === "ws" && p.epoch !== null && p.seq) q += "&epoch=" + p.epoch;
  }
  if (token) q += "&token=" + encodeURIComponent(token);
  return q;
}

/** The messages of one long-poll reply body (`MSG`, `[MSG,...]`, either with a newline). */
export function pollMessages(body) {
  const v = typeof body === "string" ? JSON.parse(body) : body;
  return Array.isArray(v) ? v : [v];
}
