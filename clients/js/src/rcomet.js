// rcomet.js: the browser client of rcomet. One RComet object holds a set of channels and gets
// their messages over the best transport the browser and the network allow (WebSocket, then
// Server-Sent Events with ids, then long-poll with fetch or JSONP), resuming every channel from
// its seq and epoch on each reconnect and transport switch, with exponential backoff and full
// jitter between attempts. Tabs of one origin share one connection: the tab holding a Web Lock
// is the leader and runs the connection; it fans messages out to the other tabs over a
// BroadcastChannel, and when it goes away the next tab takes the lock and resumes from the last
// seq it delivered itself. Every tab drops duplicates and reports resets and gaps on its own.
//
// The pure parts (backoff, transport choice, resume bookkeeping) are in core.js.

import { TRANSPORTS, Book, backoff, later, pickTransport, pollMessages, query } from "./core.js";

export { TRANSPORTS, Book, backoff, pickTransport };

const g = globalThis;
let jsonpCount = 0;

/** One long-poll request by JSONP (a script tag): for servers a page cannot reach with CORS. */
function jsonp(url, ms, signal) {
  return new Promise((resolve, reject) => {
    const cb = "__rcomet" + ++jsonpCount;
    const s = document.createElement("script");
    const done = (f, v) => {
      g[cb] = () => {};
      s.remove();
      clearTimeout(timer);
      signal.removeEventListener("abort", stop);
      f(v);
    };
    const stop = () => done(reject, new Error("closed"));
    const timer = setTimeout(() => done(reject, new Error("timeout")), ms);
    g[cb] = (v) => done(resolve, pollMessages(v));
    s.onerror = () => done(reject, new Error("jsonp"));
    signal.addEventListener("abort", stop);
    s.src = url + "&cb=" + cb;
    document.head.appendChild(s);
  });
}

/**
 * The transports. Each makes a link for the leader `c` over every channel in `c._net`: it calls
 * `c._up(link)` once it works, `c._recv(message, link)` for each message and `c._down(link,
 * opened)` when it ends; `add(cname)` and `remove(cname)` change its channels, `close()` ends it
 * without a `_down`.
 */
const LINKS = {
  ws(c) {
    const l = { t: "ws" };
    let ws;
    let open = false;
    let dead = false;
    const send = async (cname) => {
      const token = await c._tok(cname);
      const p = c._net.get(cname);
      if (p && open && !dead) {
        ws.send(JSON.stringify({ cmd: "sub", cname, seq: p.seq, epoch: p.seq ? p.epoch ?? undefined : undefined, token }));
      }
    };
    const first = [...c._net.ch.keys()][0];
    c._tok(first).then((token) => {
      if (dead) return;
      ws = new WebSocket(c.url.replace(/^http/, "ws") + "/ws" + query("ws", first, c._net.get(first), token));
      ws.onopen = () => {
        open = true;
        c._up(l);
        for (const cname of c._net.ch.keys()) if (cname !== first) send(cname).catch(c._fail);
      };
      ws.onmessage = (e) => c._recv(JSON.parse(e.data), l);
      ws.onclose = () => {
        dead = true;
        c._down(l, open);
      };
    }, (e) => c._down(l, true, e));
    l.add = (cname) => open && send(cname).catch(c._fail);
    l.remove = (cname) => open && !dead && ws.send(JSON.stringify({ cmd: "unsub", cname }));
    l.close = () => {
      dead = true;
      if (ws) {
        ws.onclose = null;
        ws.close();
      }
    };
    return l;
  },

  sse(c) {
    const l = { t: "sse" };
    const es = new Map();
    let open = false;
    let dead = false;
    l.add = (cname) =>
      c._tok(cname).then((token) => {
        if (dead || es.has(cname) || !c._net.has(cname)) return;
        const s = new EventSource(c.url + "/sse" + query("sse", cname, c._net.get(cname), token));
        es.set(cname, s);
        s.onopen = () => open || c._up(l, (open = true));
        s.onmessage = (e) => c._recv(JSON.parse(e.data), l);
        s.onerror = () => {
          l.close();
          c._down(l, open);
        };
      }, (e) => {
        l.close();
        c._down(l, true, e);
      });
    l.remove = (cname) => {
      es.get(cname)?.close();
      es.delete(cname);
    };
    l.close = () => {
      dead = true;
      for (const s of es.values()) s.close();
    };
    for (const cname of c._net.ch.keys()) l.add(cname);
    return l;
  },

  poll(c) {
    const l = { t: "poll" };
    const loops = new Map();
    const abort = new AbortController();
    let open = false;
    let dead = false;
    let n = 0;
    const get = async (cname) => {
      const q = query("poll", cname, c._net.get(cname), await c._tok(cname));
      if (c.jsonp) return jsonp(c.url + "/sub" + q, c._timeout, abort.signal);
      const r = await fetch(c.url + "/poll" + q, { signal: abort.signal, cache: "no-store" });
      if (!r.ok) throw new Error("HTTP " + r.status);
      return pollMessages(await r.text());
    };
    l.add = async (cname) => {
      if (loops.has(cname)) return;
      const id = ++n;
      loops.set(cname, id);
      try {
        while (!dead && loops.get(cname) === id && c._net.has(cname)) {
          const ms = await get(cname);
          if (dead) return;
          if (!open) c._up(l, (open = true));
          for (const m of ms) c._recv(m, l);
        }
      } catch (e) {
        if (dead) return;
        // A page whose fetch is refused (no CORS) may still load a script: JSONP next time.
        if (!open && e instanceof TypeError && c.o.jsonp !== false && g.document) c.jsonp = true;
        l.close();
        c._down(l, open);
      } finally {
        if (loops.get(cname) === id) loops.delete(cname);
      }
    };
    l.remove = (cname) => loops.delete(cname);
    l.close = () => {
      dead = true;
      abort.abort();
    };
    for (const cname of c._net.ch.keys()) l.add(cname);
    return l;
  },
};

export class RComet {
  /**
   * @param {object} o see index.d.ts: url, channel(s), token | signUrl, seq, epoch, onMessage,
   *   onState, onReset, onGap, onError, transports, pauseWhenHidden, share, jsonp, backoff,
   *   timeout, shareWait
   */
  constructor(o) {
    this.o = o;
    this.url = o.url.replace(/\/+$/, "");
    this.jsonp = !!o.jsonp;
    this.state = "idle";
    this.transport = null;
    this.leader = false;
    /** This tab's channels (name → token) and what it delivered of each. */
    this.subs = new Map();
    this.book = new Book();
    // The leader's side: the connection's own positions, the other tabs' channels.
    this._net = new Book();
    this._tabs = new Map();
    this._tokens = new Map();
    this._failed = new Set();
    this._attempt = 0;
    this._timeout = o.timeout ?? 70000;
    this._id = Math.random().toString(36).slice(2);
    this._fail = (e) => this._err(e);
    const name = "rcomet:" + this.url;
    const doc = g.document;
    if (o.share !== false && g.navigator?.locks && g.BroadcastChannel) {
      this._bc = new BroadcastChannel(name);
      this._bc.onmessage = (e) => this._onShared(e.data);
      // Granted to one tab at a time; held until this one closes (a closed one lets go at once).
      g.navigator.locks.request(name, () => this._closed ? 0 : new Promise((release) => {
        this._unlock = release;
        this._lead(o.shareWait ?? 150);
      }));
      this._bye = () => this._post({ t: "bye", id: this._id });
      g.addEventListener?.("pagehide", this._bye);
    } else {
      this._lead(0);
    }
    this._vis = () => this._changed();
    doc?.addEventListener("visibilitychange", this._vis);
    const token = typeof o.token === "string" ? o.token : undefined;
    for (const c of [].concat(o.channel ?? o.channels ?? [])) this.subscribe(c, { seq: o.seq, epoch: o.epoch, token });
  }

  /** Adds a channel, from `seq` (the next message wanted; 0 or none: from now) and `epoch`. */
  subscribe(cname, { seq = 0, epoch = null, token } = {}) {
    if (this.subs.has(cname) || this._closed) return this;
    this.subs.set(cname, token);
    this.book.set(cname, seq, epoch);
    this._changed();
    return this;
  }

  unsubscribe(cname) {
    if (this.subs.delete(cname)) {
      this.book.delete(cname);
      this._changed();
    }
    return this;
  }

  /** Where this tab is in a channel (`{seq, epoch}`: resume from there after a reload). */
  position(cname) {
    const p = this.book.get(cname);
    return p && { seq: p.seq, epoch: p.epoch };
  }

  close() {
    if (this._closed) return;
    this._bye?.();
    // Closed first: the other tabs are not told "closed" (one of them leads next).
    this._closed = true;
    this._stop("closed");
    this._unlock?.();
    this._bc?.close();
    g.document?.removeEventListener("visibilitychange", this._vis);
    g.removeEventListener?.("pagehide", this._bye);
  }

  // ---- every tab

  /** One message from the connection: this tab's own bookkeeping decides what the app sees. */
  _deliver(m) {
    if (!this.subs.has(m.cname)) return;
    for (const [kind, v] of this.book.take(m)) {
      if (kind === "msg") {
        if (m.type === "close") this.unsubscribe(m.cname);
        this.o.onMessage?.(m);
      } else if (kind === "reset") this.o.onReset?.(v);
      else if (kind === "gap") this.o.onGap?.(v);
      else this._err(v);
    }
  }

  _err(e) {
    this.o.onError?.(e);
  }

  _changed() {
    if (this.leader) this._sync();
    else this._announce();
  }

  _announce() {
    const subs = [...this.subs].map(([c, token]) => {
      const p = this.book.get(c);
      return [c, p.seq, p.epoch, token];
    });
    this._post({ t: "subs", id: this._id, vis: !g.document?.hidden, subs });
  }

  _post(d) {
    if (!this._closed) this._bc?.postMessage(d);
  }

  _onShared(d) {
    if (d.t === "m") {
      // A tab that joined after the opening marker learns the epoch from the leader.
      const p = this.book.get(d.m.cname);
      if (p && p.epoch === null) p.epoch = d.e ?? null;
      this._deliver(d.m);
    } else if (!this.leader) {
      if (d.t === "who") this._announce();
      else if (d.t === "st") this._state(d.s, d.tr);
    } else if (d.t === "subs") {
      this._tabs.set(d.id, d);
      this._sync();
      this._post({ t: "st", s: this.state, tr: this.transport });
    } else if (d.t === "bye") {
      this._tabs.delete(d.id);
      this._sync();
    }
  }

  _state(s, transport, delay) {
    this.state = s;
    this.transport = transport ?? null;
    this.o.onState?.(s, { transport: this.transport, leader: this.leader, delay });
  }

  // ---- the leader (the only tab, or the one holding the lock)

  _lead(wait) {
    this.leader = true;
    if (!wait) return this._sync((this._ready = true));
    // Ask the other tabs what they hold, so that the connection starts from the earliest seq.
    this._post({ t: "who" });
    setTimeout(() => this._sync((this._ready = true)), wait);
  }

  /** Every channel some tab wants, each from the earliest position a tab reported. */
  _want() {
    const want = new Map();
    const put = (c, seq, epoch, token) => {
      const w = want.get(c);
      if (!w || (seq && (!w.seq || later(w.seq, seq)))) want.set(c, { seq, epoch, token: token ?? w?.token });
    };
    for (const [c, token] of this.subs) {
      const p = this.book.get(c);
      put(c, p.seq, p.epoch, token);
    }
    for (const tab of this._tabs.values()) for (const s of tab.subs) put(...s);
    return want;
  }

  _paused() {
    const hidden = (d) => d?.hidden && [...this._tabs.values()].every((t) => !t.vis);
    return !!this.o.pauseWhenHidden && !!hidden(g.document);
  }

  /** Makes the connection hold exactly the channels wanted (and exist when any are). */
  _sync() {
    if (!this.leader || !this._ready || this._closed) return;
    const want = this._want();
    for (const c of [...this._net.ch.keys()]) {
      if (!want.has(c)) {
        this._net.delete(c);
        this._link?.remove(c);
      }
    }
    for (const [c, w] of want) {
      if (this._net.has(c)) continue;
      this._net.set(c, w.seq, w.epoch);
      if (w.token) this._tokens.set(c, w.token);
      this._link?.add(c);
    }
    if (!this._net.ch.size) return this._stop("idle");
    if (this._paused()) return this._stop("paused");
    if (this.state === "paused") this._attempt = 0;
    if (!this._link && !this._timer) this._connect();
  }

  _stop(s) {
    clearTimeout(this._timer);
    clearTimeout(this._watch);
    this._timer = 0;
    this._link?.close();
    this._link = null;
    if (this.state !== s) this._set(s);
  }

  _set(s, transport, delay) {
    this._state(s, transport, delay);
    if (this.leader) this._post({ t: "st", s, tr: this.transport });
  }

  _connect() {
    this._timer = 0;
    if (this._closed || !this._net.ch.size || this._paused()) return;
    const has = { ws: !!g.WebSocket, sse: !!g.EventSource, poll: !!(g.fetch || g.document) };
    const t = pickTransport(this.o.transports ?? TRANSPORTS, this._failed, has);
    if (!t) {
      // Every transport failed to open: start over from the first, after a while.
      this._failed.clear();
      return this._retry();
    }
    this._set("connecting", t);
    this._link = LINKS[t](this);
    this._kick();
  }

  _retry() {
    const b = this.o.backoff ?? {};
    const delay = backoff(this._attempt++, b.base, b.cap);
    this._set("waiting", null, delay);
    this._timer = setTimeout(() => this._connect(), delay);
  }

  /** A link that hears nothing (not even a heartbeat) for `timeout` ms is dead. */
  _kick() {
    clearTimeout(this._watch);
    const l = this._link;
    this._watch = setTimeout(() => {
      if (l !== this._link) return;
      l.close();
      this._down(l, true);
    }, this._timeout);
  }

  _up(l) {
    if (l !== this._link) return;
    this._since = Date.now();
    this._set("open", l.t);
  }

  _down(l, opened, e) {
    if (l !== this._link) return;
    this._link = null;
    clearTimeout(this._watch);
    if (e) this._err(e);
    if (this._closed || this._paused()) return;
    // A link that worked for a while starts the backoff over; one that keeps dropping does not.
    if (opened && Date.now() - this._since > 10000) this._attempt = 0;
    if (opened) return this._retry();
    // Refused before it ever worked: the next transport, at once.
    this._failed.add(l.t);
    this._connect();
  }

  _recv(m, l) {
    if (l !== this._link) return;
    this._kick();
    const ev = this._net.take(m);
    // Position markers go to every tab too (a follower learns the epoch it would resume with).
    if (!ev.length && m.type !== "next_seq") return;
    if (m.type === "close") this._net.delete(m.cname);
    if (ev[0]?.[0] === "error" && this._net.has(m.cname)) {
      // Refused (a bad or expired token, a limit): ask again later with a fresh token.
      this._net.delete(m.cname);
      this._tokens.delete(m.cname);
      l.remove(m.cname);
      setTimeout(() => this._sync(), backoff(this._attempt++, 1000));
    }
    this._post({ t: "m", m, e: this._net.get(m.cname)?.epoch });
    this._deliver(m);
  }

  /** The token of a channel: given, from the `token` function, or from `signUrl`. */
  async _tok(c) {
    if (this._tokens.has(c)) return this._tokens.get(c);
    const o = this.o;
    let t = typeof o.token === "string" ? o.token : undefined;
    if (typeof o.token === "function") t = await o.token(c);
    else if (o.signUrl) {
      const r = await fetch(o.signUrl + (o.signUrl.includes("?") ? "&" : "?") + "cname=" + encodeURIComponent(c));
      if (!r.ok) throw new Error("signUrl: HTTP " + r.status);
      t = (await r.json()).token;
    }
    this._tokens.set(c, t);
    return t;
  }
}

export default RComet;
